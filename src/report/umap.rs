//! UMAP (McInnes et al. 2018) with umap-learn 0.5's defaults: the fuzzy simplicial set of the
//! exact 15-nearest-neighbour graph, a PCA initialisation scaled to [0, 10], and umap-learn's
//! negative-sampling SGD (`optimize_layout_euclidean`: edges sampled in proportion to their
//! weight, 5 negative samples per positive one, gradients clipped at 4, learning rate decaying
//! linearly from 1). min_dist 0.1 and spread 1 give umap-learn's curve parameters a and b.
//! Single-threaded SGD with a seeded generator: the same seed gives the same layout.

use crate::metrics::eigen::sym_eigen;
use crate::metrics::neighbors::{fuzzy_simplicial_set, knn_graph};

/// umap-learn's `find_ab_params(spread=1.0, min_dist=0.1)`.
const A: f32 = 1.576_943_5;
const B: f32 = 0.895_060_8;
const NEGATIVE_SAMPLE_RATE: f32 = 5.0;

pub struct UmapParams {
    pub n_neighbors: usize,
    /// None: umap-learn's choice, 500 epochs below 10,000 cells, 200 from there.
    pub n_epochs: Option<usize>,
    pub seed: u64,
}

impl Default for UmapParams {
    fn default() -> Self {
        UmapParams {
            n_neighbors: 15,
            n_epochs: None,
            seed: 0,
        }
    }
}

/// xorshift of umap-learn's `tau_rand_int` family: cheap, seeded, deterministic.
struct Tau(u64);

