//! `flavor="seurat_v3"`: variance of counts standardised by a LOESS-regularised
//! standard deviation, ranked within each batch (Stuart et al. 2019).

use std::cmp::Ordering;

use super::loess::loess_fitted;
use super::stats::{BatchSums, batch_sums, mean_var};
use super::{BatchedCounts, HvgResult, take_top};

/// LOESS span scanpy uses for the mean-variance trend.
const SPAN: f64 = 0.3;

/// Select `n_top` highly variable genes from raw counts like scanpy 1.11.5
/// `highly_variable_genes(flavor="seurat_v3", n_top_genes=n_top, batch_key=...)`.
///
/// Per batch: mean and variance (ddof 1) of each gene, a LOESS (span 0.3, degree
/// 2) of log10 variance on log10 mean over genes with variance > 0, counts
/// clipped at `mean + sqrt(cells) * reg_std`, then the normalised variance;
/// genes are ranked by it within the batch. Genes are then ordered by median rank
/// over the batches where they are in the top `n_top` (ascending), ties by that
/// number of batches (descending), then by gene index; the first `n_top` win.
/// Exact ties in normalised variance within a batch are ranked by gene index
/// (numpy's unstable argsort orders them arbitrarily, which can swap a gene at
/// the cut-off).
/// With `n_top >= genes` all genes are kept. `batch = None` means one batch.
pub fn seurat_v3(counts: BatchedCounts<'_>, n_top: usize) -> anyhow::Result<HvgResult> {
    seurat_v3_ordered(counts, n_top, false)
}

/// Like [`seurat_v3`], but ordered as scanpy's `flavor="seurat_v3_paper"` (and
/// Seurat's `SelectIntegrationFeatures`): first by the number of batches where
/// the gene is in the top `n_top` (descending), then by median rank (ascending).
pub fn seurat_v3_paper(counts: BatchedCounts<'_>, n_top: usize) -> anyhow::Result<HvgResult> {
    seurat_v3_ordered(counts, n_top, true)
}

fn seurat_v3_ordered(
    counts: BatchedCounts<'_>,
    n_top: usize,
    batches_first: bool,
) -> anyhow::Result<HvgResult> {
    let (codes, n_batches, cells_per_batch) = counts.layout()?;
    let x = counts.x;
    let sums = batch_sums(x, &codes, n_batches, |_, _, _, v| raw_terms(v));
    let fit = V3Fit::new(&sums, &cells_per_batch)?;
    let clipped = batch_sums(x, &codes, n_batches, |_, b, j, v| {
        fit.clipped_terms(b, j, v)
    });
    Ok(fit.select(&clipped, n_top, batches_first))
}

/// The first pass's terms: the count and its square (scanpy squares the float32 count in
/// float32 for the variance).
pub fn raw_terms(v: f32) -> (f64, f64) {
    (v as f64, (v * v) as f64)
}

/// Everything seurat_v3 learns from the first pass (per-batch means and variances): the
/// LOESS-regularised standard deviations and the clip thresholds of the second pass.
pub struct V3Fit {
    n_genes: usize,
    cells_per_batch: Vec<usize>,
    present: Vec<usize>,
    means: Vec<f64>,
    clip: Vec<f64>,
    reg_std: Vec<f64>,
}

impl V3Fit {
    /// From the per-batch sums of [`raw_terms`] and the number of cells of each batch.
    pub fn new(sums: &BatchSums, cells_per_batch: &[usize]) -> anyhow::Result<V3Fit> {
        let n_batches = cells_per_batch.len();
        let g = sums.n_genes;
        let present: Vec<usize> = (0..n_batches).filter(|&b| cells_per_batch[b] > 0).collect();
        let mut means = vec![0.0f64; n_batches * g];
        let mut clip = vec![0.0f64; n_batches * g];
        let mut reg_std = vec![0.0f64; n_batches * g];
        for &b in &present {
            let n = cells_per_batch[b];
            anyhow::ensure!(
                n >= 2,
                "seurat_v3 highly variable genes: batch {b} has {n} cell(s); each batch needs at least 2"
            );
            let (mut lx, mut ly, mut varying) = (vec![], vec![], vec![]);
            for j in 0..g {
                let k = sums.at(b, j);
                let (mean, var) = mean_var(sums.sum[k], sums.sum_sq[k], n);
                means[k] = mean;
                if var > 0.0 {
                    lx.push(mean.log10());
                    ly.push(var.log10());
                    varying.push(j);
                }
            }
            let fitted = loess_fitted(&lx, &ly, SPAN).map_err(|e| {
                anyhow::anyhow!(
                    "seurat_v3 highly variable genes, batch {b} ({} genes with variance > 0): {e}",
                    varying.len()
                )
            })?;
            let mut estimate = vec![0.0f64; g];
            for (&j, f) in varying.iter().zip(fitted) {
                estimate[j] = f;
            }
            let vmax = (n as f64).sqrt();
            for (j, est) in estimate.into_iter().enumerate() {
                let k = sums.at(b, j);
                reg_std[k] = 10f64.powf(est).sqrt();
                clip[k] = reg_std[k] * vmax + means[k];
            }
        }
        Ok(V3Fit {
            n_genes: g,
            cells_per_batch: cells_per_batch.to_vec(),
            present,
            means,
            clip,
            reg_std,
        })
    }

