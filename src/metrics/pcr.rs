//! Principal component regression (scib-metrics' `pcr_comparison`) and the unintegrated PCA
//! it compares against.
//!
//! scib's `principal_component_regression` with every component kept is the variance-weighted
//! mean over PCs of the R^2 of regressing each PC on the one-hot batch; summed over a full
//! orthonormal basis that is the between-batch sum of squares over the total sum of squares,
//! so no PCA of the embedding is needed.

use rayon::prelude::*;

use super::eigen::lanczos_top;
use crate::data::csr::Csr;

/// Share of the embedding's variance explained by the batch (between-batch / total SS).
pub fn pcr(x: &[f32], d: usize, batches: &[u32], n_batches: usize) -> f64 {
    let n = batches.len();
    let mut mean = vec![0f64; d];
    let mut group = vec![0f64; n_batches * d];
    let mut count = vec![0f64; n_batches];
    for i in 0..n {
        let b = batches[i] as usize;
        count[b] += 1.0;
        for j in 0..d {
            let v = x[i * d + j] as f64;
            mean[j] += v;
            group[b * d + j] += v;
        }
    }
    mean.iter_mut().for_each(|m| *m /= n as f64);
    let mut total = 0.0;
    for i in 0..n {
        for j in 0..d {
            let c = x[i * d + j] as f64 - mean[j];
            total += c * c;
        }
    }
    let mut between = 0.0;
    for b in 0..n_batches {
        if count[b] == 0.0 {
            continue;
        }
        for j in 0..d {
            let c = group[b * d + j] / count[b] - mean[j];
            between += count[b] * c * c;
        }
    }
    if total == 0.0 { 0.0 } else { between / total }
}

/// `pcr_comparison(scale=True)`: (pcr_pre - pcr_post) / pcr_pre, floored at 0.
pub fn pcr_comparison(pcr_pre: f64, pcr_post: f64) -> f64 {
    ((pcr_pre - pcr_post) / pcr_pre).max(0.0)
}

/// The unintegrated embedding of `shared/bench/peers.py`: normalize_total(1e4) + log1p over
/// all genes, the given genes (its 2,000 seurat_v3 HVGs, or all), scaled to zero mean and unit
/// variance (ddof 1) clipped at +-10, and the first `n_comps` principal components
/// (`n x n_comps`, row-major).
///
/// The scaled matrix is dense, but it is a constant row plus a matrix with the counts'
/// sparsity (see [`ScaledLog`]), so Lanczos runs on sparse products instead of a dense
/// covariance.
pub fn unintegrated_pca(counts: &Csr, genes: &[usize], n_comps: usize) -> Vec<f32> {
    let y = ScaledLog::new(counts, genes);
    let (n, g) = (y.n, y.g);
    let k = n_comps.min(g).min(n);
    let (_, vecs) = lanczos_top(g, k, (4 * k + 50).min(g), 2, |v, out| y.gram_times(v, out));
    let bv: Vec<f64> = vecs
        .iter()
        .map(|v| y.base.iter().zip(v).map(|(a, b)| a * b).sum())
        .collect();
    let mut coords = vec![0f32; n * k];
    coords
        .par_chunks_mut(k.max(1))
        .enumerate()
        .for_each(|(i, out)| {
            let r = y.indptr[i]..y.indptr[i + 1];
            for (c, v) in vecs.iter().enumerate() {
                let sparse: f64 = y.cols[r.clone()]
                    .iter()
                    .zip(&y.vals[r.clone()])
                    .map(|(&j, &a)| a * v[j as usize])
                    .sum();
                out[c] = (bv[c] + sparse) as f32;
            }
        });
    coords
}

/// The scaled, clipped, centred log-normalised matrix Y (`n x g`) as `1 base^T + A`: `base` is
/// the value of a zero count in each gene, `A` (the counts' sparsity pattern) what a stored
/// count adds to it.
struct ScaledLog {
    n: usize,
    g: usize,
    base: Vec<f64>,
    indptr: Vec<usize>,
    cols: Vec<u32>,
    vals: Vec<f64>,
}

