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
use crate::tape::Tape;
use crate::train::{self, EpochLog, TrainOptions};

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
    pub batch_key: String,
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
    pub fn new(
        adata: &AnnData,
        batch_key: &str,
        batch: Vec<u32>,
        batch_names: Vec<String>,
        genes: Vec<usize>,
        cfg: &ModelConfig,
        fixed: Option<TransformConstants>,
    ) -> anyhow::Result<Self> {
        let all_rows: Vec<usize> = (0..adata.n_obs()).collect();
        let total: Vec<f32> = adata.x.row_sums().iter().map(|&s| s as f32).collect();
        let counts: Csr = adata.x.select(&all_rows, &genes);
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
        let gene_names = genes.iter().map(|&j| adata.var.index[j].clone()).collect();
        Ok(Setup {
            genes,
            gene_names,
            batch_key: batch_key.to_string(),
            prep,
            train_rows,
        })
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

/// Trains scDREAMER on the set-up data.
pub fn fit<B: Backend>(
    backend: &B,
    setup: &Setup,
    model_cfg: ModelConfig,
    train_cfg: TrainConfig,
    preset: &str,
    progress: bool,
) -> anyhow::Result<Trained<B>> {
    let mut rng = ChaCha8Rng::seed_from_u64(train_cfg.seed);
    let data =
        DeviceData::upload(backend, &setup.prep).context("cannot upload the data to the device")?;
    let mut model = Scdreamer::new(backend, model_cfg.clone(), &mut rng);
    let t0 = Instant::now();
    let opts = TrainOptions {
        progress,
        train_rows: setup.train_rows.clone(),
    };
    let log = train::train(&mut model, &data, &setup.prep, &train_cfg, &opts)?;
    let train_seconds = t0.elapsed().as_secs_f64();
    let run = RunConfig {
        preset: preset.to_string(),
        model: model_cfg,
        train: train_cfg,
    };
    Ok(Trained {
        model,
        data,
        run,
        log,
        train_seconds,
    })
}

/// Rows per inference chunk: bounded memory whatever the number of cells.
const CHUNK: usize = 4096;

impl<B: Backend> Trained<B> {
    /// The embedding of every cell (`n_cells x latent`, row-major): posterior mean by default.
    pub fn latent(&self, prep: &PreparedData, seed: u64) -> Vec<f32> {
        let mut tape = Tape::new(self.model.params.backend().clone());
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0xe4bed);
        let n = prep.n_cells();
        let mut out = Vec::with_capacity(n * self.model.cfg.latent);
        let rows: Vec<u32> = (0..n as u32).collect();
        for chunk in rows.chunks(CHUNK) {
            let batch: Vec<u32> = chunk.iter().map(|&r| prep.batch[r as usize]).collect();
            out.extend(
                self.model
                    .embed_rows(&mut tape, &self.data, prep, chunk, &batch, &mut rng),
            );
        }
        out
    }

    /// Batch-corrected expression (`n_cells x genes`, counts per 10,000): the decoder's rho for
    /// the posterior mean, decoded as batch `as_batch`, or averaged over all batches (None).
    pub fn normalized(&self, prep: &PreparedData, as_batch: Option<u32>) -> Vec<f32> {
        let mut tape = Tape::new(self.model.params.backend().clone());
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let n = prep.n_cells();
        let g = self.model.cfg.n_genes;
        let targets: Vec<u32> = match as_batch {
            Some(b) => vec![b],
            None => (0..self.model.cfg.n_batches as u32).collect(),
        };
        let w = 1e4 / targets.len() as f32;
        let mut out = vec![0f32; n * g];
        let rows: Vec<u32> = (0..n as u32).collect();
        for (ci, chunk) in rows.chunks(CHUNK).enumerate() {
            let batch: Vec<u32> = chunk.iter().map(|&r| prep.batch[r as usize]).collect();
            let dst = &mut out[ci * CHUNK * g..(ci * CHUNK + chunk.len()) * g];
            for &t in &targets {
                let rho = self
                    .model
                    .normalized_rows(&mut tape, &self.data, prep, chunk, &batch, t, &mut rng);
                for (d, r) in dst.iter_mut().zip(&rho) {
                    *d += w * r;
                }
            }
        }
        out
    }

    /// Saves weights and config to `dir`.
    pub fn save(&self, dir: &Path, setup: &Setup) -> anyhow::Result<()> {
        let cfg = SavedConfig {
            format_version: checkpoint::FORMAT_VERSION,
            scdreamer_version: crate::VERSION.to_string(),
            run: self.run.clone(),
            genes: setup.gene_names.clone(),
            batch_key: setup.batch_key.clone(),
            batch_categories: setup.prep.batch_names.clone(),
            labels_key: None,
            label_categories: Vec::new(),
            constants: setup.prep.constants().into(),
        };
        checkpoint::save(dir, &cfg, &self.model.params)
    }
}