impl Tau {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    fn normal(&mut self) -> f32 {
        // Box-Muller from two uniforms in (0, 1].
        let u1 = ((self.next() >> 11) as f64 + 1.0) / (1u64 << 53) as f64;
        let u2 = ((self.next() >> 11) as f64) / (1u64 << 53) as f64;
        ((-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()) as f32
    }
}

/// Two-dimensional UMAP of `x` (`n x d`, row-major); returns `n x 2`.
pub fn umap(x: &[f32], n: usize, d: usize, p: &UmapParams) -> Vec<f32> {
    if n < 3 {
        return vec![0.0; n * 2];
    }
    let nb = knn_graph(x, n, d, p.n_neighbors);
    let graph = fuzzy_simplicial_set(&nb);
    let n_epochs = p.n_epochs.unwrap_or(if n <= 10_000 { 500 } else { 200 });
    // Edges (both directions, as umap's COO graph), dropping those too weak to be sampled.
    let max_w = graph
        .rows
        .iter()
        .flatten()
        .map(|e| e.1)
        .fold(0f32, f32::max);
    let mut head = Vec::new();
    let mut tail = Vec::new();
    let mut weight = Vec::new();
    for (i, row) in graph.rows.iter().enumerate() {
        for &(j, w) in row {
            if w >= max_w / n_epochs as f32 {
                head.push(i as u32);
                tail.push(j);
                weight.push(w);
            }
        }
    }
    let epochs_per_sample: Vec<f32> = weight.iter().map(|&w| max_w / w).collect();
    let mut rng = Tau(p.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x2545_F491_4F6C_DD1D | 1);
    let mut emb = pca_init(x, n, d, &mut rng);
    optimise(
        &mut emb,
        n,
        &head,
        &tail,
        &epochs_per_sample,
        n_epochs,
        &mut rng,
    );
    emb
}

/// The first two principal components, scaled to [0, 10] per axis as umap-learn scales any
/// initialisation, plus a little noise (umap-learn adds N(0, 1e-4) to non-random inits).
fn pca_init(x: &[f32], n: usize, d: usize, rng: &mut Tau) -> Vec<f32> {
    let mut mean = vec![0f64; d];
    for i in 0..n {
        for j in 0..d {
            mean[j] += x[i * d + j] as f64 / n as f64;
        }
    }
    let mut cov = vec![0f64; d * d];
    for i in 0..n {
        let row: Vec<f64> = (0..d).map(|j| x[i * d + j] as f64 - mean[j]).collect();
        for a in 0..d {
            for b in a..d {
                cov[a * d + b] += row[a] * row[b];
            }
        }
    }
    for a in 0..d {
        for b in 0..a {
            cov[a * d + b] = cov[b * d + a];
        }
    }
    let (_, vecs) = sym_eigen(&cov, d);
    let comps = d.min(2);
    let mut emb = vec![0f32; n * 2];
    for i in 0..n {
        for c in 0..comps {
            emb[i * 2 + c] = (0..d)
                .map(|j| (x[i * d + j] as f64 - mean[j]) * vecs[j * d + c])
                .sum::<f64>() as f32;
        }
    }
    for c in 0..2 {
        let lo = (0..n).map(|i| emb[i * 2 + c]).fold(f32::INFINITY, f32::min);
        let hi = (0..n)
            .map(|i| emb[i * 2 + c])
            .fold(f32::NEG_INFINITY, f32::max);
        let span = if hi > lo { hi - lo } else { 1.0 };
        for i in 0..n {
            emb[i * 2 + c] = 10.0 * (emb[i * 2 + c] - lo) / span + 1e-4 * rng.normal();
        }
    }
    emb
}

fn clip(v: f32) -> f32 {
    v.clamp(-4.0, 4.0)
}

fn optimise(
    emb: &mut [f32],
    n: usize,
    head: &[u32],
    tail: &[u32],
    epochs_per_sample: &[f32],
    n_epochs: usize,
    rng: &mut Tau,
) {
    let epochs_per_negative: Vec<f32> = epochs_per_sample
        .iter()
        .map(|e| e / NEGATIVE_SAMPLE_RATE)
        .collect();
    let mut next_sample = epochs_per_sample.to_vec();
    let mut next_negative = epochs_per_negative.clone();
    for epoch in 0..n_epochs {
        let alpha = 1.0 - epoch as f32 / n_epochs as f32;
        let ep = epoch as f32;
        for e in 0..head.len() {
            if next_sample[e] > ep {
                continue;
            }
            let (j, k) = (head[e] as usize, tail[e] as usize);
            let (dx, dy) = (emb[j * 2] - emb[k * 2], emb[j * 2 + 1] - emb[k * 2 + 1]);
            let d2 = dx * dx + dy * dy;
            let coeff = if d2 > 0.0 {
                -2.0 * A * B * d2.powf(B - 1.0) / (A * d2.powf(B) + 1.0)
            } else {
                0.0
            };
            let (gx, gy) = (clip(coeff * dx) * alpha, clip(coeff * dy) * alpha);
            emb[j * 2] += gx;
            emb[j * 2 + 1] += gy;
            emb[k * 2] -= gx;
            emb[k * 2 + 1] -= gy;
            next_sample[e] += epochs_per_sample[e];
            let n_neg = ((ep - next_negative[e]) / epochs_per_negative[e]) as usize;
            for _ in 0..n_neg {
                let k = (rng.next() % n as u64) as usize;
                if k == j {
                    continue;
                }
                let (dx, dy) = (emb[j * 2] - emb[k * 2], emb[j * 2 + 1] - emb[k * 2 + 1]);
                let d2 = dx * dx + dy * dy;
                if d2 > 0.0 {
                    let coeff = 2.0 * B / ((0.001 + d2) * (A * d2.powf(B) + 1.0));
                    emb[j * 2] += clip(coeff * dx) * alpha;
                    emb[j * 2 + 1] += clip(coeff * dy) * alpha;
                }
            }
            next_negative[e] += n_neg as f32 * epochs_per_negative[e];
        }
    }
}

/// Mean over cells of the share of their `k` nearest neighbours in `x` that are also among
/// their `k` nearest neighbours in `y` (kNN preservation, the check against umap-learn).
pub fn knn_preservation(x: &[f32], dx: usize, y: &[f32], dy: usize, n: usize, k: usize) -> f64 {
    let a = knn_graph(x, n, dx, k + 1);
    let b = knn_graph(y, n, dy, k + 1);
    let mut total = 0.0;
    for i in 0..n {
        let na = &a.row(i).0[1..];
        let nb = &b.row(i).0[1..];
        total += na.iter().filter(|j| nb.contains(j)).count() as f64 / k as f64;
    }
    total / n as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blobs(n_per: usize) -> (Vec<f32>, usize) {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        let d = 10;
        let mut x = Vec::new();
        for c in 0..3 {
            for _ in 0..n_per {
                for j in 0..d {
                    let centre = if j == c { 8.0 } else { 0.0 };
                    x.push(centre + rng.r#gen::<f32>());
                }
            }
        }
        (x, d)
    }

    #[test]
    fn umap_keeps_neighbourhoods_and_is_deterministic() {
        let (x, d) = blobs(100);
        let n = 300;
        let p = UmapParams {
            n_epochs: Some(100),
            ..Default::default()
        };
        let a = umap(&x, n, d, &p);
        let b = umap(&x, n, d, &p);
        assert_eq!(a, b);
        assert!(a.iter().all(|v| v.is_finite()));
        // Clusters stay apart: every cell's 15 nearest 2-D neighbours are of its blob.
        let nb = knn_graph(&a, n, 2, 16);
        let pure = (0..n)
            .filter(|&i| nb.row(i).0.iter().all(|&j| j as usize / 100 == i / 100))
            .count();
        assert!(pure as f64 / n as f64 > 0.95, "{pure}");
        // And more of the original neighbours survive than in a random layout.
        let keep = knn_preservation(&x, d, &a, 2, n, 15);
        assert!(keep > 0.2, "{keep}");
    }
}