/// `sum a v[j]` over one sparse row in four interleaved partial sums (one running sum is a
/// chain of dependent adds).
fn sparse_dot(cols: &[u32], vals: &[f64], v: &[f64]) -> f64 {
    let mut acc = [0f64; 4];
    let (cc, cv) = (cols.chunks_exact(4), vals.chunks_exact(4));
    let tail: f64 = cc
        .remainder()
        .iter()
        .zip(cv.remainder())
        .map(|(&j, &a)| a * v[j as usize])
        .sum();
    for (c, a) in cc.zip(cv) {
        for ((s, &j), &w) in acc.iter_mut().zip(c).zip(a) {
            *s += w * v[j as usize];
        }
    }
    (acc[0] + acc[1]) + (acc[2] + acc[3]) + tail
}

/// Rows per chunk of the transposed product (a fixed split keeps the sums' order, and so the
/// result, independent of the thread count).
const ROW_CHUNK: usize = 512;

impl ScaledLog {
    fn new(counts: &Csr, genes: &[usize]) -> ScaledLog {
        let n = counts.n_rows;
        let g = genes.len();
        let mut col = vec![u32::MAX; counts.n_cols];
        for (p, &j) in genes.iter().enumerate() {
            col[j] = p as u32;
        }
        let mut indptr = vec![0usize; n + 1];
        let mut cols = Vec::new();
        let mut logs: Vec<f64> = Vec::new();
        for i in 0..n {
            let (idx, val) = counts.row(i);
            let lib: f32 = val.iter().sum();
            if lib > 0.0 {
                for (&j, &v) in idx.iter().zip(val) {
                    let p = col[j as usize];
                    if p != u32::MAX && v != 0.0 {
                        cols.push(p);
                        logs.push((v * (1e4f32 / lib)).ln_1p() as f64);
                    }
                }
            }
            indptr[i + 1] = cols.len();
        }
        let (mut sum, mut sum2, mut nnz) = (vec![0f64; g], vec![0f64; g], vec![0usize; g]);
        for (&j, &l) in cols.iter().zip(&logs) {
            sum[j as usize] += l;
            sum2[j as usize] += l * l;
            nnz[j as usize] += 1;
        }
        let nf = n as f64;
        let mu: Vec<f64> = sum.iter().map(|s| s / nf).collect();
        let sd: Vec<f64> = (0..g)
            .map(|j| {
                let var = ((sum2[j] - nf * mu[j] * mu[j]) / (nf - 1.0).max(1.0)).max(0.0);
                if var == 0.0 { 1.0 } else { var.sqrt() }
            })
            .collect();
        let clip = |z: f64| z.clamp(-10.0, 10.0);
        let zero_value: Vec<f64> = (0..g).map(|j| clip(-mu[j] / sd[j])).collect();
        let clipped: Vec<f64> = cols
            .iter()
            .zip(&logs)
            .map(|(&j, &l)| clip((l - mu[j as usize]) / sd[j as usize]))
            .collect();
        // Clipping moves the means a little; PCA centres again.
        let mut mean: Vec<f64> = (0..g)
            .map(|j| (nf - nnz[j] as f64) * zero_value[j])
            .collect();
        for (&j, &z) in cols.iter().zip(&clipped) {
            mean[j as usize] += z;
        }
        mean.iter_mut().for_each(|m| *m /= nf);
        let base: Vec<f64> = (0..g).map(|j| zero_value[j] - mean[j]).collect();
        let vals = cols
            .iter()
            .zip(&clipped)
            .map(|(&j, &z)| z - zero_value[j as usize])
            .collect();
        ScaledLog {
            n,
            g,
            base,
            indptr,
            cols,
            vals,
        }
    }

