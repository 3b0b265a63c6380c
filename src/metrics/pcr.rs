//! Principal component regression (scib-metrics' `pcr_comparison`) and the unintegrated PCA
//! it compares against.
//!
//! scib's `principal_component_regression` with every component kept is the variance-weighted
//! mean over PCs of the R^2 of regressing each PC on the one-hot batch; summed over a full
//! orthonormal basis that is the between-batch sum of squares over the total sum of squares,
//! so no PCA of the embedding is needed.

use rayon::prelude::*;

use super::eigen::lanczos_top;
use crate::backend::GemmSpec;
use crate::backend::cpu::gemm::gemm;
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
pub fn unintegrated_pca(counts: &Csr, genes: &[usize], n_comps: usize) -> Vec<f32> {
    let n = counts.n_rows;
    let g = genes.len();
    let mut col = vec![u32::MAX; counts.n_cols];
    for (p, &j) in genes.iter().enumerate() {
        col[j] = p as u32;
    }
    let mut xs = vec![0f32; n * g];
    xs.par_chunks_mut(g.max(1))
        .enumerate()
        .for_each(|(i, row)| {
            let (idx, val) = counts.row(i);
            let lib: f32 = val.iter().sum();
            if lib <= 0.0 {
                return;
            }
            for (&j, &v) in idx.iter().zip(val) {
                let p = col[j as usize];
                if p != u32::MAX {
                    row[p as usize] = (v * (1e4f32 / lib)).ln_1p();
                }
            }
        });
    standardise_columns(&mut xs, n, g);
    // Clipping moves the means a little; PCA centres again.
    centre_columns(&mut xs, n, g);
    let mut cov = vec![0f32; g * g];
    gemm(
        GemmSpec {
            m: g,
            n: g,
            k: n,
            trans_a: true,
            trans_b: false,
            alpha: 1.0,
            beta: 0.0,
        },
        &xs,
        &xs,
        &mut cov,
    );
    let k = n_comps.min(g).min(n);
    let (_, vecs) = lanczos_top(g, k, (4 * k + 50).min(g), 2, |v, out| {
        out.par_iter_mut().enumerate().for_each(|(r, o)| {
            *o = cov[r * g..(r + 1) * g]
                .iter()
                .zip(v)
                .map(|(&c, &x)| c as f64 * x)
                .sum();
        });
    });
    let mut coords = vec![0f32; n * k];
    coords
        .par_chunks_mut(k.max(1))
        .enumerate()
        .for_each(|(i, out)| {
            let row = &xs[i * g..(i + 1) * g];
            for (c, v) in vecs.iter().enumerate() {
                out[c] = row.iter().zip(v).map(|(&a, &b)| a as f64 * b).sum::<f64>() as f32;
            }
        });
    coords
}

fn column_means(xs: &[f32], n: usize, g: usize) -> Vec<f64> {
    let mut mean = vec![0f64; g];
    for row in xs.chunks(g.max(1)) {
        mean.iter_mut().zip(row).for_each(|(m, &v)| *m += v as f64);
    }
    mean.iter_mut().for_each(|m| *m /= n as f64);
    mean
}

fn standardise_columns(xs: &mut [f32], n: usize, g: usize) {
    let mean = column_means(xs, n, g);
    let mut var = vec![0f64; g];
    for row in xs.chunks(g.max(1)) {
        for j in 0..g {
            let c = row[j] as f64 - mean[j];
            var[j] += c * c;
        }
    }
    let sd: Vec<f64> = var
        .iter()
        .map(|v| {
            let s = (v / (n as f64 - 1.0).max(1.0)).sqrt();
            if s == 0.0 { 1.0 } else { s }
        })
        .collect();
    xs.par_chunks_mut(g.max(1)).for_each(|row| {
        for j in 0..g {
            row[j] = (((row[j] as f64 - mean[j]) / sd[j]) as f32).clamp(-10.0, 10.0);
        }
    });
}

fn centre_columns(xs: &mut [f32], n: usize, g: usize) {
    let mean = column_means(xs, n, g);
    xs.par_chunks_mut(g.max(1)).for_each(|row| {
        row.iter_mut()
            .zip(&mean)
            .for_each(|(v, &m)| *v = (*v as f64 - m) as f32);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

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
