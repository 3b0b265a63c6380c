//! `flavor="seurat"`: dispersion of normalised expression, z-scored within 20
//! bins of mean expression (Satija et al. 2015), selected per batch and merged.

use super::seurat_v3::desc_nan_last;
use super::stats::{BatchSums, batch_sums, mean_var};
use super::{BatchedCounts, HvgResult, take_top};
use crate::data::preprocess::library_sizes;

/// scanpy's default `n_bins`.
const N_BINS: usize = 20;
/// `normalize_total(target_sum=...)` as scDREAMER calls it.
const TARGET_SUM: f32 = 1e4;

/// Select `n_top` highly variable genes like scanpy 1.11.5 on
/// `normalize_total(target_sum=1e4)` + `log1p` of the counts `x`, then
/// `highly_variable_genes(flavor="seurat", n_top_genes=n_top, batch_key=...)`.
///
/// The log-normalised values are computed on the fly, in float32 as scanpy does,
/// with each cell's library size over all genes. Per batch, over the genes
/// expressed in it: mean and dispersion (variance / mean) of `expm1` of the log
/// data, log dispersion z-scored within 20 equal-width bins of `log1p(mean)`
/// (a bin with a single gene gives it normalised dispersion 1), and the top
/// `n_top` genes by normalised dispersion (ties all kept). Genes are ordered by
/// the number of batches that selected them, then by the mean normalised
/// dispersion over batches (0 for batches where the gene is unexpressed), then
/// by gene index; the first `n_top` win. With `n_top >= genes` all genes are kept.
/// `batch = None` means a single batch.
///
/// Difference from scanpy: scanpy breaks exact ties by gene name (alphabetical),
/// we by gene index.
pub fn seurat(counts: BatchedCounts<'_>, n_top: usize) -> anyhow::Result<HvgResult> {
    let (codes, n_batches, cells_per_batch) = counts.layout()?;
    let x = counts.x;
    let divisors: Vec<f32> = library_sizes(x).into_iter().map(divisor).collect();
    let sums = batch_sums(x, &codes, n_batches, |cell, _, _, v| {
        log_norm_terms(v, divisors[cell])
    });
    Ok(seurat_from_sums(&sums, &cells_per_batch, n_top))
}

/// Per-cell divisor as scanpy's normalize_total: float32 library size (over all genes) /
/// target, with empty cells left unscaled.
pub fn divisor(library: f32) -> f32 {
    let d = library / TARGET_SUM;
    if d == 0.0 { 1.0 } else { d }
}

/// The summed terms of one count: `expm1(log1p(v / divisor))` and its square.
pub fn log_norm_terms(v: f32, divisor: f32) -> (f64, f64) {
    // log1p then expm1, both in float32: not an identity after rounding.
    let e = (v / divisor).ln_1p().exp_m1();
    (e as f64, (e * e) as f64)
}

/// The selection from per-batch sums of [`log_norm_terms`] and the number of cells of each
/// batch (the second half of [`seurat`], shared with the streamed selection).
pub fn seurat_from_sums(sums: &BatchSums, cells_per_batch: &[usize], n_top: usize) -> HvgResult {
    let n_batches = cells_per_batch.len();
    let g = sums.n_genes;
    let mut dn_sum = vec![0.0f64; g];
    let mut dn_count = vec![0u32; g];
    let mut n_batches_hvg = vec![0u32; g];
    for b in (0..n_batches).filter(|&b| cells_per_batch[b] > 0) {
        let n = cells_per_batch[b];
        let expressed: Vec<usize> = (0..g)
            .filter(|&j| sums.n_positive[sums.at(b, j)] > 0)
            .collect();
        let mut log_mean = Vec::with_capacity(expressed.len());
        let mut log_disp = Vec::with_capacity(expressed.len());
        for &j in &expressed {
            let k = sums.at(b, j);
            let (mut mean, var) = mean_var(sums.sum[k], sums.sum_sq[k], n);
            if mean == 0.0 {
                mean = 1e-12;
            }
            let disp = var / mean;
            log_disp.push(if disp == 0.0 { f64::NAN } else { disp.ln() });
            log_mean.push(mean.ln_1p());
        }
        let norm = normalised_dispersion(&log_mean, &log_disp);
        let chosen = top_with_ties(&norm, n_top);
        for (i, &j) in expressed.iter().enumerate() {
            if !norm[i].is_nan() {
                dn_sum[j] += norm[i];
                dn_count[j] += 1;
            }
            n_batches_hvg[j] += u32::from(chosen[i]);
        }
        // Unexpressed genes enter scanpy's per-gene mean with dispersions_norm 0.
        let positive = &sums.n_positive[b * g..(b + 1) * g];
        for (count, &p) in dn_count.iter_mut().zip(positive) {
            if p == 0 {
                *count += 1;
            }
        }
    }
    let score: Vec<f64> = dn_sum
        .iter()
        .zip(&dn_count)
        .map(|(&s, &c)| if c == 0 { f64::NAN } else { s / c as f64 })
        .collect();
    let mut order: Vec<usize> = (0..g).collect();
    order.sort_by(|&p, &q| {
        n_batches_hvg[q]
            .cmp(&n_batches_hvg[p])
            .then(desc_nan_last(score[p], score[q]))
    });
    HvgResult {
        selected: take_top(order, n_top),
        score,
        n_batches_hvg,
        median_rank: None,
    }
}

