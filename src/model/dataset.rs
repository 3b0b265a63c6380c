//! The training data in the form the model reads: counts of the selected genes (CSR, resident on
//! the device), per-cell library sizes and batch codes, plus the constants of the input
//! transforms.

use crate::data::Csr;
use crate::model::config::{ModelConfig, Target, TrainConfig};
use crate::model::minibatch::{CellTables, LabelUpload};
use crate::ops::Backend;
use crate::tape::{CsrData, InputTransform};

/// Host-side, backend-independent preparation of the counts.
pub struct PreparedData {
    /// Raw counts, cells x selected genes.
    pub counts: Csr,
    /// Total counts per cell over the selected genes (the observed library size).
    pub library: Vec<f32>,
    /// `1e4 / library over all input genes` (normalize_total's factor), used by Log1pScaled.
    pub norm_scale: Vec<f32>,
    pub batch: Vec<u32>,
    pub batch_names: Vec<String>,
    pub constants: TransformConstants,
    /// The authors' transform (log2(1 + log1p(normalised)) / max), when their preset is used.
    pub authors_scaled: Option<Csr>,
    /// Sup: cell-type labels (None for the unsupervised model; set by `Setup::with_labels`).
    pub labels: Option<crate::data::labels::CellLabels>,
    /// Sup: per-cell weights of the label loss (0 for an unlabelled cell), uploaded with the
    /// labels; set by [`PreparedData::weigh_labels`] (a chunk of a streamed file: its slice of
    /// the whole file's weights). None: 1 per labelled cell (label balance 0).
    pub label_weights: Option<Vec<f32>>,
}

/// Constants of the input transforms learnt on the training data; a saved model applies them
/// unchanged to new cells.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TransformConstants {
    /// max over the matrix of log1p(x * norm_scale): folds scanpy-style log-normalised input
    /// into [0, 1] so the discriminator compares it with the sigmoid reconstruction.
    pub log_norm_max: f32,
    /// The global max of the authors' transform (1.0 when unused).
    pub authors_max: f32,
    /// Authors' library prior: mean and variance over cells of ln(sum_g x + 1) of the scaled x.
    pub library_prior: (f32, f32),
}

impl PreparedData {
    /// `total_counts`: per-cell total over ALL input genes (before gene selection), the
    /// normalize_total denominator as in scanpy and in the authors' preprocessing.
    pub fn new(
        counts: Csr,
        total_counts: &[f32],
        batch: Vec<u32>,
        batch_names: Vec<String>,
        cfg: &ModelConfig,
        fixed: Option<TransformConstants>,
    ) -> Self {
        let library: Vec<f32> = counts.row_sums().iter().map(|&s| s as f32).collect();
        let norm_scale: Vec<f32> = total_counts.iter().map(|&t| norm_scale(t)).collect();
        let mut log_norm_max = 0.0f32;
        for (r, &scale) in norm_scale.iter().enumerate() {
            for &v in counts.row(r).1 {
                log_norm_max = log_norm_max.max(log_norm_value(v, scale));
            }
        }
        let mut log_norm_max = if log_norm_max > 0.0 {
            log_norm_max
        } else {
            1.0
        };
        let (authors_scaled, mut library_prior, mut authors_max) =
            if cfg.target == Target::AuthorsScaled {
                let (m, prior, max) = authors_transform(
                    &counts,
                    &norm_scale,
                    cfg.library_prior_plus1,
                    fixed.map(|f| f.authors_max),
                );
                (Some(m), prior, max)
            } else {
                (None, (0.0, 1.0), 1.0)
            };
        if let Some(f) = fixed {
            log_norm_max = f.log_norm_max;
            library_prior = f.library_prior;
            authors_max = f.authors_max;
        }
        PreparedData {
            counts,
            library,
            norm_scale,
            batch,
            batch_names,
            constants: TransformConstants {
                log_norm_max,
                authors_max,
                library_prior,
            },
            authors_scaled,
            labels: None,
            label_weights: None,
        }
    }

    /// Sup: weighs the label loss of these cells at `train.label_balance`, from the types'
    /// shares of these cells' labels (`TrainConfig::label_weights`); nothing without labels.
    /// Call it again after replacing the labels.
    pub fn weigh_labels(&mut self, train: &TrainConfig) {
        self.label_weights = self.labels.as_ref().map(|l| train.label_weights(l));
    }

