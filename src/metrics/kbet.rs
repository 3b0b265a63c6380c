//! scib-metrics 0.5 `kbet_per_label` on the 50-neighbour graph: per cell type, the UMAP
//! connectivities restricted to its cells, a diffusion map of them (up to 100 components,
//! multiscale weights l / (1 - l)), k0 nearest neighbours in that map (k0 = a quarter of the
//! mean cells per batch, clamped to 10..70), and the kBET chi-square test of each
//! neighbourhood's batch counts against the type's batch frequencies at alpha 0.05. The score
//! is the acceptance rate, averaged over cell types.

use rayon::prelude::*;

use super::eigen::{lanczos_top, sym_eigen};
use super::graph::{component_sizes, strong_components};
use super::neighbors::{Neighbors, SparseGraph, fuzzy_simplicial_set, knn_graph};

const ALPHA: f64 = 0.05;
const DIFFUSION_COMPS: usize = 100;

/// kBET per label; NaN labels (a single batch or fewer than 10 cells) are left out of the mean.
pub fn kbet_per_label(nb50: &Neighbors, batches: &[u32], labels: &[u32], n_labels: usize) -> f64 {
    let conn = fuzzy_simplicial_set(nb50);
    // One task per label, largest first: each label's result depends only on its own cells,
    // so running them side by side keeps the score and uses the cores between the
    // fine-grained steps of one label's eigensolver.
    let mut order: Vec<u32> = (0..n_labels as u32).collect();
    let size = |l: u32| labels.iter().filter(|&&v| v == l).count();
    let sizes: Vec<usize> = order.iter().map(|&l| size(l)).collect();
    order.sort_by(|&a, &b| sizes[b as usize].cmp(&sizes[a as usize]).then(a.cmp(&b)));
    let mut by_label: Vec<(u32, Option<f64>)> = order
        .into_par_iter()
        .map(|l| {
            let cells: Vec<usize> = (0..labels.len()).filter(|&i| labels[i] == l).collect();
            (l, kbet_one_label(&conn, &cells, batches))
        })
        .collect();
    // Sum in label order, as the sequential loop did.
    by_label.sort_by_key(|e| e.0);
    let scores: Vec<f64> = by_label.into_iter().filter_map(|e| e.1).collect();
    if scores.is_empty() {
        return f64::NAN;
    }
    scores.iter().sum::<f64>() / scores.len() as f64
}

fn recode(values: &[u32]) -> (Vec<u32>, usize) {
    let mut present: Vec<u32> = values.to_vec();
    present.sort_unstable();
    present.dedup();
    let codes = values
        .iter()
        .map(|v| present.binary_search(v).expect("present") as u32)
        .collect();
    (codes, present.len())
}

fn subgraph(g: &SparseGraph, cells: &[usize]) -> SparseGraph {
    let mut local = vec![u32::MAX; g.n];
    for (p, &c) in cells.iter().enumerate() {
        local[c] = p as u32;
    }
    SparseGraph {
        n: cells.len(),
        rows: cells
            .iter()
            .map(|&c| {
                g.rows[c]
                    .iter()
                    .filter(|e| local[e.0 as usize] != u32::MAX)
                    .map(|&(j, w)| (local[j as usize], w))
                    .collect()
            })
            .collect(),
    }
}

fn kbet_one_label(conn: &SparseGraph, cells: &[usize], batches: &[u32]) -> Option<f64> {
    let n_obs = cells.len();
    let (sub_batches, n_batches) = recode(&cells.iter().map(|&c| batches[c]).collect::<Vec<_>>());
    if n_obs < 10 || n_batches == 1 {
        return None;
    }
    let mut per_batch = vec![0usize; n_batches];
    for &b in &sub_batches {
        per_batch[b as usize] += 1;
    }
    let quarter_mean = (n_obs as f64 / n_batches as f64 / 4.0).floor() as usize;
    let k0 = quarter_mean.clamp(10, 70);
    let g = subgraph(conn, cells);
    let adj: Vec<Vec<u32>> = g
        .rows
        .iter()
        .map(|r| r.iter().map(|e| e.0).collect())
        .collect();
    let comp = strong_components(&adj);
    let sizes = component_sizes(&comp);
    let (g_use, b_use) = if sizes.len() == 1 {
        (g, sub_batches)
    } else {
        let keep: Vec<usize> = (0..n_obs)
            .filter(|&i| sizes[comp[i] as usize] >= 3 * k0)
            .collect();
        if (keep.len() as f64) / (n_obs as f64) < 0.75 {
            return Some(0.0);
        }
        let b: Vec<u32> = keep.iter().map(|&i| sub_batches[i]).collect();
        (subgraph(&g, &keep), b)
    };
    let Some(emb) = diffusion_embedding(&g_use) else {
        return Some(0.0);
    };
    let n = g_use.n;
    let dims = emb.len() / n;
    if k0 + 1 > n {
        return Some(0.0);
    }
    let nb = knn_graph(&emb, n, dims, k0 + 1);
    Some(kbet_acceptance(&nb, &b_use))
}