/// Bin index of each value as `pd.cut(values, bins=N_BINS)`: equal-width bins
/// over [min, max], right-closed, with the lowest edge moved down by 0.1% of the
/// range (or, when all values are equal, the range widened by 0.1%).
fn mean_bins(values: &[f64]) -> Vec<usize> {
    let (mut lo, mut hi) = values
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| {
            (a.min(v), b.max(v))
        });
    let equal = lo == hi;
    if equal {
        lo -= if lo != 0.0 { 0.001 * lo.abs() } else { 0.001 };
        hi += if hi != 0.0 { 0.001 * hi.abs() } else { 0.001 };
    }
    // np.linspace: start + i * step, last edge exactly the stop.
    let step = (hi - lo) / N_BINS as f64;
    let mut edges: Vec<f64> = (0..=N_BINS).map(|i| i as f64 * step + lo).collect();
    edges[N_BINS] = hi;
    if !equal {
        edges[0] -= (hi - lo) * 0.001;
    }
    values
        .iter()
        // searchsorted(side="left") - 1: the number of edges strictly below v, minus one.
        .map(|&v| edges.partition_point(|&e| e < v).clamp(1, N_BINS) - 1)
        .collect()
}

/// (dispersion - bin mean) / bin std (ddof 1) over the non-NaN dispersions of
/// each mean bin. A bin whose std is undefined (one usable gene) uses mean 0 and
/// std = its mean, as scanpy's `_postprocess_dispersions_seurat`.
fn normalised_dispersion(log_mean: &[f64], log_disp: &[f64]) -> Vec<f64> {
    if log_mean.is_empty() {
        return Vec::new();
    }
    let bins = mean_bins(log_mean);
    let mut count = [0usize; N_BINS];
    let mut sum = [0.0f64; N_BINS];
    for (&b, &d) in bins.iter().zip(log_disp) {
        if !d.is_nan() {
            count[b] += 1;
            sum[b] += d;
        }
    }
    let avg: Vec<f64> = (0..N_BINS)
        .map(|b| {
            if count[b] == 0 {
                f64::NAN
            } else {
                sum[b] / count[b] as f64
            }
        })
        .collect();
    let mut ss = [0.0f64; N_BINS];
    for (&b, &d) in bins.iter().zip(log_disp) {
        if !d.is_nan() {
            ss[b] += (d - avg[b]).powi(2);
        }
    }
    let (mut center, mut dev) = (avg.clone(), vec![f64::NAN; N_BINS]);
    for b in 0..N_BINS {
        if count[b] >= 2 {
            dev[b] = (ss[b] / (count[b] - 1) as f64).sqrt();
        } else {
            dev[b] = avg[b];
            center[b] = 0.0;
        }
    }
    bins.iter()
        .zip(log_disp)
        .map(|(&b, &d)| (d - center[b]) / dev[b])
        .collect()
}

/// scanpy's per-batch `_subset_genes` with `n_top_genes`: every value at least
/// the `n`-th highest non-NaN value, `n = min(n_top, genes, non-NaN values)`.
fn top_with_ties(values: &[f64], n_top: usize) -> Vec<bool> {
    let mut finite: Vec<f64> = values.iter().copied().filter(|v| !v.is_nan()).collect();
    let n = n_top.min(values.len()).min(finite.len());
    if n == 0 {
        return vec![false; values.len()];
    }
    finite.sort_by(|a, b| b.total_cmp(a));
    let cut = finite[n - 1];
    values.iter().map(|&v| !v.is_nan() && v >= cut).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bins_follow_pandas_cut() {
        // pd.cut([0, 1, 2, ..., 20], 20) puts 0 and 1 in bin 0, k in bin k-1.
        let v: Vec<f64> = (0..=20).map(|i| i as f64).collect();
        let b = mean_bins(&v);
        assert_eq!(b[0], 0);
        assert_eq!(b[1], 0);
        assert_eq!(b[2], 1);
        assert_eq!(b[20], 19);
        assert_eq!(mean_bins(&[3.0, 3.0]), vec![9, 9]);
    }

    #[test]
    fn single_gene_bin_gets_one() {
        // Two genes far apart: each alone in its bin -> normalised dispersion 1.
        let n = normalised_dispersion(&[0.0, 10.0], &[0.3, -2.0]);
        assert_eq!(n, vec![1.0, 1.0]);
    }

    #[test]
    fn ties_are_all_selected() {
        let t = top_with_ties(&[1.0, 3.0, 3.0, f64::NAN, 0.5], 2);
        assert_eq!(t, vec![false, true, true, false, false]);
        let t = top_with_ties(&[1.0, 2.0, 3.0], 1);
        assert_eq!(t, vec![false, false, true]);
    }
}