    /// out = Y^T (Y v), in one pass over the rows: each row's `Y v` entry is scattered back
    /// while the row is still in cache, so the stored values are read once per product
    /// (reading them is most of the PCA's time). The row chunks are fixed, so the sums' order,
    /// and the result, do not depend on the thread count.
    fn gram_times(&self, v: &[f64], out: &mut [f64]) {
        let bv: f64 = self.base.iter().zip(v).map(|(a, b)| a * b).sum();
        let starts: Vec<usize> = (0..self.n).step_by(ROW_CHUNK).collect();
        let parts: Vec<(Vec<f64>, f64)> = starts
            .par_iter()
            .map(|&r0| {
                let mut acc = vec![0f64; self.g];
                let mut total = 0.0;
                for i in r0..(r0 + ROW_CHUNK).min(self.n) {
                    let r = self.indptr[i]..self.indptr[i + 1];
                    let (cols, vals) = (&self.cols[r.clone()], &self.vals[r]);
                    let ui = bv + sparse_dot(cols, vals, v);
                    total += ui;
                    for (&j, &a) in cols.iter().zip(vals) {
                        acc[j as usize] += a * ui;
                    }
                }
                (acc, total)
            })
            .collect();
        let total: f64 = parts.iter().map(|p| p.1).sum();
        out.iter_mut()
            .zip(&self.base)
            .for_each(|(o, b)| *o = b * total);
        for (acc, _) in &parts {
            out.iter_mut().zip(acc).for_each(|(o, a)| *o += a);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gram_product_matches_the_dense_scaled_matrix() {
        // 700 cells (two row chunks) x 6 genes of small counts, gene 5 left out.
        let (n, g_all) = (700usize, 6usize);
        let (mut indptr, mut indices, mut data) = (vec![0u64], Vec::new(), Vec::new());
        for i in 0..n {
            for j in 0..g_all {
                let c = ((i * 7 + j * 3) % 5) as f32 * ((i + j) % 2) as f32;
                if c > 0.0 {
                    indices.push(j as u32);
                    data.push(c);
                }
            }
            indptr.push(indices.len() as u64);
        }
        let counts = Csr {
            n_rows: n,
            n_cols: g_all,
            indptr,
            indices,
            data,
        };
        let genes = [0usize, 1, 2, 3, 4];
        let y = ScaledLog::new(&counts, &genes);
        let g = genes.len();
        let mut dense = vec![0f64; n * g];
        for i in 0..n {
            dense[i * g..(i + 1) * g].copy_from_slice(&y.base);
            for p in y.indptr[i]..y.indptr[i + 1] {
                dense[i * g + y.cols[p] as usize] += y.vals[p];
            }
        }
        let v = [0.3, -1.0, 0.5, 2.0, -0.7];
        let mut got = vec![0f64; g];
        y.gram_times(&v, &mut got);
        for (c, &gc) in got.iter().enumerate() {
            let want: f64 = (0..n)
                .map(|i| {
                    let yv: f64 = (0..g).map(|j| dense[i * g + j] * v[j]).sum();
                    dense[i * g + c] * yv
                })
                .sum();
            assert!(
                (gc - want).abs() < 1e-9 * want.abs().max(1.0),
                "{c}: {gc} vs {want}"
            );
        }
    }

    #[test]
    fn pcr_is_the_batch_share_of_variance() {
        // Batch 0 at x = 0, 2; batch 1 at x = 10, 12: between SS 100, total 104.
        let x = [0.0f32, 2.0, 10.0, 12.0];
        let v = pcr(&x, 1, &[0, 0, 1, 1], 2);
        assert!((v - 100.0 / 104.0).abs() < 1e-12);
        assert_eq!(pcr_comparison(0.5, 0.6), 0.0);
        assert!((pcr_comparison(0.5, 0.1) - 0.8).abs() < 1e-12);
    }
}
