//! scib-metrics' `nmi_ari_cluster_labels_kmeans`: KMeans with k = number of labels (one
//! k-means++ start, Lloyd iterations to a fixed point), then NMI (arithmetic mean of the
//! entropies) and ARI of the clusters against the labels, as sklearn computes them.

use rayon::prelude::*;

/// Random draws the k-means++ start needs. scib-metrics draws them from JAX's PRNG; see
/// `jax_random` for the generator that reproduces its draws.
pub trait InitSampler {
    /// The first centre: a uniformly chosen cell.
    fn first(&mut self, n: usize) -> usize;
    /// `m` distinct cells drawn with probability proportional to `weights`.
    fn weighted_distinct(&mut self, weights: &[f32], m: usize) -> Vec<usize>;
}

fn sq_dist(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(p, q)| (p - q) * (p - q)).sum()
}

/// Greedy k-means++ as scib-metrics' `_initialize_plus_plus`: 2 + floor(ln k) candidates per
/// step, keep the one that lowers the potential most.
pub fn kmeans_plus_plus(x: &[f32], d: usize, k: usize, rng: &mut dyn InitSampler) -> Vec<f32> {
    let n = x.len() / d;
    let first = rng.first(n);
    let mut centroids: Vec<f32> = x[first * d..(first + 1) * d].to_vec();
    let mut min_d: Vec<f32> = (0..n)
        .map(|i| sq_dist(&x[first * d..(first + 1) * d], &x[i * d..(i + 1) * d]))
        .collect();
    let trials = 2 + (k as f64).ln() as usize;
    for _ in 1..k {
        let total: f32 = min_d.iter().sum();
        let prob: Vec<f32> = min_d.iter().map(|v| v / total).collect();
        let cands = rng.weighted_distinct(&prob, trials);
        let mut best: Option<(f32, usize, Vec<f32>)> = None;
        for &c in &cands {
            let xc = &x[c * d..(c + 1) * d];
            let nd: Vec<f32> = (0..n)
                .into_par_iter()
                .map(|i| min_d[i].min(sq_dist(xc, &x[i * d..(i + 1) * d])))
                .collect();
            let pot: f32 = nd.iter().sum();
            if best.as_ref().is_none_or(|b| pot < b.0) {
                best = Some((pot, c, nd));
            }
        }
        let (_, c, nd) = best.expect("at least one candidate");
        centroids.extend_from_slice(&x[c * d..(c + 1) * d]);
        min_d = nd;
    }
    centroids
}

/// Nearest centre of every cell (first on ties) and the inertia.
fn assign(x: &[f32], d: usize, centroids: &[f32], k: usize) -> (Vec<u32>, f64) {
    let n = x.len() / d;
    let best: Vec<(u32, f32)> = (0..n)
        .into_par_iter()
        .map(|i| {
            let xi = &x[i * d..(i + 1) * d];
            let mut b = (0u32, f32::INFINITY);
            for c in 0..k {
                let v = sq_dist(xi, &centroids[c * d..(c + 1) * d]);
                if v < b.1 {
                    b = (c as u32, v);
                }
            }
            b
        })
        .collect();
    let inertia = best.iter().map(|b| b.1 as f64).sum();
    (best.into_iter().map(|b| b.0).collect(), inertia)
}

/// KMeans labels of scib-metrics' `KMeans(n_clusters).fit(X).labels_`: data centred, one
/// k-means++ start, Lloyd steps until the assignment is stable (scib's loop runs at least
/// 300 steps, by when it is). An empty cluster's centre goes to the origin, as in scib.
pub fn kmeans(x: &[f32], d: usize, k: usize, rng: &mut dyn InitSampler) -> Vec<u32> {
    let n = x.len() / d;
    let mut mean = vec![0f64; d];
    for i in 0..n {
        for j in 0..d {
            mean[j] += x[i * d + j] as f64;
        }
    }
    let centred: Vec<f32> = (0..n * d)
        .map(|p| x[p] - (mean[p % d] / n as f64) as f32)
        .collect();
    let mut centroids = kmeans_plus_plus(&centred, d, k, rng);
    let (mut labels, _) = assign(&centred, d, &centroids, k);
    for _ in 0..1000 {
        let mut sums = vec![0f64; k * d];
        let mut counts = vec![0usize; k];
        for i in 0..n {
            let c = labels[i] as usize;
            counts[c] += 1;
            for j in 0..d {
                sums[c * d + j] += centred[i * d + j] as f64;
            }
        }
        for c in 0..k {
            for j in 0..d {
                centroids[c * d + j] = (sums[c * d + j] / counts[c].max(1) as f64) as f32;
            }
        }
        let (next, _) = assign(&centred, d, &centroids, k);
        if next == labels {
            break;
        }
        labels = next;
    }
    labels
}

