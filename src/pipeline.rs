//! The user-facing API, shaped like scvi-tools' model classes: `setup` (register batch and
//! labels, choose genes), `train`, `latent` (get_latent_representation), `normalized`
//! (get_normalized_expression) and `save`. The CLI is a thin layer over this.

use std::path::Path;
use std::time::Instant;

use anyhow::Context;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::backend::Backend;
use crate::data::hvg::{self, HvgResult};
use crate::data::{AnnData, Csr};
use crate::io::checkpoint::{self, SavedConfig};
use crate::model::config::{ModelConfig, RunConfig, TrainConfig};
use crate::model::dataset::{DeviceData, PreparedData, TransformConstants};
use crate::model::scdreamer::Scdreamer;
use crate::model::sup::{CellLabels, LabelPrediction};
use crate::tape::Tape;
use crate::train::{self, EpochLog};
use std::borrow::Cow;

/// How genes are chosen.
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

/// Everything `setup` decides: the genes, the batch registry and the prepared counts.
pub struct Setup {
    /// var indices (into the input) of the genes used, in model order.
    pub genes: Vec<usize>,
    pub gene_names: Vec<String>,
    /// var_names the input repeated (made unique on reading; recorded in a saved model so
    /// `embed` can tell a consistent renaming from an ambiguous one).
    pub repeated_gene_names: Vec<String>,
    pub batch_key: String,
    /// Sup: the obs key of the labels (their codes are in `prep.labels`).
    pub labels_key: Option<String>,
    pub prep: PreparedData,
    /// Cells with counts in the selected genes: the ones trained on. Every cell is embedded.
    pub train_rows: Vec<u32>,
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
    let res: HvgResult = match how {
        GeneSelection::SeuratV3(_) => hvg::seurat_v3(&sub, Some(&sub_batch), n_batches, n_top)?,
        _ => hvg::seurat(&sub, Some(&sub_batch), n_batches, n_top)?,
    };
    Ok(res.selected.iter().map(|&k| nonzero_genes[k]).collect())
}

impl Setup {
    /// Selects `genes` of `adata.x` (a copy: `adata` keeps its matrix).
    pub fn new(
        adata: &AnnData,
        batch_key: &str,
        batch: Vec<u32>,
        batch_names: Vec<String>,
        genes: Vec<usize>,
        cfg: &ModelConfig,
        fixed: Option<TransformConstants>,
    ) -> anyhow::Result<Self> {
        let x = Cow::Borrowed(&adata.x);
        let names = &adata.var.index;
        let mut s = Self::from_x(x, names, batch_key, batch, batch_names, genes, cfg, fixed)?;
        s.repeated_gene_names = adata.var.repeated_names.clone();
        Ok(s)
    }

    /// [`Setup::new`] that takes `adata.x` (left empty): when every gene is kept, in order,
    /// the matrix moves instead of being copied, so a file read whole is held once.
    pub fn new_taking_x(
        adata: &mut AnnData,
        batch_key: &str,
        batch: Vec<u32>,
        batch_names: Vec<String>,
        genes: Vec<usize>,
        cfg: &ModelConfig,
        fixed: Option<TransformConstants>,
    ) -> anyhow::Result<Self> {
        let x = Cow::Owned(std::mem::take(&mut adata.x));
        let names = &adata.var.index;
        let mut s = Self::from_x(x, names, batch_key, batch, batch_names, genes, cfg, fixed)?;
        s.repeated_gene_names = adata.var.repeated_names.clone();
        Ok(s)
    }

