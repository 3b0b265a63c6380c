//! `fit`: a new model trained on the cells of a data set, on the backend the cells are on.

use std::time::Instant;

use anyhow::Context;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::cells::{Cells, Resident};
use super::setup::Setup;
use crate::model::config::{ModelConfig, RunConfig, TrainConfig};
use crate::model::dataset::DeviceData;
use crate::model::scdreamer::Scdreamer;
use crate::ops::Backend;
use crate::train::{self, EpochLog, StepProgress};

/// A trained (or loaded) model with its in-memory data on a backend.
pub struct Trained<B: Backend, D = DeviceData<B>> {
    pub model: Scdreamer<B>,
    pub data: D,
    pub run: RunConfig,
    pub log: Vec<EpochLog>,
    pub train_seconds: f64,
}

/// A model trained by [`fit_cells`], without its data.
pub type Fitted<B> = Trained<B, ()>;

impl<B: Backend> Fitted<B> {
    /// The model with the data it holds.
    pub fn with_data<D>(self, data: D) -> Trained<B, D> {
        Trained {
            model: self.model,
            data,
            run: self.run,
            log: self.log,
            train_seconds: self.train_seconds,
        }
    }
}

/// Trains scDREAMER on `cells` (in memory or streamed from disk).
pub fn fit_cells<B: Backend>(
    backend: &B,
    cells: &dyn Cells<B>,
    model_cfg: ModelConfig,
    train_cfg: TrainConfig,
    preset: &str,
    progress: bool,
) -> anyhow::Result<Fitted<B>> {
    fit_cells_observed(
        backend,
        cells,
        model_cfg,
        train_cfg,
        preset,
        progress,
        &mut |_| Ok(()),
    )
}

/// [`fit_cells`] calling `on_step` after every minibatch step (see [`train::train_observed`]).
pub fn fit_cells_observed<B: Backend>(
    backend: &B,
    cells: &dyn Cells<B>,
    model_cfg: ModelConfig,
    train_cfg: TrainConfig,
    preset: &str,
    progress: bool,
    on_step: &mut dyn FnMut(StepProgress) -> anyhow::Result<()>,
) -> anyhow::Result<Fitted<B>> {
    let mut rng = ChaCha8Rng::seed_from_u64(train_cfg.seed);
    let mut model = Scdreamer::new(backend, model_cfg.clone(), &mut rng);
    let t0 = Instant::now();
    let mut source = cells.train_source();
    let log = train::train_observed(&mut model, &mut *source, &train_cfg, progress, on_step)?;
    let train_seconds = t0.elapsed().as_secs_f64();
    let run = RunConfig {
        preset: preset.to_string(),
        model: model_cfg,
        train: train_cfg,
    };
    Ok(Trained {
        model,
        data: (),
        run,
        log,
        train_seconds,
    })
}

/// The set-up data on `backend`. On a backend that computes in host memory (CPU) the counts
/// move from `setup.prep` into the returned data instead of being copied; read them with
/// [`DeviceData::host_counts`].
pub fn upload<B: Backend>(backend: &B, setup: &mut Setup) -> anyhow::Result<DeviceData<B>> {
    DeviceData::upload_taking(backend, &mut setup.prep)
        .context("cannot upload the data to the device")
}

/// Trains scDREAMER on the set-up data (see [`upload`] for where the counts go).
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
    on_step: &mut dyn FnMut(StepProgress) -> anyhow::Result<()>,
) -> anyhow::Result<Trained<B>> {
    let data = upload(backend, setup)?;
    let cells = Resident {
        prep: &setup.prep,
        data: &data,
        train_rows: &setup.train_rows,
    };
    let f = fit_cells_observed(
        backend, &cells, model_cfg, train_cfg, preset, progress, on_step,
    )?;
    Ok(f.with_data(data))
}