    /// Sup: the labels and their weights as [`CellTables`] uploads them.
    fn label_upload(&self) -> Option<LabelUpload<'_>> {
        self.labels.as_ref().map(|l| LabelUpload {
            codes: &l.codes,
            n_labels: l.categories.len(),
            weights: self.label_weights.as_deref(),
        })
    }

    /// Cells (also after [`DeviceData::upload_taking`] moved the counts out).
    pub fn n_cells(&self) -> usize {
        self.library.len()
    }
}

/// normalize_total's factor `1e4 / total` of a cell with `total` counts over all genes (0 for
/// an empty cell).
pub fn norm_scale(total: f32) -> f32 {
    if total > 0.0 { 1e4 / total } else { 0.0 }
}

/// log1p of a count normalised with the cell's `norm_scale` (its max is `log_norm_max`).
pub fn log_norm_value(count: f32, norm_scale: f32) -> f32 {
    (count * norm_scale).ln_1p()
}

/// The authors' transform of one count before the division by the global max.
pub fn authors_value(count: f32, norm_scale: f32) -> f32 {
    ((count * norm_scale).ln_1p() + 1.0).log2()
}

/// normalize_total(1e4) -> log1p -> log2(x + 1) -> / global max (spec section 1, step 5).
/// Returns the transformed matrix, the library prior (mean, variance of ln(sum + 1)) and the max
/// (or uses `fixed_max`, a saved model's).
fn authors_transform(
    counts: &Csr,
    norm_scale: &[f32],
    plus1: bool,
    fixed_max: Option<f32>,
) -> (Csr, (f32, f32), f32) {
    let mut m = counts.clone();
    let mut max = 0.0f32;
    for (r, &scale) in norm_scale.iter().enumerate() {
        let (a, b) = (m.indptr[r] as usize, m.indptr[r + 1] as usize);
        for v in &mut m.data[a..b] {
            *v = authors_value(*v, scale);
            max = max.max(*v);
        }
    }
    let max = fixed_max.unwrap_or(if max > 0.0 { max } else { 1.0 });
    for v in &mut m.data {
        *v /= max;
    }
    let logs = library_logs(&m, plus1);
    (m, library_prior(&logs), max)
}

/// ln of each cell's total of the authors' scaled values (ln(sum + 1) with `plus1`, else
/// ln(max(sum, 1e-8))): the terms of the library prior.
pub fn library_logs(scaled: &Csr, plus1: bool) -> Vec<f64> {
    scaled
        .row_sums()
        .iter()
        .map(|&s| {
            if plus1 {
                (s + 1.0).ln()
            } else {
                s.max(1e-8).ln()
            }
        })
        .collect()
}

/// The authors' library prior: mean and (population) variance of the cells' [`library_logs`].
pub fn library_prior(logs: &[f64]) -> (f32, f32) {
    let n = logs.len().max(1) as f64;
    let mean = logs.iter().sum::<f64>() / n;
    let var = logs.iter().map(|l| (l - mean) * (l - mean)).sum::<f64>() / n;
    (mean as f32, var as f32)
}

/// The prepared data uploaded to a backend.
pub struct DeviceData<B: Backend> {
    /// Raw counts (row_scale = normalize_total factor).
    pub counts: CsrData<B>,
    /// The authors' scaled values (their preset only).
    pub scaled: Option<CsrData<B>>,
    /// Per-cell library sizes, batch codes and labels the training step gathers from.
    pub tables: CellTables<B>,
}

impl<B: Backend> DeviceData<B> {
    pub fn upload(backend: &B, prep: &PreparedData) -> anyhow::Result<Self> {
        let counts = CsrData::upload(backend, &prep.counts, Some(&prep.norm_scale))?;
        Self::with_counts(backend, counts, prep)
    }

    /// [`DeviceData::upload`] that moves `prep.counts` to the backend instead of copying it:
    /// on the CPU the counts are then held once (1M cells x 2,000 genes at 10% density: 1.6 GB
    /// instead of 3.2 GB), and `prep.counts` is left empty; read them with
    /// [`DeviceData::host_counts`]. Other backends upload a copy and `prep` keeps its counts.
    pub fn upload_taking(backend: &B, prep: &mut PreparedData) -> anyhow::Result<Self> {
        let host = std::mem::take(&mut prep.counts);
        let (counts, back) = CsrData::upload_owned(backend, host, Some(&prep.norm_scale))?;
        if let Some(back) = back {
            prep.counts = back;
        }
        Self::with_counts(backend, counts, prep)
    }