    /// `x`: cells x all input genes, named by `var_index`. Borrowed, the selected genes are
    /// copied out of it; owned, they are taken from it (no copy when every gene is kept).
    #[allow(clippy::too_many_arguments)]
    fn from_x(
        x: Cow<'_, Csr>,
        var_index: &[String],
        batch_key: &str,
        batch: Vec<u32>,
        batch_names: Vec<String>,
        genes: Vec<usize>,
        cfg: &ModelConfig,
        fixed: Option<TransformConstants>,
    ) -> anyhow::Result<Self> {
        // normalize_total's denominator: counts over all input genes, before selection.
        let total: Vec<f32> = x.row_sums().iter().map(|&s| s as f32).collect();
        let counts = match x {
            Cow::Borrowed(m) => m.select(&(0..m.n_rows).collect::<Vec<_>>(), &genes),
            Cow::Owned(m) => m.into_columns(&genes),
        };
        let gene_names = genes.iter().map(|&j| var_index[j].clone()).collect();
        let prep = PreparedData::new(counts, &total, batch, batch_names, cfg, fixed);
        let train_rows: Vec<u32> = (0..prep.n_cells())
            .filter(|&i| prep.library[i] > 0.0)
            .map(|i| i as u32)
            .collect();
        if train_rows.len() < 2 {
            anyhow::bail!(
                "only {} cell(s) have counts in the {} selected genes: nothing to train on",
                train_rows.len(),
                genes.len()
            );
        }
        Ok(Setup {
            genes,
            gene_names,
            repeated_gene_names: Vec::new(),
            batch_key: batch_key.to_string(),
            labels_key: None,
            prep,
            train_rows,
        })
    }
}

impl Setup {
    /// Registers cell-type labels (from `model::sup::cell_labels`): training becomes
    /// scDREAMER-Sup. The model config needs `n_labels = labels.categories.len()`.
    pub fn with_labels(mut self, labels_key: &str, labels: CellLabels) -> Self {
        self.labels_key = Some(labels_key.to_string());
        self.prep.labels = Some(labels);
        self
    }
}

/// A trained (or loaded) model with its data on a backend.
pub struct Trained<B: Backend> {
    pub model: Scdreamer<B>,
    pub data: DeviceData<B>,
    pub run: RunConfig,
    pub log: Vec<EpochLog>,
    pub train_seconds: f64,
}

/// A model trained by [`fit_from`], without its data.
pub struct Fitted<B: Backend> {
    pub model: Scdreamer<B>,
    pub run: RunConfig,
    pub log: Vec<EpochLog>,
    pub train_seconds: f64,
}

/// Trains scDREAMER on the cells of `source` (resident or streamed from disk).
pub fn fit_from<B: Backend>(
    backend: &B,
    source: &mut dyn train::TrainSource<B>,
    model_cfg: ModelConfig,
    train_cfg: TrainConfig,
    preset: &str,
    progress: bool,
) -> anyhow::Result<Fitted<B>> {
    fit_observed(
        backend,
        source,
        model_cfg,
        train_cfg,
        preset,
        progress,
        &mut |_| Ok(()),
    )
}

/// [`fit_from`] calling `on_step` after every minibatch step (see [`train::train_observed`]).
pub fn fit_observed<B: Backend>(
    backend: &B,
    source: &mut dyn train::TrainSource<B>,
    model_cfg: ModelConfig,
    train_cfg: TrainConfig,
    preset: &str,
    progress: bool,
    on_step: &mut dyn FnMut(train::StepProgress) -> anyhow::Result<()>,
) -> anyhow::Result<Fitted<B>> {
    let mut rng = ChaCha8Rng::seed_from_u64(train_cfg.seed);
    let mut model = Scdreamer::new(backend, model_cfg.clone(), &mut rng);
    let t0 = Instant::now();
    let log = train::train_observed(&mut model, source, &train_cfg, progress, on_step)?;
    let train_seconds = t0.elapsed().as_secs_f64();
    let run = RunConfig {
        preset: preset.to_string(),
        model: model_cfg,
        train: train_cfg,
    };
    Ok(Fitted {
        model,
        run,
        log,
        train_seconds,
    })
}

/// Trains scDREAMER on the set-up data. On a backend that computes in host memory (CPU) the
/// counts move from `setup.prep` into the returned data instead of being copied; read them
/// with [`Trained::counts`].
pub fn fit<B: Backend>(
    backend: &B,
    setup: &mut Setup,
    model_cfg: ModelConfig,
    train_cfg: TrainConfig,
    preset: &str,
    progress: bool,
) -> anyhow::Result<Trained<B>> {
    fit_setup_observed(
        backend,
        setup,
        model_cfg,
        train_cfg,
        preset,
        progress,
        &mut |_| Ok(()),
    )
}