/// scib's `diffusion_nn` embedding: density-normalised symmetric transitions, leading
/// eigenvectors scaled by l / (1 - l) (in f32, as scib: an eigenvalue that rounds to 1 keeps
/// weight 1). None when the graph has an isolated cell (scib's eigensolver fails there).
fn diffusion_embedding(g: &SparseGraph) -> Option<Vec<f32>> {
    let n = g.n;
    let q: Vec<f64> = g
        .rows
        .iter()
        .map(|r| r.iter().map(|e| e.1 as f64).sum())
        .collect();
    if q.iter().any(|&v| v <= 0.0) {
        return None;
    }
    // K = Q^-1 X Q^-1, then T = Z^-1 K Z^-1 with z = sqrt(row sums of K).
    let k_rows: Vec<Vec<(u32, f64)>> = g
        .rows
        .iter()
        .enumerate()
        .map(|(i, r)| {
            r.iter()
                .map(|&(j, w)| (j, w as f64 / (q[i] * q[j as usize])))
                .collect()
        })
        .collect();
    let z: Vec<f64> = k_rows
        .iter()
        .map(|r| r.iter().map(|e| e.1).sum::<f64>().sqrt())
        .collect();
    let t_rows: Vec<Vec<(u32, f64)>> = k_rows
        .iter()
        .enumerate()
        .map(|(i, r)| {
            r.iter()
                .map(|&(j, w)| (j, w / (z[i] * z[j as usize])))
                .collect()
        })
        .collect();
    let n_comps = DIFFUSION_COMPS.min(n - 1);
    let (vals, vecs) = if n <= 400 {
        let mut dense = vec![0f64; n * n];
        for (i, r) in t_rows.iter().enumerate() {
            for &(j, w) in r {
                dense[i * n + j as usize] = w;
            }
        }
        let (v, e) = sym_eigen(&dense, n);
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by(|&a, &b| v[b].abs().total_cmp(&v[a].abs()).then(a.cmp(&b)));
        order.truncate(n_comps);
        order.sort_by(|&a, &b| v[b].total_cmp(&v[a]));
        let vals: Vec<f64> = order.iter().map(|&j| v[j]).collect();
        let vecs: Vec<Vec<f64>> = order
            .iter()
            .map(|&j| (0..n).map(|k| e[k * n + j]).collect())
            .collect();
        (vals, vecs)
    } else {
        lanczos_top(n, n_comps, 3 * n_comps + 60, 1, |x, y| {
            y.par_iter_mut().zip(&t_rows).for_each(|(yi, r)| {
                *yi = sparse_dot(r, x);
            });
        })
    };
    let mut emb = vec![0f32; n * vals.len()];
    for (c, (&l, v)) in vals.iter().zip(&vecs).enumerate() {
        let e = l as f32 + 1e-8f32;
        let scale = if e == 1.0 { 1.0 } else { e / (1.0 - e) };
        for i in 0..n {
            emb[i * vals.len() + c] = v[i] as f32 * scale;
        }
    }
    Some(emb)
}

/// `sum w x[j]` over a sparse row, in four interleaved partial sums (see `eigen::dot`).
fn sparse_dot(row: &[(u32, f64)], x: &[f64]) -> f64 {
    let mut acc = [0f64; 4];
    let chunks = row.chunks_exact(4);
    let tail: f64 = chunks
        .remainder()
        .iter()
        .map(|&(j, w)| w * x[j as usize])
        .sum();
    for c in chunks {
        for (a, &(j, w)) in acc.iter_mut().zip(c) {
            *a += w * x[j as usize];
        }
    }
    (acc[0] + acc[1]) + (acc[2] + acc[3]) + tail
}

