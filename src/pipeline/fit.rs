//! `fit`: a new model trained on the cells of a data set, on the backend the cells are on.

use std::time::Instant;

use anyhow::Context;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::cells::{Cells, Resident};
use super::setup::Setup;
use crate::data::labels::CellLabels;
use crate::model::config::{RunConfig, TrainConfig};
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

/// How to train: the run's configuration, a progress bar or not, and a hook called after
/// every minibatch step (see [`train::train_observed`]).
pub struct FitOptions<'a> {
    pub run: RunConfig,
    pub progress: bool,
    pub on_step: Option<&'a mut dyn FnMut(StepProgress) -> anyhow::Result<()>>,
}

impl FitOptions<'static> {
    /// No hook.
    pub fn new(run: RunConfig, progress: bool) -> Self {
        FitOptions {
            run,
            progress,
            on_step: None,
        }
    }
}

/// Trains scDREAMER on `cells` (in memory or streamed from disk).
pub fn fit_cells<B: Backend>(
    backend: &B,
    cells: &dyn Cells<B>,
    opts: FitOptions<'_>,
) -> anyhow::Result<Fitted<B>> {
    let FitOptions {
        run,
        progress,
        on_step,
    } = opts;
    let mut rng = ChaCha8Rng::seed_from_u64(run.train.seed);
    let mut model = Scdreamer::new(backend, run.model.clone(), &mut rng);
    let t0 = Instant::now();
    let mut source = cells.train_source();
    let mut no_hook = |_| Ok(());
    let on_step = on_step.unwrap_or(&mut no_hook);
    let log = train::train_observed(&mut model, &mut *source, &run.train, progress, on_step)?;
    let train_seconds = t0.elapsed().as_secs_f64();
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

/// The set-up data on `backend` for training with `train`: [`upload`], with Sup's label loss
/// weighed per cell at `train.label_balance` over the labelled cells of the whole data set
/// (`PreparedData::weigh_labels`). Every in-memory training run goes through it ([`fit`],
/// hence the Python binding, and `integrate`); a streamed file's weights are set by
/// `prepare_streamed`.
pub fn upload_for_training<B: Backend>(
    backend: &B,
    setup: &mut Setup,
    train: &TrainConfig,
) -> anyhow::Result<DeviceData<B>> {
    setup.prep.weigh_labels(train);
    upload(backend, setup)
}

/// Sup: trains on `labels` from now on instead of the set-up labels (`integrate
/// --screen-labels`), weighed at `train.label_balance` as [`upload_for_training`] weighs them.
pub fn relabel<B: Backend>(
    backend: &B,
    setup: &mut Setup,
    data: &mut DeviceData<B>,
    labels: CellLabels,
    train: &TrainConfig,
) -> anyhow::Result<()> {
    setup.prep.labels = Some(labels);
    setup.prep.weigh_labels(train);
    data.set_labels(backend, &setup.prep)
}

/// Trains scDREAMER on the set-up data (see [`upload`] for where the counts go).
pub fn fit<B: Backend>(
    backend: &B,
    setup: &mut Setup,
    opts: FitOptions<'_>,
) -> anyhow::Result<Trained<B>> {
    let data = upload_for_training(backend, setup, &opts.run.train)?;
    let cells = Resident {
        prep: &setup.prep,
        data: &data,
        train_rows: &setup.train_rows,
    };
    let f = fit_cells(backend, &cells, opts)?;
    Ok(f.with_data(data))
}
