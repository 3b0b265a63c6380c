//! The draws of JAX's default PRNG (threefry2x32, `jax_threefry_partitionable` on, the default
//! since JAX 0.5), so that the KMeans start of scib-metrics (`KMeans(seed=0)`: `split`,
//! `choice` without replacement, uniform and weighted by Gumbel top-k) is reproduced exactly.
//! Reference values in the tests come from JAX 0.10.2.

use super::clustering::InitSampler;

/// A threefry2x32 key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Key(pub [u32; 2]);

/// `jax.random.PRNGKey(seed)` for a seed below 2^32.
pub fn prng_key(seed: u32) -> Key {
    Key([0, seed])
}

/// The threefry2x32 block function (20 rounds) of `count` under `key`.
pub fn threefry2x32(key: Key, count: [u32; 2]) -> [u32; 2] {
    const ROT: [[u32; 4]; 2] = [[13, 15, 26, 6], [17, 29, 16, 24]];
    let ks = [key.0[0], key.0[1], key.0[0] ^ key.0[1] ^ 0x1BD1_1BDA];
    let mut x = [count[0].wrapping_add(ks[0]), count[1].wrapping_add(ks[1])];
    for block in 0..5usize {
        for &r in &ROT[block % 2] {
            x[0] = x[0].wrapping_add(x[1]);
            x[1] = x[1].rotate_left(r);
            x[1] ^= x[0];
        }
        x[0] = x[0].wrapping_add(ks[(block + 1) % 3]);
        x[1] = x[1]
            .wrapping_add(ks[(block + 2) % 3])
            .wrapping_add(block as u32 + 1);
    }
    x
}

/// `jax.random.split(key, num)`.
pub fn split(key: Key, num: usize) -> Vec<Key> {
    (0..num)
        .map(|i| Key(threefry2x32(key, [(i as u64 >> 32) as u32, i as u32])))
        .collect()
}

/// `jax.random.bits(key, (n,), uint32)`.
pub fn bits32(key: Key, n: usize) -> Vec<u32> {
    (0..n)
        .map(|i| {
            let y = threefry2x32(key, [(i as u64 >> 32) as u32, i as u32]);
            y[0] ^ y[1]
        })
        .collect()
}

/// `jax.random.uniform(key, (n,), float32, minval, maxval)`.
pub fn uniform(key: Key, n: usize, minval: f32, maxval: f32) -> Vec<f32> {
    bits32(key, n)
        .into_iter()
        .map(|b| {
            let f = f32::from_bits((b >> 9) | 0x3F80_0000) - 1.0;
            (f * (maxval - minval) + minval).max(minval)
        })
        .collect()
}

/// `jax.random.gumbel(key, (n,), float32)` (mode "low", the default).
pub fn gumbel(key: Key, n: usize) -> Vec<f32> {
    uniform(key, n, f32::MIN_POSITIVE, 1.0)
        .into_iter()
        .map(|u| -(-u.ln()).ln())
        .collect()
}

/// `jax.random.permutation(key, n)`: rounds of stable sorts by fresh 32-bit keys.
pub fn permutation(key: Key, n: usize) -> Vec<usize> {
    let rounds = (3.0 * (n.max(1) as f64).ln() / (u32::MAX as f64).ln()).ceil() as usize;
    let mut x: Vec<usize> = (0..n).collect();
    let mut key = key;
    for _ in 0..rounds {
        let ks = split(key, 2);
        key = ks[0];
        let sort_keys = bits32(ks[1], n);
        let mut pairs: Vec<(u32, usize)> = sort_keys.into_iter().zip(x).collect();
        pairs.sort_by_key(|p| p.0);
        x = pairs.into_iter().map(|p| p.1).collect();
    }
    x
}

/// `jax.random.choice(key, n, (m,), replace=False, p=weights)`: Gumbel top-m.
pub fn choice_weighted(key: Key, weights: &[f32], m: usize) -> Vec<usize> {
    let g = gumbel(key, weights.len());
    let mut scored: Vec<(f32, usize)> = g
        .iter()
        .zip(weights)
        .enumerate()
        .map(|(i, (&gi, &w))| (gi + w.ln(), i))
        .collect();
    // XLA's top_k: larger first, the lower index first on ties.
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    scored.into_iter().take(m).map(|e| e.1).collect()
}

/// The k-means++ draws of scib-metrics' `KMeans(n_clusters, seed=seed)` with one init.
pub struct JaxKMeansSampler {
    key: Key,
}

impl JaxKMeansSampler {
    pub fn new(seed: u32) -> Self {
        // KMeans._fit: split(seed, n_init=1)[0]; then _initialize_plus_plus splits once more.
        JaxKMeansSampler {
            key: split(prng_key(seed), 1)[0],
        }
    }
}

impl InitSampler for JaxKMeansSampler {
    fn first(&mut self, n: usize) -> usize {
        let ks = split(self.key, 2);
        self.key = ks[0];
        permutation(ks[1], n)[0]
    }
    fn weighted_distinct(&mut self, weights: &[f32], m: usize) -> Vec<usize> {
        let ks = split(self.key, 2);
        self.key = ks[0];
        choice_weighted(ks[1], weights, m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_jax_0_10_reference_draws() {
        let k = prng_key(0);
        let k1 = split(k, 1)[0];
        assert_eq!(k1, Key([1_797_259_609, 2_579_123_966]));
        let ab = split(k1, 2);
        assert_eq!(ab[0], Key([4_165_894_930, 804_218_099]));
        assert_eq!(ab[1], Key([1_353_695_780, 2_116_000_888]));
        assert_eq!(
            bits32(ab[1], 5),
            vec![
                447_923_887,
                1_477_415_817,
                562_929_823,
                3_479_484_537,
                834_989_922
            ]
        );
        assert_eq!(permutation(ab[1], 10), vec![4, 3, 6, 1, 7, 8, 9, 0, 2, 5]);
        assert_eq!(permutation(ab[1], 8684)[0], 6434);
        let g = gumbel(ab[0], 6);
        let want = [
            -0.233_726_07,
            1.434_922_7,
            0.080_830_14,
            2.532_613_8,
            -0.185_051_04,
            -1.165_233,
        ];
        for (a, b) in g.iter().zip(want) {
            assert!((a - b).abs() < 1e-5, "{a} vs {b}");
        }
        let p = [0.1f32, 0.2, 0.3, 0.15, 0.05, 0.2];
        assert_eq!(choice_weighted(ab[0], &p, 3), vec![3, 1, 2]);
    }
}
