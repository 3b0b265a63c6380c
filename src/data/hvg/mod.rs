//! Highly variable genes, reproducing scanpy 1.11.5 `sc.pp.highly_variable_genes`
//! with `batch_key` for the flavors `seurat_v3` (on raw counts) and `seurat` (on
//! `normalize_total(target_sum=1e4)` + `log1p` data, computed on the fly).
//!
//! Everything works on the CSR counts in place: memory is O(genes x batches).

pub mod loess;
mod seurat;
mod seurat_v3;
mod stats;
pub mod streamed;

pub use seurat::seurat;
pub use seurat_v3::{seurat_v3, seurat_v3_paper};

use crate::data::AnnData;
use crate::data::csr::Csr;

/// How the genes a model uses are chosen.
#[derive(Clone, Debug)]
pub enum GeneSelection {
    /// scanpy seurat_v3 on counts, per batch.
    SeuratV3(usize),
    /// scanpy seurat on log-normalised data, per batch.
    Seurat(usize),
    /// These var indices.
    Given(Vec<usize>),
    All,
}

/// Selects genes. Cells and genes without counts are ignored by HVG selection.
pub fn select_genes(
    adata: &AnnData,
    batch: &[u32],
    n_batches: usize,
    how: &GeneSelection,
) -> anyhow::Result<Vec<usize>> {
    let col_sums = adata.x.col_sums();
    let nonzero_genes: Vec<usize> = (0..adata.n_vars()).filter(|&j| col_sums[j] > 0.0).collect();
    let n_top = match how {
        GeneSelection::Given(g) => return Ok(g.clone()),
        GeneSelection::All => return Ok(nonzero_genes),
        GeneSelection::SeuratV3(n) | GeneSelection::Seurat(n) => *n,
    };
    if n_top >= nonzero_genes.len() {
        return Ok(nonzero_genes);
    }
    let row_sums = adata.x.row_sums();
    let cells: Vec<usize> = (0..adata.n_obs()).filter(|&i| row_sums[i] > 0.0).collect();
    let sub = adata.x.select(&cells, &nonzero_genes);
    let sub_batch: Vec<u32> = cells.iter().map(|&i| batch[i]).collect();
    let counts = BatchedCounts::new(&sub, Some(&sub_batch), n_batches);
    let res: HvgResult = match how {
        GeneSelection::SeuratV3(_) => seurat_v3(counts, n_top)?,
        _ => seurat(counts, n_top)?,
    };
    Ok(res.selected.iter().map(|&k| nonzero_genes[k]).collect())
}

/// What a selection reads: counts (cells x genes) and the batch code of each cell, or
/// `batch = None` for one batch.
#[derive(Clone, Copy, Debug)]
pub struct BatchedCounts<'a> {
    pub x: &'a Csr,
    pub batch: Option<&'a [u32]>,
    pub n_batches: usize,
}

impl<'a> BatchedCounts<'a> {
    pub fn new(x: &'a Csr, batch: Option<&'a [u32]>, n_batches: usize) -> Self {
        BatchedCounts {
            x,
            batch,
            n_batches,
        }
    }

    /// The batch code of each cell (checked), the number of batches and the cells of each.
    fn layout(&self) -> anyhow::Result<(Vec<u32>, usize, Vec<usize>)> {
        batch_layout(self.x.n_rows, self.batch, self.n_batches)
    }
}

/// Outcome of a highly-variable-gene selection.
#[derive(Clone, Debug, PartialEq)]
pub struct HvgResult {
    /// Selected gene indices, ascending.
    pub selected: Vec<usize>,
    /// Per gene, the statistic genes are ranked by, averaged over batches:
    /// normalised variance (`variances_norm`) for seurat_v3, normalised
    /// dispersion (`dispersions_norm`, NaN where undefined) for seurat.
    pub score: Vec<f64>,
    /// Per gene, in how many batches it was among that batch's top genes
    /// (`highly_variable_nbatches`).
    pub n_batches_hvg: Vec<u32>,
    /// seurat_v3 only: median within-batch rank over the batches where the gene
    /// is in the top `n_top` (`highly_variable_rank`, NaN if in none).
    pub median_rank: Option<Vec<f64>>,
}

/// Cells of each batch, after checking the batch codes against the matrix.
/// Without batch codes every cell is in batch 0.
fn batch_layout(
    n_cells: usize,
    batch: Option<&[u32]>,
    n_batches: usize,
) -> anyhow::Result<(Vec<u32>, usize, Vec<usize>)> {
    let (codes, n_batches) = match batch {
        None => (vec![0u32; n_cells], 1),
        Some(b) => {
            anyhow::ensure!(
                b.len() == n_cells,
                "highly variable genes: {} batch codes for {} cells",
                b.len(),
                n_cells
            );
            if let Some((cell, &c)) = b
                .iter()
                .enumerate()
                .find(|(_, c)| **c as usize >= n_batches)
            {
                anyhow::bail!(
                    "highly variable genes: cell {cell} has batch code {c}, but there are only {n_batches} batches"
                );
            }
            (b.to_vec(), n_batches)
        }
    };
    let mut counts = vec![0usize; n_batches];
    for &c in &codes {
        counts[c as usize] += 1;
    }
    Ok((codes, n_batches, counts))
}

/// Indices of the first `n_top` genes of `order`, sorted ascending.
fn take_top(mut order: Vec<usize>, n_top: usize) -> Vec<usize> {
    order.truncate(n_top);
    order.sort_unstable();
    order
}

#[cfg(test)]
mod tests;
