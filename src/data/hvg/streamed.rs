//! Highly variable genes of a matrix streamed from disk in blocks of rows, with the same
//! result as [`super::seurat_v3`] / [`super::seurat`] on the whole matrix (the same sums in the
//! same floating-point order, then the same selection code).
//!
//! As in the in-memory selection (`pipeline::select_genes`), only some rows (cells with counts)
//! and some genes (genes with counts) take part; the caller says which. Sums are kept for every
//! gene of the file (O(genes x batches) memory) and cut down to the chosen genes at the end.

use super::HvgResult;
use super::seurat::{divisor, log_norm_terms, seurat_from_sums};
use super::seurat_v3::{V3Fit, raw_terms};
use super::stats::{BatchSums, SumsAccumulator};
use crate::data::csr::Csr;

/// The HVG methods that can be streamed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamedFlavor {
    /// scanpy seurat_v3 on counts: two passes (moments, then clipped moments).
    SeuratV3,
    /// scanpy seurat on normalize_total + log1p: one pass.
    Seurat,
}

/// A selection in progress: feed the first pass with [`StreamedHvg::add_first`], close it with
/// [`StreamedHvg::end_first`], and for seurat_v3 feed the second pass with
/// [`StreamedHvg::add_second`] before [`StreamedHvg::finish`].
pub struct StreamedHvg {
    flavor: StreamedFlavor,
    n_top: usize,
    n_batches: usize,
    n_genes: usize,
    n_rows: usize,
    acc: Option<SumsAccumulator>,
    added: usize,
    /// After the first pass of seurat_v3: the fit, the chosen genes and each file gene's
    /// position among them (u32::MAX for the others).
    fit: Option<(V3Fit, Vec<usize>, Vec<u32>)>,
}

impl StreamedHvg {
    /// `n_rows`: how many rows will take part in all (cells with counts); `n_genes`: the
    /// file's genes.
    pub fn new(
        flavor: StreamedFlavor,
        n_top: usize,
        n_batches: usize,
        n_genes: usize,
        n_rows: usize,
    ) -> Self {
        StreamedHvg {
            flavor,
            n_top,
            n_batches,
            n_genes,
            n_rows,
            acc: Some(SumsAccumulator::new(n_rows, n_batches, n_genes)),
            added: 0,
            fit: None,
        }
    }

    /// The method.
    pub fn flavor(&self) -> StreamedFlavor {
        self.flavor
    }

    /// First pass over one block of rows, in file order. `x`: the block (every gene of the
    /// file); `rows`: its rows that take part (ascending); `batch` and `library` (total count
    /// over every gene): one per row of the block.
    pub fn add_first(&mut self, x: &Csr, rows: &[usize], batch: &[u32], library: &[f32]) {
        let first = self.added;
        self.added += rows.len();
        let Some(acc) = self.acc.as_mut() else {
            return;
        };
        match self.flavor {
            StreamedFlavor::SeuratV3 => acc.add(x, rows, first, batch, |_, _, _, v| raw_terms(v)),
            StreamedFlavor::Seurat => acc.add(x, rows, first, batch, |cell, _, _, v| {
                log_norm_terms(v, divisor(library[cell]))
            }),
        }
    }

    /// Ends the first pass. `genes`: the file genes to choose among (ascending);
    /// `cells_per_batch`: rows taking part in each batch. Returns the selection (as indices
    /// into `genes`) when no second pass is needed (seurat).
    pub fn end_first(
        &mut self,
        genes: &[usize],
        cells_per_batch: &[usize],
    ) -> anyhow::Result<Option<HvgResult>> {
        anyhow::ensure!(
            self.added == self.n_rows && cells_per_batch.len() == self.n_batches,
            "highly variable genes: {} rows streamed, {} expected",
            self.added,
            self.n_rows
        );
        let sums = self
            .acc
            .take()
            .map(SumsAccumulator::finish)
            .unwrap_or_else(|| SumsAccumulator::new(0, self.n_batches, self.n_genes).finish())
            .select_genes(genes);
        match self.flavor {
            StreamedFlavor::Seurat => {
                Ok(Some(seurat_from_sums(&sums, cells_per_batch, self.n_top)))
            }
            StreamedFlavor::SeuratV3 => {
                let fit = V3Fit::new(&sums, cells_per_batch)?;
                let mut position = vec![u32::MAX; self.n_genes];
                for (k, &j) in genes.iter().enumerate() {
                    position[j] = k as u32;
                }
                self.fit = Some((fit, genes.to_vec(), position));
                self.acc = Some(SumsAccumulator::new(
                    self.n_rows,
                    self.n_batches,
                    self.n_genes,
                ));
                self.added = 0;
                Ok(None)
            }
        }
    }

    /// seurat_v3's second pass: the same blocks and rows as the first, in the same order.
    pub fn add_second(&mut self, x: &Csr, rows: &[usize], batch: &[u32]) {
        let first = self.added;
        self.added += rows.len();
        let (Some(acc), Some((fit, _, position))) = (self.acc.as_mut(), self.fit.as_ref()) else {
            return;
        };
        acc.add(x, rows, first, batch, |_, b, j, v| match position[j] {
            // Genes left out hold only zeros: they add nothing, as in the in-memory matrix
            // that does not have them.
            u32::MAX => (0.0, 0.0),
            k => fit.clipped_terms(b, k as usize, v),
        });
    }

    /// The selection (indices into the `genes` given to [`StreamedHvg::end_first`]).
    pub fn finish(mut self) -> anyhow::Result<HvgResult> {
        let (fit, genes, _) = self
            .fit
            .take()
            .ok_or_else(|| anyhow::anyhow!("highly variable genes: the second pass is missing"))?;
        anyhow::ensure!(
            self.added == self.n_rows,
            "highly variable genes: {} rows streamed in the second pass, {} expected",
            self.added,
            self.n_rows
        );
        let clipped: BatchSums = self
            .acc
            .take()
            .map(SumsAccumulator::finish)
            .unwrap_or_else(|| SumsAccumulator::new(0, self.n_batches, self.n_genes).finish())
            .select_genes(&genes);
        Ok(fit.select(&clipped, self.n_top, false))
    }
}