/// kBET acceptance rate: each neighbourhood's batch counts (self included, as scib's
/// pynndescent neighbours are) against the expected frequencies, chi-square test, share of
/// cells with p >= alpha.
pub fn kbet_acceptance(nb: &Neighbors, batches: &[u32]) -> f64 {
    let (codes, n_batches) = recode(batches);
    let mut freq = vec![0f64; n_batches];
    for &b in &codes {
        freq[b as usize] += 1.0;
    }
    let total: f64 = freq.iter().sum();
    let expected: Vec<f64> = freq.iter().map(|f| f / total * nb.k as f64).collect();
    let dof = (n_batches - 1) as f64;
    let mut accepted = 0usize;
    let mut observed = vec![0f64; n_batches];
    for i in 0..nb.n {
        observed.fill(0.0);
        for &j in nb.row(i).0 {
            observed[codes[j as usize] as usize] += 1.0;
        }
        let stat: f64 = observed
            .iter()
            .zip(&expected)
            .map(|(o, e)| (o - e) * (o - e) / e)
            .sum();
        let p = 1.0 - regularized_gamma_p(dof / 2.0, stat / 2.0);
        if p >= ALPHA {
            accepted += 1;
        }
    }
    accepted as f64 / nb.n as f64
}

/// Regularised lower incomplete gamma P(a, x) (the chi-square CDF is P(dof/2, x/2)).
pub fn regularized_gamma_p(a: f64, x: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    // The project's f64 ln Gamma (checked against known values and scvi-tools fixtures).
    let lg = crate::special::lgamma(a);
    if x < a + 1.0 {
        let (mut sum, mut term, mut ap) = (1.0 / a, 1.0 / a, a);
        for _ in 0..1000 {
            ap += 1.0;
            term *= x / ap;
            sum += term;
            if term.abs() < sum.abs() * 1e-15 {
                break;
            }
        }
        (sum.ln() - x + a * x.ln() - lg).exp().min(1.0)
    } else {
        // Continued fraction for Q(a, x) (modified Lentz).
        let tiny = 1e-300;
        let mut b = x + 1.0 - a;
        let mut c = 1.0 / tiny;
        let mut d = 1.0 / b;
        let mut h = d;
        for i in 1..1000 {
            let an = -(i as f64) * (i as f64 - a);
            b += 2.0;
            d = an * d + b;
            if d.abs() < tiny {
                d = tiny;
            }
            c = b + an / c;
            if c.abs() < tiny {
                c = tiny;
            }
            d = 1.0 / d;
            let del = d * c;
            h *= del;
            if (del - 1.0).abs() < 1e-15 {
                break;
            }
        }
        1.0 - ((-x + a * x.ln() - lg).exp() * h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chi_square_cdf_known_values() {
        // scipy.stats.chi2.cdf(3.84, 1) = 0.949956..., chi2.cdf(10, 4) = 0.959572...
        assert!((regularized_gamma_p(0.5, 3.84 / 2.0) - 0.949_956_4).abs() < 1e-6);
        assert!((regularized_gamma_p(2.0, 5.0) - 0.959_572_3).abs() < 1e-6);
        assert!((regularized_gamma_p(1.0, 0.1) - (1.0 - (-0.1f64).exp())).abs() < 1e-12);
    }

    #[test]
    fn mixed_batches_accept_and_separated_ones_reject() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let n = 600;
        let mixed: Vec<f32> = (0..n * 4).map(|_| rng.r#gen::<f32>()).collect();
        let batches: Vec<u32> = (0..n).map(|i| (i % 3) as u32).collect();
        let labels = vec![0u32; n];
        let nb = knn_graph(&mixed, n, 4, 50);
        let good = kbet_per_label(&nb, &batches, &labels, 1);
        // Shift each batch apart: neighbourhoods become single-batch.
        let split: Vec<f32> = (0..n * 4)
            .map(|p| mixed[p] + 5.0 * batches[p / 4] as f32)
            .collect();
        let nb2 = knn_graph(&split, n, 4, 50);
        let bad = kbet_per_label(&nb2, &batches, &labels, 1);
        assert!(good > 0.7, "mixed {good}");
        assert!(bad < 0.05, "split {bad}");
    }
}