/// [`fit`] calling `on_step` after every minibatch step (see [`train::train_observed`]).
pub fn fit_setup_observed<B: Backend>(
    backend: &B,
    setup: &mut Setup,
    model_cfg: ModelConfig,
    train_cfg: TrainConfig,
    preset: &str,
    progress: bool,
    on_step: &mut dyn FnMut(train::StepProgress) -> anyhow::Result<()>,
) -> anyhow::Result<Trained<B>> {
    let data = DeviceData::upload_taking(backend, &mut setup.prep)
        .context("cannot upload the data to the device")?;
    let mut source = train::InMemory::new(&data, &setup.prep, setup.train_rows.clone());
    let f = fit_observed(
        backend,
        &mut source,
        model_cfg,
        train_cfg,
        preset,
        progress,
        on_step,
    )?;
    Ok(Trained {
        model: f.model,
        data,
        run: f.run,
        log: f.log,
        train_seconds: f.train_seconds,
    })
}

/// Rows per inference chunk: bounded memory whatever the number of cells.
const CHUNK: usize = 4096;

/// The embedding of every cell of `prep` (see [`Trained::latent`]); `tape` and `rng` carry over
/// between calls, so a matrix streamed in blocks is embedded as one.
pub fn embed_cells<B: Backend>(
    model: &Scdreamer<B>,
    data: &DeviceData<B>,
    prep: &PreparedData,
    tape: &mut Tape<B>,
    rng: &mut ChaCha8Rng,
) -> Vec<f32> {
    let n = prep.n_cells();
    let mut out = Vec::with_capacity(n * model.cfg.latent);
    let rows: Vec<u32> = (0..n as u32).collect();
    for chunk in rows.chunks(CHUNK) {
        let batch: Vec<u32> = chunk.iter().map(|&r| prep.batch[r as usize]).collect();
        out.extend(model.embed_rows(tape, data, prep, chunk, &batch, rng));
    }
    out
}

/// Sup: label probabilities of every cell of `prep`, row-major; None for an unsupervised model.
pub fn label_probs_cells<B: Backend>(
    model: &Scdreamer<B>,
    data: &DeviceData<B>,
    prep: &PreparedData,
    tape: &mut Tape<B>,
    rng: &mut ChaCha8Rng,
) -> Option<Vec<f32>> {
    let rows: Vec<u32> = (0..prep.n_cells() as u32).collect();
    let mut probs = Vec::with_capacity(rows.len() * model.cfg.n_labels);
    for chunk in rows.chunks(CHUNK) {
        let batch: Vec<u32> = chunk.iter().map(|&r| prep.batch[r as usize]).collect();
        probs.extend(model.label_probs_rows(tape, data, prep, chunk, &batch, rng)?);
    }
    Some(probs)
}

/// Batch-corrected expression of every cell of `prep` (see [`Trained::normalized`]).
pub fn normalized_cells<B: Backend>(
    model: &Scdreamer<B>,
    data: &DeviceData<B>,
    prep: &PreparedData,
    as_batch: Option<u32>,
    tape: &mut Tape<B>,
    rng: &mut ChaCha8Rng,
) -> Vec<f32> {
    let n = prep.n_cells();
    let g = model.cfg.n_genes;
    let targets: Vec<u32> = match as_batch {
        Some(b) => vec![b],
        None => (0..model.cfg.n_batches as u32).collect(),
    };
    let w = 1e4 / targets.len() as f32;
    let mut out = vec![0f32; n * g];
    let rows: Vec<u32> = (0..n as u32).collect();
    for (ci, chunk) in rows.chunks(CHUNK).enumerate() {
        let batch: Vec<u32> = chunk.iter().map(|&r| prep.batch[r as usize]).collect();
        let dst = &mut out[ci * CHUNK * g..(ci * CHUNK + chunk.len()) * g];
        for &t in &targets {
            let rho = model.normalized_rows(tape, data, prep, chunk, &batch, t, rng);
            for (d, r) in dst.iter_mut().zip(&rho) {
                *d += w * r;
            }
        }
    }
    out
}