    /// The uploaded `counts`, plus the authors' scaled values when their preset made them.
    fn with_counts(backend: &B, counts: CsrData<B>, prep: &PreparedData) -> anyhow::Result<Self> {
        let scaled = match &prep.authors_scaled {
            Some(m) => Some(CsrData::upload(backend, m, None)?),
            None => None,
        };
        let tables = CellTables::upload(
            backend,
            &prep.library,
            &prep.batch,
            prep.batch_names.len(),
            prep.label_upload(),
        )?;
        Ok(DeviceData {
            counts,
            scaled,
            tables,
        })
    }

    /// Uploads `prep`'s labels and label weights again, in place of the tables the training
    /// step reads (Sup: the screened labels; the categories stay those the model was
    /// configured with).
    pub fn set_labels(&mut self, backend: &B, prep: &PreparedData) -> anyhow::Result<()> {
        let labels = prep
            .label_upload()
            .ok_or_else(|| anyhow::anyhow!("internal: new labels for data without labels"))?;
        self.tables.set_labels(backend, labels)
    }

    /// The raw counts on the host: the backend's own matrix where it holds one (CPU), else
    /// `prep.counts`.
    pub fn host_counts<'a>(&'a self, prep: &'a PreparedData) -> &'a Csr {
        self.counts.host().unwrap_or(&prep.counts)
    }

    /// The encoder and discriminator input: (data, transform, output scale).
    pub fn input(&self, prep: &PreparedData) -> (&CsrData<B>, InputTransform, f32) {
        match &self.scaled {
            Some(s) => (s, InputTransform::Identity, 1.0),
            None => (
                &self.counts,
                InputTransform::Log1pScaled,
                1.0 / prep.constants.log_norm_max,
            ),
        }
    }

    /// The likelihood's target.
    pub fn target(&self) -> &CsrData<B> {
        self.scaled.as_ref().unwrap_or(&self.counts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::cpu::Cpu;

    fn prep() -> PreparedData {
        // cells x genes [[1,0,2],[0,0,0],[0,3,5]], two batches
        let counts = Csr {
            n_rows: 3,
            n_cols: 3,
            indptr: vec![0, 2, 2, 4],
            indices: vec![0, 2, 1, 2],
            data: vec![1.0, 2.0, 3.0, 5.0],
        };
        let cfg = ModelConfig::default_preset(3, 2, 0);
        PreparedData::new(
            counts,
            &[4.0, 0.0, 9.0],
            vec![0, 1, 1],
            vec!["a".into(), "b".into()],
            &cfg,
            None,
        )
    }

    #[test]
    fn upload_taking_holds_the_cpu_counts_once() {
        let cpu = Cpu::new();
        let mut p = prep();
        let original = p.counts.clone();
        let at = p.counts.data.as_ptr();
        let copied = DeviceData::upload(&cpu, &p).unwrap();
        let data = DeviceData::upload_taking(&cpu, &mut p).unwrap();
        assert_eq!(p.counts.nnz(), 0, "the CPU backend took the host matrix");
        assert_eq!(p.n_cells(), 3, "the cell count survives the move");
        assert_eq!(data.host_counts(&p), &original);
        assert_eq!(data.host_counts(&p).data.as_ptr(), at, "moved, not copied");
        // Same shape and row scale as the copying upload, so every kernel reads the same input.
        let (a, b) = (&data.counts, &copied.counts);
        assert_eq!(
            (a.n_rows, a.n_cols, a.nnz, a.has_row_scale),
            (b.n_rows, b.n_cols, b.nnz, b.has_row_scale)
        );
        assert_eq!(a.buf.row_scale, b.buf.row_scale);
        // The copying upload leaves the host matrix where it was.
        let q = prep();
        let data = DeviceData::upload(&cpu, &q).unwrap();
        assert_eq!(q.counts, original);
        assert_eq!(data.host_counts(&q), &original);
    }
}
