//! The training step's minibatch, resident on the device: the cells' rows are the step's one
//! upload; batch codes, library sizes and labels are gathered on the device from per-cell
//! tables uploaded with the data ([`CellTables`]).

use crate::backend::UNLABELLED;
use crate::ops::Backend;
use crate::tape::{DeviceIndices, Indices};

/// Per-cell values the step reads, uploaded once with the data.
pub struct CellTables<B: Backend> {
    pub n_cells: usize,
    /// Observed library size per cell.
    pub library: B::Buf,
    /// Batch code per cell (each < `n_batches`).
    pub batch: B::IdxBuf,
    pub n_batches: usize,
    /// Sup: the per-cell label tables.
    pub labels: Option<LabelTables<B>>,
}

/// Sup's per-cell tables: what a minibatch's labels and label mask are gathered from.
pub struct LabelTables<B: Backend> {
    /// Label code per cell (`UNLABELLED` for none).
    pub codes: B::IdxBuf,
    /// Weight of each cell's label loss, 0 for an unlabelled cell: the only source of the
    /// minibatch's mask.
    pub weights: B::Buf,
    /// The number of label categories.
    pub n_labels: usize,
}

/// Sup's labels as [`CellTables`] uploads them.
#[derive(Clone, Copy)]
pub struct LabelUpload<'a> {
    /// Per cell: its label code, None when unlabelled.
    pub codes: &'a [Option<u32>],
    /// The number of label categories (each code is below it).
    pub n_labels: usize,
    /// Per cell: the weight of its label loss (`TrainConfig::label_weights`), 0 when
    /// unlabelled; None: 1 per labelled cell (label balance 0).
    pub weights: Option<&'a [f32]>,
}

impl<B: Backend> LabelTables<B> {
    /// The tables of `labels` over `n_cells` cells (a cell past `labels.codes` is unlabelled).
    fn upload(backend: &B, n_cells: usize, labels: LabelUpload<'_>) -> anyhow::Result<Self> {
        let table: Vec<u32> = (0..n_cells)
            .map(|r| labels.codes.get(r).copied().flatten().unwrap_or(UNLABELLED))
            .collect();
        let n_labels = labels.n_labels.max(1);
        if let Some(&c) = table
            .iter()
            .find(|&&c| c != UNLABELLED && c as usize >= n_labels)
        {
            anyhow::bail!("label code {c} >= {n_labels} categories");
        }
        let weights: Vec<f32> = match labels.weights {
            Some(w) => {
                anyhow::ensure!(
                    w.len() == n_cells,
                    "{} label weights for {n_cells} cells",
                    w.len()
                );
                if let Some(r) = (0..n_cells).find(|&r| table[r] == UNLABELLED && w[r] != 0.0) {
                    anyhow::bail!("unlabelled cell {r} has label weight {} (must be 0)", w[r]);
                }
                w.to_vec()
            }
            None => table
                .iter()
                .map(|&c| if c == UNLABELLED { 0.0 } else { 1.0 })
                .collect(),
        };
        let mut codes = backend.alloc_idx(n_cells);
        backend.upload_idx(&table, &mut codes);
        let mut w = backend.alloc(n_cells);
        backend.upload(&weights, &mut w);
        Ok(LabelTables {
            codes,
            weights: w,
            n_labels,
        })
    }
}

impl<B: Backend> CellTables<B> {
    /// Uploads the per-cell `library` sizes, `batch` codes (each < `n_batches`) and, for Sup,
    /// the labels with their label-loss weights.
    pub fn upload(
        backend: &B,
        library: &[f32],
        batch: &[u32],
        n_batches: usize,
        labels: Option<LabelUpload<'_>>,
    ) -> anyhow::Result<Self> {
        let n_cells = library.len();
        anyhow::ensure!(
            batch.len() == n_cells,
            "{} batch codes for {n_cells} cells",
            batch.len()
        );
        let n_batches = n_batches.max(1);
        if let Some(&b) = batch.iter().find(|&&b| b as usize >= n_batches) {
            anyhow::bail!("batch code {b} >= {n_batches} batches");
        }
        let mut lib = backend.alloc(n_cells);
        backend.upload(library, &mut lib);
        let mut codes = backend.alloc_idx(n_cells);
        backend.upload_idx(batch, &mut codes);
        let labels = labels
            .map(|l| LabelTables::upload(backend, n_cells, l))
            .transpose()?;
        Ok(CellTables {
            n_cells,
            library: lib,
            batch: codes,
            n_batches,
            labels,
        })
    }

