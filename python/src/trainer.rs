//! `prepare` (the CLI's set-up steps on in-memory data) and `Trainer.train` (the CLI's fit).

use pyo3::prelude::*;
use scdreamer::backend::cpu::Cpu;
use scdreamer::backend::device::{self, Device};
use scdreamer::io::checkpoint::SavedConfig;
use scdreamer::model::config::RunConfig;
use scdreamer::model::hyper::{HyperParams, Preset};
use scdreamer::ops::Backend;
use scdreamer::pipeline::{self, FitOptions, SavedData};
use scdreamer::pipeline::{Prepared, Request};
use scdreamer::train::{EpochLog, StepProgress};

use crate::args::*;
use crate::errors::IntoPy;
use crate::input::Data;
use crate::model::*;
use crate::threads::*;

/// A set-up model waiting to train.
#[pyclass(module = "scdreamer._scdreamer")]
pub struct Trainer {
    prepared: Option<Prepared>,
    hyper: HyperParams,
    /// (genes, batches, label types, cells) the configuration was resolved for.
    shape: (usize, usize, usize, usize),
    preset: Preset,
    transform_batch: String,
    labels_key: Option<String>,
    unlabeled_category: String,
    /// Messages for the user (label warnings, empty cells), in the CLI's words.
    #[pyo3(get)]
    notes: Vec<String>,
}

/// Validates the registry, selects genes and builds the setup: `scdreamer integrate`'s steps.
#[pyfunction]
#[pyo3(signature = (data, batch_key, allow_single_batch, labels_key, unlabeled_category, transform_batch, genes, hyper))]
#[allow(clippy::too_many_arguments)]
pub fn prepare(
    py: Python<'_>,
    mut data: PyRefMut<'_, Data>,
    batch_key: String,
    allow_single_batch: bool,
    labels_key: Option<String>,
    unlabeled_category: String,
    transform_batch: String,
    genes: GeneArgs,
    hyper: HyperArgs,
) -> PyResult<Trainer> {
    let hp = hyper.resolve()?;
    let mut adata = data.take()?;
    let how = genes.resolve(hp.preset, &adata.var.index)?;
    let prepared = py
        .allow_threads(|| {
            let request = Request {
                source: "adata",
                batch_key: &batch_key,
                allow_single_batch,
                labels_key: labels_key.as_deref(),
                unlabeled_category: &unlabeled_category,
                transform_batch: &transform_batch,
                genes: how,
                hyper: &hp,
                // The device is chosen at train(), after the configuration: the CPU default
                // minibatch (pass batch_size for a larger one on a GPU).
                gpu: false,
            };
            scdreamer::pipeline::prepare(&mut adata, &request)
        })
        .py_err()?;
    let mut notes: Vec<String> = prepared
        .label_warnings
        .iter()
        .map(|w| format!("warning: {w}"))
        .collect();
    if !prepared.report.is_empty() {
        notes.push(format!(
            "{} (they stay; empty cells are embedded but not trained on)",
            prepared.report
        ));
    }
    let setup = &prepared.data;
    let shape = (
        setup.genes.len(),
        setup.prep.batch_names.len(),
        setup.prep.labels.as_ref().map_or(0, |l| l.categories.len()),
        setup.prep.n_cells(),
    );
    Ok(Trainer {
        prepared: Some(prepared),
        preset: hp.preset,
        hyper: hp,
        shape,
        transform_batch,
        labels_key,
        unlabeled_category,
        notes,
    })
}

/// configuration, the log and the seconds it took.
/// What training leaves: the model on its backend (bound to the training data), its saved
/// configuration, the log and the seconds it took.
pub(crate) struct Fitted {
    net: Net,
    saved: SavedConfig,
    log: Vec<EpochLog>,
    train_seconds: f64,
    threads: usize,
    device: &'static str,
}