/// The seeds of the inference passes (shared by the resident and the streamed paths).
pub fn latent_rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed ^ 0xe4bed)
}

impl<B: Backend> Trained<B> {
    /// The raw counts trained on (cells x selected genes), wherever [`fit`] left them.
    pub fn counts<'a>(&'a self, prep: &'a PreparedData) -> &'a Csr {
        self.data.host_counts(prep)
    }

    /// The embedding of every cell (`n_cells x latent`, row-major): posterior mean by default.
    pub fn latent(&self, prep: &PreparedData, seed: u64) -> Vec<f32> {
        let mut tape = Tape::new(self.model.params.backend().clone());
        let mut rng = latent_rng(seed);
        embed_cells(&self.model, &self.data, prep, &mut tape, &mut rng)
    }

    /// Sup: the predicted cell type of every cell (argmax softmax(Dense(z_mean))) and its
    /// probability; None for an unsupervised model.
    pub fn predict_labels(&self, prep: &PreparedData) -> Option<LabelPrediction> {
        let mut tape = Tape::new(self.model.params.backend().clone());
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let probs = label_probs_cells(&self.model, &self.data, prep, &mut tape, &mut rng)?;
        Some(LabelPrediction::from_probs(&probs, self.model.cfg.n_labels))
    }

    /// Batch-corrected expression (`n_cells x genes`, counts per 10,000): the decoder's rho for
    /// the posterior mean, decoded as batch `as_batch`, or averaged over all batches (None).
    pub fn normalized(&self, prep: &PreparedData, as_batch: Option<u32>) -> Vec<f32> {
        let mut tape = Tape::new(self.model.params.backend().clone());
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        normalized_cells(&self.model, &self.data, prep, as_batch, &mut tape, &mut rng)
    }

    /// Writes weights and config for `dir` under temp names; commit them with
    /// [`crate::io::cleanup::commit_all`].
    pub fn save(
        &self,
        dir: &Path,
        setup: &Setup,
    ) -> anyhow::Result<Vec<crate::io::cleanup::Pending>> {
        save_model(
            dir,
            &self.model,
            &self.run,
            &SavedData {
                gene_names: &setup.gene_names,
                repeated_genes: &setup.repeated_gene_names,
                batch_key: &setup.batch_key,
                batch_names: &setup.prep.batch_names,
                labels_key: setup.labels_key.as_deref(),
                labels: setup.prep.labels.as_ref(),
                constants: setup.prep.constants(),
            },
        )
    }
}

/// What a saved model records about its training data.
pub struct SavedData<'a> {
    pub gene_names: &'a [String],
    /// var_names the training input repeated.
    pub repeated_genes: &'a [String],
    pub batch_key: &'a str,
    pub batch_names: &'a [String],
    pub labels_key: Option<&'a str>,
    pub labels: Option<&'a CellLabels>,
    pub constants: TransformConstants,
}

/// Writes weights and config for `dir` under temp names (the resident and the streamed paths).
pub fn save_model<B: Backend>(
    dir: &Path,
    model: &Scdreamer<B>,
    run: &RunConfig,
    d: &SavedData,
) -> anyhow::Result<Vec<crate::io::cleanup::Pending>> {
    checkpoint::save_pending(dir, &saved_config(run, d), &model.params)
}

/// The `config.json` of a model trained with `run` on data `d`.
pub fn saved_config(run: &RunConfig, d: &SavedData) -> SavedConfig {
    SavedConfig {
        format_version: checkpoint::FORMAT_VERSION,
        scdreamer_version: crate::VERSION.to_string(),
        run: run.clone(),
        genes: d.gene_names.to_vec(),
        repeated_genes: d.repeated_genes.to_vec(),
        batch_key: d.batch_key.to_string(),
        batch_categories: d.batch_names.to_vec(),
        labels_key: d.labels_key.map(str::to_string),
        label_categories: d.labels.map(|l| l.categories.clone()).unwrap_or_default(),
        constants: d.constants.into(),
    }
}