    /// Replaces the label tables (Sup: new labels or weights for the same cells).
    pub fn set_labels(&mut self, backend: &B, labels: LabelUpload<'_>) -> anyhow::Result<()> {
        self.labels = Some(LabelTables::upload(backend, self.n_cells, labels)?);
        Ok(())
    }
}

/// One minibatch on the device. Reused step after step: [`Minibatch::load`] refills it.
pub struct Minibatch<B: Backend> {
    /// Cell indices into the data.
    pub rows: DeviceIndices<B>,
    /// Their batch codes.
    pub batch: DeviceIndices<B>,
    /// Their observed library sizes.
    pub library: B::Buf,
    /// Sup: their labels (0 when unlabelled) and the mask: their label-loss weights (0 when
    /// unlabelled).
    pub labels: Option<(DeviceIndices<B>, B::Buf)>,
}

impl<B: Backend> Minibatch<B> {
    /// Buffers for minibatches of `n` cells of the data behind `tables`.
    pub fn new(backend: &B, n: usize, tables: &CellTables<B>) -> Self {
        Minibatch {
            rows: DeviceIndices::empty(backend, n, tables.n_cells),
            batch: DeviceIndices::empty(backend, n, tables.n_batches),
            library: backend.alloc(n),
            labels: tables.labels.as_ref().map(|l| {
                (
                    DeviceIndices::empty(backend, n, l.n_labels),
                    backend.alloc(n),
                )
            }),
        }
    }

    /// The minibatch of cells `rows`: one upload, then gathers on the device.
    pub fn load(
        &mut self,
        backend: &B,
        tables: &CellTables<B>,
        rows: &[u32],
    ) -> anyhow::Result<()> {
        self.rows.reupload(backend, rows)?;
        let n = rows.len();
        let idx = self.rows.buf();
        backend.gather_idx(&tables.batch, idx, n, self.batch.buf_mut(backend));
        backend.gather_values(&tables.library, idx, n, &mut self.library);
        if let (Some(t), Some((labels, mask))) = (&tables.labels, &mut self.labels) {
            backend.gather_labels(&t.codes, &t.weights, idx, n, labels.buf_mut(backend), mask);
        }
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
    pub fn rows(&self) -> Indices<'_, B> {
        Indices::Device(&self.rows)
    }
    pub fn batch(&self) -> Indices<'_, B> {
        Indices::Device(&self.batch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::cpu::Cpu;

    /// A Sup minibatch's mask is its cells' label-loss weights, gathered with the codes: 1 per
    /// labelled cell without weights (label balance 0), else the weights given.
    #[test]
    fn the_label_mask_is_the_cells_weights() {
        let cpu = Cpu::new();
        let codes = [Some(1), None, Some(0), Some(1)];
        let labels = |weights| LabelUpload {
            codes: &codes,
            n_labels: 2,
            weights,
        };
        let mut tables =
            CellTables::upload(&cpu, &[5.0; 4], &[0, 1, 0, 1], 2, Some(labels(None))).unwrap();
        let mut mb = Minibatch::new(&cpu, 3, &tables);
        let load = |mb: &mut Minibatch<Cpu>, tables: &CellTables<Cpu>| {
            mb.load(&cpu, tables, &[3, 1, 2]).unwrap();
            let (labels, mask) = mb.labels.as_ref().unwrap();
            (labels.buf()[..3].to_vec(), mask[..3].to_vec())
        };
        assert_eq!(load(&mut mb, &tables), (vec![1, 0, 0], vec![1.0, 0.0, 1.0]));
        let w = [0.5, 0.0, 2.0, 0.75];
        tables.set_labels(&cpu, labels(Some(&w))).unwrap();
        assert_eq!(
            load(&mut mb, &tables),
            (vec![1, 0, 0], vec![0.75, 0.0, 2.0])
        );
        // Weights for other cells, or a weight on an unlabelled cell, are refused.
        assert!(tables.set_labels(&cpu, labels(Some(&[1.0; 3]))).is_err());
        let e = tables.set_labels(&cpu, labels(Some(&[1.0; 4])));
        assert!(e.unwrap_err().to_string().contains("unlabelled cell 1"));
    }
}
