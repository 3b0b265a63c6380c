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
    /// minibatch's mask. Uploaded as 1 per labelled cell (the plain masked mean, label balance
    /// 0); [`CellTables::set_label_weights`] replaces it.
    pub weights: B::Buf,
    /// The number of label categories.
    pub n_labels: usize,
}

impl<B: Backend> CellTables<B> {
    /// Uploads the per-cell `library` sizes, `batch` codes (each < `n_batches`) and, for Sup,
    /// the label codes (None = unlabelled) with the number of label categories.
    pub fn upload(
        backend: &B,
        library: &[f32],
        batch: &[u32],
        n_batches: usize,
        labels: Option<(&[Option<u32>], usize)>,
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
        let labels = match labels {
            Some((cell_codes, n_labels)) => {
                let table: Vec<u32> = (0..n_cells)
                    .map(|r| cell_codes.get(r).copied().flatten().unwrap_or(UNLABELLED))
                    .collect();
                let n_labels = n_labels.max(1);
                if let Some(&c) = table
                    .iter()
                    .find(|&&c| c != UNLABELLED && c as usize >= n_labels)
                {
                    anyhow::bail!("label code {c} >= {n_labels} categories");
                }
                let mut codes = backend.alloc_idx(n_cells);
                backend.upload_idx(&table, &mut codes);
                let mask: Vec<f32> = table
                    .iter()
                    .map(|&c| if c == UNLABELLED { 0.0 } else { 1.0 })
                    .collect();
                let mut weights = backend.alloc(n_cells);
                backend.upload(&mask, &mut weights);
                Some(LabelTables {
                    codes,
                    weights,
                    n_labels,
                })
            }
            None => None,
        };
        Ok(CellTables {
            n_cells,
            library: lib,
            batch: codes,
            n_batches,
            labels,
        })
    }

    /// Weights the label loss of every cell (`weights[cell]`, 0 for unlabelled cells).
    pub fn set_label_weights(&mut self, backend: &B, weights: &[f32]) -> anyhow::Result<()> {
        anyhow::ensure!(
            weights.len() == self.n_cells,
            "{} label weights for {} cells",
            weights.len(),
            self.n_cells
        );
        let labels = self
            .labels
            .as_mut()
            .ok_or_else(|| anyhow::anyhow!("label weights for data without labels"))?;
        backend.upload(weights, &mut labels.weights);
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
    /// labelled cell as uploaded (label balance 0), then whatever weights replace them.
    #[test]
    fn the_label_mask_is_the_cells_weights() {
        let cpu = Cpu::new();
        let codes = [Some(1), None, Some(0), Some(1)];
        let mut tables =
            CellTables::upload(&cpu, &[5.0; 4], &[0, 1, 0, 1], 2, Some((&codes, 2))).unwrap();
        let mut mb = Minibatch::new(&cpu, 3, &tables);
        let load = |mb: &mut Minibatch<Cpu>, tables: &CellTables<Cpu>| {
            mb.load(&cpu, tables, &[3, 1, 2]).unwrap();
            let (labels, mask) = mb.labels.as_ref().unwrap();
            (labels.buf()[..3].to_vec(), mask[..3].to_vec())
        };
        assert_eq!(load(&mut mb, &tables), (vec![1, 0, 0], vec![1.0, 0.0, 1.0]));
        tables
            .set_label_weights(&cpu, &[0.5, 0.0, 2.0, 0.75])
            .unwrap();
        assert_eq!(
            load(&mut mb, &tables),
            (vec![1, 0, 0], vec![0.75, 0.0, 2.0])
        );
        assert!(tables.set_label_weights(&cpu, &[1.0; 3]).is_err());
    }
}