pub(crate) fn fit_on<B: Backend>(
    backend: &B,
    prepared: Prepared,
    preset: &str,
    on_step: &mut dyn FnMut(StepProgress) -> anyhow::Result<()>,
) -> anyhow::Result<(Net1<B>, SavedConfig, Vec<EpochLog>, f64)> {
    let Prepared {
        data: mut setup,
        model_cfg,
        train_cfg,
        ..
    } = prepared;
    let opts = FitOptions {
        run: RunConfig::new(preset, model_cfg, train_cfg),
        progress: false,
        on_step: Some(on_step),
    };
    let tr = pipeline::fit(backend, &mut setup, opts)?;
    let saved = pipeline::saved_config(
        &tr.run,
        &SavedData {
            gene_names: &setup.gene_names,
            repeated_genes: &setup.repeated_gene_names,
            batch_key: &setup.batch_key,
            batch_names: &setup.prep.batch_names,
            labels_key: setup.labels_key.as_deref(),
            labels: setup.prep.labels.as_ref(),
            constants: setup.prep.constants,
        },
    );
    let net = Net1 {
        model: tr.model,
        bound: Some((setup.prep, tr.data)),
    };
    Ok((net, saved, tr.log, tr.train_seconds))
}

#[pymethods]
impl Trainer {
    /// Indices (into var) of the genes the model uses, in model order.
    #[getter]
    fn genes(&self) -> PyResult<Vec<usize>> {
        self.prepared
            .as_ref()
            .map(|p| p.data.genes.clone())
            .ok_or_else(|| bad("this model was already trained (or its training was interrupted): make a new Model".into()))
    }

    /// The training configuration's epochs and minibatch size.
    #[getter]
    fn epochs(&self) -> Option<(usize, usize)> {
        self.prepared
            .as_ref()
            .map(|p| (p.train_cfg.epochs, p.train_cfg.batch_size))
    }

    /// Training overrides given to `train()` (the model's shape is fixed by then).
    #[pyo3(signature = (max_epochs, batch_size, lr))]
    fn set_training(
        &mut self,
        max_epochs: Option<usize>,
        batch_size: Option<usize>,
        lr: Option<f32>,
    ) -> PyResult<()> {
        let mut hp = self.hyper.clone();
        hp.epochs = max_epochs.or(hp.epochs);
        hp.batch_size = batch_size.or(hp.batch_size);
        hp.lr = lr.or(hp.lr);
        let (g, b, l, n) = self.shape;
        let (_, t) = hp.configs(g, b, l, n).py_err()?;
        if let Some(p) = self.prepared.as_mut() {
            p.train_cfg = t;
        }
        self.hyper = hp;
        Ok(())
    }

    /// Trains on `device` with `n_threads` (GIL released; `callback(step, total, epoch,
    /// epochs)` is called about every 0.1 s, and Ctrl-C stops training with
    /// KeyboardInterrupt). Returns the model and the device line.
    #[pyo3(signature = (device, n_threads, callback))]
    fn train(
        &mut self,
        py: Python<'_>,
        device: &str,
        n_threads: Option<usize>,
        callback: Option<PyObject>,
    ) -> PyResult<(Model, String)> {
        let dev = resolve_device(device)?;
        let described = dev.describe();
        let pool = pool(n_threads)?;
        let prepared = self
            .prepared
            .take()
            .ok_or_else(|| bad("this model was already trained (or its training was interrupted): make a new Model".into()))?;
        let preset = self.preset.name();
        let fitted = watched(py, &pool, callback, move |on_step| {
            let threads = rayon::current_num_threads();
            Ok(match dev {
                Device::Cpu { .. } => {
                    let b = Cpu::new();
                    let (n, saved, log, secs) = fit_on(&b, prepared, preset, on_step)?;
                    Fitted {
                        net: Net::Cpu(n),
                        saved,
                        log,
                        train_seconds: secs,
                        threads,
                        device: b.name(),
                    }
                }
                Device::Cuda(rt) => {
                    let b = device::cuda_backend(rt)?;
                    let (n, saved, log, secs) = fit_on(&b, prepared, preset, on_step)?;
                    Fitted {
                        net: Net::Cuda(n),
                        saved,
                        log,
                        train_seconds: secs,
                        threads,
                        device: b.name(),
                    }
                }
            })
        })?;
        let model = Model {
            net: fitted.net,
            saved: fitted.saved,
            log: fitted.log,
            train_seconds: fitted.train_seconds,
            threads: fitted.threads,
            device: fitted.device,
            pool,
            transform_batch: self.transform_batch.clone(),
            unlabeled_category: self.unlabeled_category.clone(),
            labels_key: self.labels_key.clone(),
        };
        Ok((model, described))
    }
}