    /// The second pass's terms: the count clipped at the batch's threshold, and its square.
    pub fn clipped_terms(&self, batch: usize, gene: usize, v: f32) -> (f64, f64) {
        let e = (v as f64).min(self.clip[batch * self.n_genes + gene]);
        (e, e * e)
    }

    /// Ranks genes from the second pass's sums of [`V3Fit::clipped_terms`].
    pub fn select(&self, clipped: &BatchSums, n_top: usize, batches_first: bool) -> HvgResult {
        let g = self.n_genes;
        let n_batches = self.cells_per_batch.len();
        let present = &self.present;
        let mut norm_var = vec![0.0f64; n_batches * g];
        for &b in present {
            let nf = self.cells_per_batch[b] as f64;
            for j in 0..g {
                let k = clipped.at(b, j);
                let (mean, sd) = (self.means[k], self.reg_std[k]);
                norm_var[k] = (1.0 / ((nf - 1.0) * sd * sd))
                    * (nf * mean * mean + clipped.sum_sq[k] - 2.0 * clipped.sum[k] * mean);
            }
        }

        // Ranks within each batch: 0 = most variable. NaN sorts last as in numpy.
        let mut n_batches_hvg = vec![0u32; g];
        let mut top_ranks: Vec<Vec<f32>> = vec![Vec::new(); g];
        for &b in present {
            let row = &norm_var[b * g..(b + 1) * g];
            let mut order: Vec<usize> = (0..g).collect();
            order.sort_by(|&p, &q| desc_nan_last(row[p], row[q]));
            for (rank, &j) in order.iter().enumerate().take(n_top) {
                n_batches_hvg[j] += 1;
                top_ranks[j].push(rank as f32);
            }
        }
        let median_rank: Vec<f64> = top_ranks.iter_mut().map(|r| median(r)).collect();
        let score: Vec<f64> = (0..g)
            .map(|j| {
                present.iter().map(|&b| norm_var[b * g + j]).sum::<f64>() / present.len() as f64
            })
            .collect();

        let mut order: Vec<usize> = (0..g).collect();
        order.sort_by(|&p, &q| {
            let by_rank = asc_nan_last(median_rank[p], median_rank[q]);
            let by_batches = n_batches_hvg[q].cmp(&n_batches_hvg[p]);
            if batches_first {
                by_batches.then(by_rank)
            } else {
                by_rank.then(by_batches)
            }
        });
        HvgResult {
            selected: take_top(order, n_top),
            score,
            n_batches_hvg,
            median_rank: Some(median_rank),
        }
    }
}

/// Median as `np.ma.median` on float32 ranks (mean of the middle two); NaN if empty.
fn median(v: &mut [f32]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f32::total_cmp);
    let h = v.len() / 2;
    if v.len() % 2 == 1 {
        v[h] as f64
    } else {
        ((v[h - 1] + v[h]) / 2.0) as f64
    }
}

pub(super) fn asc_nan_last(a: f64, b: f64) -> Ordering {
    match (a.is_nan(), b.is_nan()) {
        (false, false) => a.partial_cmp(&b).unwrap_or(Ordering::Equal),
        (x, y) => x.cmp(&y),
    }
}

pub(super) fn desc_nan_last(a: f64, b: f64) -> Ordering {
    match (a.is_nan(), b.is_nan()) {
        (false, false) => b.partial_cmp(&a).unwrap_or(Ordering::Equal),
        (x, y) => x.cmp(&y),
    }
}