fn contingency(a: &[u32], b: &[u32]) -> (Vec<Vec<f64>>, Vec<f64>, Vec<f64>) {
    let ka = a.iter().max().map_or(0, |&v| v as usize + 1);
    let kb = b.iter().max().map_or(0, |&v| v as usize + 1);
    let mut t = vec![vec![0f64; kb]; ka];
    for (&i, &j) in a.iter().zip(b) {
        t[i as usize][j as usize] += 1.0;
    }
    let ra = t.iter().map(|r| r.iter().sum()).collect();
    let cb = (0..kb).map(|j| t.iter().map(|r| r[j]).sum()).collect();
    (t, ra, cb)
}

fn entropy(counts: &[f64], n: f64) -> f64 {
    counts
        .iter()
        .filter(|&&c| c > 0.0)
        .map(|&c| -(c / n) * (c / n).ln())
        .sum()
}

/// sklearn `normalized_mutual_info_score(average_method="arithmetic")`.
pub fn nmi(truth: &[u32], pred: &[u32]) -> f64 {
    let n = truth.len() as f64;
    let (t, ra, cb) = contingency(truth, pred);
    let (ha, hb) = (entropy(&ra, n), entropy(&cb, n));
    let used = |v: &[f64]| v.iter().filter(|&&c| c > 0.0).count();
    if used(&ra) == 1 && used(&cb) == 1 || used(&ra) == 0 {
        return 1.0;
    }
    let mut mi = 0.0;
    for (i, row) in t.iter().enumerate() {
        for (j, &c) in row.iter().enumerate() {
            if c > 0.0 {
                mi += c / n * (c * n / (ra[i] * cb[j])).ln();
            }
        }
    }
    let denom = (ha + hb) / 2.0;
    (mi / denom.max(f64::EPSILON)).clamp(0.0, 1.0)
}

/// sklearn `adjusted_rand_score`.
pub fn ari(truth: &[u32], pred: &[u32]) -> f64 {
    let n = truth.len() as f64;
    let (t, ra, cb) = contingency(truth, pred);
    let pairs = |v: f64| v * (v - 1.0) / 2.0;
    let sum_ij: f64 = t.iter().flatten().map(|&c| pairs(c)).sum();
    let sum_a: f64 = ra.iter().map(|&c| pairs(c)).sum();
    let sum_b: f64 = cb.iter().map(|&c| pairs(c)).sum();
    let expected = sum_a * sum_b / pairs(n);
    let max = (sum_a + sum_b) / 2.0;
    if max == expected {
        return 1.0;
    }
    (sum_ij - expected) / (max - expected)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nmi_and_ari_known_values() {
        let a = [0, 0, 1, 1];
        assert!((nmi(&a, &[1, 1, 0, 0]) - 1.0).abs() < 1e-12);
        assert!((ari(&a, &[1, 1, 0, 0]) - 1.0).abs() < 1e-12);
        // sklearn: adjusted_rand_score([0,0,1,1],[0,0,1,2]) = 0.5714285714285715,
        // normalized_mutual_info_score(...) = 0.8
        assert!((ari(&a, &[0, 0, 1, 2]) - 0.5714285714285715).abs() < 1e-12);
        assert!((nmi(&a, &[0, 0, 1, 2]) - 0.8).abs() < 1e-12);
    }
}
