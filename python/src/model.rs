//! Training and inference for the Python `Model`: `prepare` (the CLI's set-up steps),
//! `Trainer.train` (the CLI's fit, GIL released, Ctrl-C and progress through a callback) and
//! `Model` (embedding, normalized expression, labels, save/load in the CLI's model format).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use numpy::{IntoPyArray, PyArray1, PyArray2};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use scdreamer::backend::Backend;
use scdreamer::backend::cpu::Cpu;
use scdreamer::backend::cuda::CudaBackend;
use scdreamer::backend::device::{self, Device, DeviceRequest};
use scdreamer::io::checkpoint::{self, SavedConfig};
use scdreamer::io::record::RunRecord;
use scdreamer::model::config::{AdversaryInput, Likelihood, LrSchedule};
use scdreamer::model::dataset::{DeviceData, PreparedData};
use scdreamer::model::hyper::{self, HyperParams, Preset};
use scdreamer::model::scdreamer::Scdreamer;
use scdreamer::model::sup::LabelPrediction;
use scdreamer::pipeline::{self, GeneSelection, SavedData};
use scdreamer::prepare::{Prepared, Request};
use scdreamer::tape::Tape;
use scdreamer::train::{EpochLog, StepProgress};

use crate::errors::IntoPy;
use crate::input::Data;

fn bad(msg: String) -> PyErr {
    PyValueError::new_err(msg)
}

/// The Python keyword arguments (already type-checked there) as hyper-parameters.
#[derive(FromPyObject)]
pub struct HyperArgs {
    preset: String,
    n_latent: Option<usize>,
    n_hidden: Option<Vec<usize>>,
    batch_adv_weight: Option<f32>,
    adversary_input: Option<String>,
    encode_batch: Option<bool>,
    batch_gene_offsets: Option<bool>,
    disc_weight: Option<f32>,
    kl_weight: Option<f32>,
    gene_likelihood: String,
    max_epochs: Option<usize>,
    batch_size: Option<usize>,
    lr_schedule: Option<String>,
    lr: Option<f32>,
    seed: u64,
}

fn parse_preset(p: &str) -> PyResult<Preset> {
    match p {
        "default" => Ok(Preset::Default),
        "authors" => Ok(Preset::Authors),
        _ => Err(bad(format!(
            "preset must be 'default' or 'authors', not '{p}'"
        ))),
    }
}

impl HyperArgs {
    fn resolve(&self) -> PyResult<HyperParams> {
        Ok(HyperParams {
            preset: parse_preset(&self.preset)?,
            latent: self.n_latent,
            hidden: self.n_hidden.clone(),
            batch_adv_weight: self.batch_adv_weight,
            adversary_input: match self.adversary_input.as_deref() {
                None => None,
                Some("sample") => Some(AdversaryInput::Sample),
                Some("mean") => Some(AdversaryInput::Mean),
                Some(o) => {
                    return Err(bad(format!(
                        "adversary_input must be 'sample' or 'mean', not '{o}'"
                    )));
                }
            },
            encode_batch: self.encode_batch,
            batch_gene_offsets: self.batch_gene_offsets,
            disc_weight: self.disc_weight,
            kl_weight: self.kl_weight,
            likelihood: match self.gene_likelihood.as_str() {
                "zinb" => Likelihood::Zinb,
                "nb" => Likelihood::Nb,
                o => {
                    return Err(bad(format!(
                        "gene_likelihood must be 'zinb' or 'nb', not '{o}'"
                    )));
                }
            },
            epochs: self.max_epochs,
            batch_size: self.batch_size,
            lr_schedule: match self.lr_schedule.as_deref() {
                None => None,
                Some("constant") => Some(LrSchedule::Constant),
                Some("cosine") => Some(LrSchedule::Cosine),
                Some(o) => {
                    return Err(bad(format!(
                        "lr_schedule must be 'constant' or 'cosine', not '{o}'"
                    )));
                }
            },
            lr: self.lr,
            seed: self.seed,
        })
    }
}

/// Gene choice: every gene, the given names, or HVG selection.
#[derive(FromPyObject)]
pub struct GeneArgs {
    all_genes: bool,
    genes: Option<Vec<String>>,
    hvg_flavor: Option<String>,
    n_top_genes: usize,
}

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
    let how = if genes.all_genes {
        GeneSelection::All
    } else if let Some(names) = &genes.genes {
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        GeneSelection::Given(
            scdreamer::data::preprocess::genes_by_name(&names, &adata.var.index)
                .map_err(|e| e.context("genes"))
                .py_err()?,
        )
    } else {
        let flavor = match genes.hvg_flavor.as_deref() {
            None => None,
            Some("seurat_v3") => Some(hyper::HvgFlavor::SeuratV3),
            Some("seurat") => Some(hyper::HvgFlavor::Seurat),
            Some(o) => {
                return Err(bad(format!(
                    "hvg_flavor must be 'seurat_v3' or 'seurat', not '{o}'"
                )));
            }
        };
        hyper::hvg_selection(hp.preset, flavor, genes.n_top_genes)
    };
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
            };
            scdreamer::prepare::prepare(&mut adata, &request)
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
    let setup = &prepared.setup;
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

/// The backend a model lives on.
enum Net {
    Cpu(Net1<Cpu>),
    Cuda(Net1<CudaBackend>),
}

/// A model and, once known, the data it describes (the training data, or data given later).
struct Net1<B: Backend> {
    model: Scdreamer<B>,
    bound: Option<(PreparedData, DeviceData<B>)>,
}

impl<B: Backend> Net1<B> {
    /// Runs `f` on the bound data, or on `data` (set up against `saved`) when given.
    fn on<R>(
        &self,
        data: Option<AnnDataIn>,
        saved: &SavedConfig,
        f: impl FnOnce(&Scdreamer<B>, &PreparedData, &DeviceData<B>) -> R,
    ) -> anyhow::Result<R> {
        match data {
            Some(mut a) => {
                let mut setup = scdreamer::saved_model::setup_for(&mut a, saved, "adata")?;
                let backend = self.model.params.backend();
                let d = DeviceData::upload_taking(backend, &mut setup.prep)?;
                Ok(f(&self.model, &setup.prep, &d))
            }
            None => match &self.bound {
                Some((prep, d)) => Ok(f(&self.model, prep, d)),
                None => anyhow::bail!("this model holds no data: pass adata"),
            },
        }
    }

    fn bind(&mut self, mut a: AnnDataIn, saved: &SavedConfig) -> anyhow::Result<()> {
        let mut setup = scdreamer::saved_model::setup_for(&mut a, saved, "adata")?;
        let d = DeviceData::upload_taking(self.model.params.backend(), &mut setup.prep)?;
        self.bound = Some((setup.prep, d));
        Ok(())
    }

    fn tape(&self) -> Tape<B> {
        Tape::new(self.model.params.backend().clone())
    }
}

type AnnDataIn = scdreamer::data::AnnData;

/// Dispatches `$body` over the backend of `$net`, binding the typed model as `$n`.
macro_rules! on_net {
    ($net:expr, |$n:ident| $body:expr) => {
        match $net {
            Net::Cpu($n) => $body,
            Net::Cuda($n) => $body,
        }
    };
}

/// A thread pool of `n` threads (None: rayon's global pool, all cores, as the CLI without
/// --threads).
fn pool(n: Option<usize>) -> PyResult<Option<Arc<rayon::ThreadPool>>> {
    match n {
        None => Ok(None),
        Some(0) => Err(bad("n_threads must be at least 1".into())),
        Some(n) => rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build()
            .map(|p| Some(Arc::new(p)))
            .map_err(|e| bad(format!("cannot start {n} threads: {e}"))),
    }
}

fn install<R: Send>(pool: &Option<Arc<rayon::ThreadPool>>, f: impl FnOnce() -> R + Send) -> R {
    match pool {
        Some(p) => p.install(f),
        None => f(),
    }
}

fn resolve_device(device: &str) -> PyResult<Device> {
    let request = match device {
        "auto" => DeviceRequest::Auto,
        "cpu" => DeviceRequest::Cpu,
        "cuda" => DeviceRequest::Cuda,
        o => {
            return Err(bad(format!(
                "device must be 'auto', 'cpu' or 'cuda', not '{o}'"
            )));
        }
    };
    device::resolve(request).py_err()
}

/// Where training is, shared between the training thread and the calling (main) thread.
#[derive(Default)]
struct Shared {
    step: AtomicUsize,
    total: AtomicUsize,
    epoch: AtomicUsize,
    epochs: AtomicUsize,
    /// Set by the main thread (Ctrl-C, or an error in the progress callback): the training
    /// thread stops at its next step.
    stop: AtomicBool,
}

/// Stops training at the next step once `stop` is set.
#[derive(Debug)]
struct Stopped;

impl std::fmt::Display for Stopped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("training was interrupted")
    }
}

impl std::error::Error for Stopped {}

/// Runs `work` on its own thread (inside the thread pool, if any) while the calling thread
/// checks for Ctrl-C and feeds `callback(step, total steps, epoch, epochs)` about every 0.1 s.
/// Python runs signal handlers only on the main thread, and a thread pool's `install` runs
/// the work on a pool thread, so the checks cannot live in the training loop itself.
fn watched<R: Send>(
    py: Python<'_>,
    pool: &Option<Arc<rayon::ThreadPool>>,
    callback: Option<PyObject>,
    work: impl FnOnce(&mut dyn FnMut(StepProgress) -> anyhow::Result<()>) -> anyhow::Result<R> + Send,
) -> PyResult<R> {
    let shared = Shared::default();
    let mut raised: Option<PyErr> = None;
    let result = py.allow_threads(|| {
        std::thread::scope(|scope| {
            let sh = &shared;
            let handle = scope.spawn(move || {
                install(pool, move || {
                    let mut on_step = |p: StepProgress| -> anyhow::Result<()> {
                        sh.step.store(p.step, Ordering::Relaxed);
                        sh.total.store(p.total_steps, Ordering::Relaxed);
                        sh.epoch.store(p.epoch, Ordering::Relaxed);
                        sh.epochs.store(p.epochs, Ordering::Relaxed);
                        if sh.stop.load(Ordering::Relaxed) {
                            return Err(anyhow::Error::new(Stopped));
                        }
                        Ok(())
                    };
                    work(&mut on_step)
                })
            });
            let mut last = Instant::now();
            let mut shown = usize::MAX;
            loop {
                let done = handle.is_finished();
                if done || last.elapsed() >= Duration::from_millis(100) {
                    last = Instant::now();
                    let step = shared.step.load(Ordering::Relaxed);
                    let r = Python::with_gil(|py| -> PyResult<()> {
                        py.check_signals()?;
                        if let Some(cb) = &callback {
                            if step != shown && shared.total.load(Ordering::Relaxed) > 0 {
                                shown = step;
                                let total = shared.total.load(Ordering::Relaxed);
                                let epoch = shared.epoch.load(Ordering::Relaxed);
                                let epochs = shared.epochs.load(Ordering::Relaxed);
                                cb.call1(py, (step, total, epoch, epochs))?;
                            }
                        }
                        Ok(())
                    });
                    if let Err(e) = r {
                        if raised.is_none() {
                            raised = Some(e);
                        }
                        shared.stop.store(true, Ordering::Relaxed);
                    }
                }
                if done {
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            handle
                .join()
                .unwrap_or_else(|_| Err(anyhow::anyhow!("training panicked")))
        })
    });
    match (result, raised) {
        (Ok(r), None) => Ok(r),
        // Ctrl-C or a failing callback: that exception, whatever training returned.
        (_, Some(e)) => Err(e),
        (Err(e), None) => Err(crate::errors::to_py(e)),
    }
}

/// What training leaves: the model on its backend (bound to the training data), its saved
/// configuration, the log and the seconds it took.
struct Fitted {
    net: Net,
    saved: SavedConfig,
    log: Vec<EpochLog>,
    train_seconds: f64,
    threads: usize,
    device: &'static str,
}

fn fit_on<B: Backend>(
    backend: &B,
    prepared: Prepared,
    preset: &str,
    on_step: &mut dyn FnMut(StepProgress) -> anyhow::Result<()>,
) -> anyhow::Result<(Net1<B>, SavedConfig, Vec<EpochLog>, f64)> {
    let Prepared {
        mut setup,
        model_cfg,
        train_cfg,
        ..
    } = prepared;
    let tr = pipeline::fit_setup_observed(
        backend, &mut setup, model_cfg, train_cfg, preset, false, on_step,
    )?;
    let saved = pipeline::saved_config(
        &tr.run,
        &SavedData {
            gene_names: &setup.gene_names,
            batch_key: &setup.batch_key,
            batch_names: &setup.prep.batch_names,
            labels_key: setup.labels_key.as_deref(),
            labels: setup.prep.labels.as_ref(),
            constants: setup.prep.constants(),
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
            .map(|p| p.setup.genes.clone())
            .ok_or_else(|| bad("this model was already trained".into()))
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
            .ok_or_else(|| bad("this model was already trained".into()))?;
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

/// A trained or loaded scDREAMER model.
#[pyclass(module = "scdreamer._scdreamer")]
pub struct Model {
    net: Net,
    saved: SavedConfig,
    log: Vec<EpochLog>,
    train_seconds: f64,
    threads: usize,
    device: &'static str,
    pool: Option<Arc<rayon::ThreadPool>>,
    transform_batch: String,
    unlabeled_category: String,
    labels_key: Option<String>,
}

fn take(data: Option<PyRefMut<'_, Data>>) -> PyResult<Option<AnnDataIn>> {
    data.map(|mut d| d.take()).transpose()
}

fn matrix<'py>(py: Python<'py>, v: Vec<f32>, cols: usize) -> PyResult<Bound<'py, PyArray2<f32>>> {
    let rows = v.len() / cols.max(1);
    let a = numpy::ndarray::Array2::from_shape_vec((rows, cols), v)
        .map_err(|e| bad(format!("result shape: {e}")))?;
    Ok(a.into_pyarray(py))
}

#[pymethods]
impl Model {
    /// The embedding (cells x latent) of the bound data or of `data`.
    #[pyo3(signature = (data=None))]
    fn latent<'py>(
        &self,
        py: Python<'py>,
        data: Option<PyRefMut<'_, Data>>,
    ) -> PyResult<Bound<'py, PyArray2<f32>>> {
        let a = take(data)?;
        let seed = self.saved.run.train.seed;
        let (net, saved, pool) = (&self.net, &self.saved, &self.pool);
        let v = py
            .allow_threads(|| {
                install(pool, || {
                    on_net!(net, |n| n.on(a, saved, |m, prep, d| {
                        let mut tape = n.tape();
                        let mut rng = pipeline::latent_rng(seed);
                        pipeline::embed_cells(m, d, prep, &mut tape, &mut rng)
                    }))
                })
            })
            .py_err()?;
        if v.iter().any(|x| !x.is_finite()) {
            return Err(bad("the embedding has non-finite values".into()));
        }
        matrix(py, v, self.saved.run.model.latent)
    }

    /// Batch-corrected expression (cells x the model's genes, per 10,000 counts), decoded as
    /// batch `transform_batch` or averaged over all batches (None or "all").
    #[pyo3(signature = (data=None, transform_batch=None))]
    fn normalized<'py>(
        &self,
        py: Python<'py>,
        data: Option<PyRefMut<'_, Data>>,
        transform_batch: Option<String>,
    ) -> PyResult<Bound<'py, PyArray2<f32>>> {
        let tb = transform_batch.unwrap_or_else(|| "all".into());
        let as_batch = scdreamer::prepare::transform_batch_code(
            &tb,
            &self.saved.batch_key,
            &self.saved.batch_categories,
        )
        .py_err()?;
        let a = take(data)?;
        let (net, saved, pool) = (&self.net, &self.saved, &self.pool);
        let v = py
            .allow_threads(|| {
                install(pool, || {
                    on_net!(net, |n| n.on(a, saved, |m, prep, d| {
                        let mut tape = n.tape();
                        let mut rng = rand_seed0();
                        pipeline::normalized_cells(m, d, prep, as_batch, &mut tape, &mut rng)
                    }))
                })
            })
            .py_err()?;
        matrix(py, v, self.saved.genes.len())
    }

    /// scDREAMER-Sup: label probabilities (cells x label categories); None without labels.
    #[pyo3(signature = (data=None))]
    fn label_probs<'py>(
        &self,
        py: Python<'py>,
        data: Option<PyRefMut<'_, Data>>,
    ) -> PyResult<Option<Bound<'py, PyArray2<f32>>>> {
        let v = self.probs(py, take(data)?)?;
        v.map(|v| matrix(py, v, self.saved.label_categories.len()))
            .transpose()
    }

    /// scDREAMER-Sup: the predicted label code of every cell and its probability (the CLI's
    /// `obs['scdreamer_label']` and `['scdreamer_label_confidence']`).
    #[pyo3(signature = (data=None))]
    #[allow(clippy::type_complexity)]
    fn predict<'py>(
        &self,
        py: Python<'py>,
        data: Option<PyRefMut<'_, Data>>,
    ) -> PyResult<Option<(Bound<'py, PyArray1<u32>>, Bound<'py, PyArray1<f32>>)>> {
        let k = self.saved.label_categories.len();
        let probs = self.probs(py, take(data)?)?;
        Ok(probs.map(|v| {
            let pred = LabelPrediction::from_probs(&v, k);
            (
                pred.codes.into_pyarray(py),
                pred.confidence.into_pyarray(py),
            )
        }))
    }

    /// Binds `data` (set up against the model's genes and batches) for later calls.
    fn bind(&mut self, py: Python<'_>, data: PyRefMut<'_, Data>) -> PyResult<()> {
        let a = take(Some(data))?.expect("given");
        let (net, saved, pool) = (&mut self.net, &self.saved, &self.pool);
        py.allow_threads(|| install(pool, || on_net!(net, |n| n.bind(a, saved))))
            .py_err()
    }

    /// Writes `weights.safetensors` and `config.json` into `dir` (the CLI's `--save-model`).
    fn save(&self, dir: PathBuf) -> PyResult<()> {
        on_net!(&self.net, |n| checkpoint::save(
            &dir,
            &self.saved,
            &n.model.params
        ))
        .py_err()
    }

    /// Loads a model saved by `save` or by `scdreamer integrate --save-model`.
    #[staticmethod]
    #[pyo3(signature = (dir, device, n_threads))]
    fn load(
        py: Python<'_>,
        dir: PathBuf,
        device: &str,
        n_threads: Option<usize>,
    ) -> PyResult<(Model, String)> {
        let dev = resolve_device(device)?;
        let described = dev.describe();
        let pool = pool(n_threads)?;
        let (net, saved, name) = py
            .allow_threads(|| -> anyhow::Result<_> {
                Ok(match dev {
                    Device::Cpu { .. } => {
                        let b = Cpu::new();
                        let (saved, model) = scdreamer::saved_model::load_model(&dir, &b)?;
                        (Net::Cpu(Net1 { model, bound: None }), saved, b.name())
                    }
                    Device::Cuda(rt) => {
                        let b = device::cuda_backend(rt)?;
                        let (saved, model) = scdreamer::saved_model::load_model(&dir, &b)?;
                        (Net::Cuda(Net1 { model, bound: None }), saved, b.name())
                    }
                })
            })
            .py_err()?;
        let threads = install(&pool, rayon::current_num_threads);
        let labels_key = saved.labels_key.clone();
        Ok((
            Model {
                net,
                saved,
                log: Vec::new(),
                train_seconds: 0.0,
                threads,
                device: name,
                pool,
                transform_batch: "all".into(),
                unlabeled_category: "Unknown".into(),
                labels_key,
            },
            described,
        ))
    }

    /// `config.json` as JSON text (genes, batch and label categories, every parameter).
    fn config_json(&self) -> PyResult<String> {
        serde_json::to_string(&self.saved).map_err(|e| bad(e.to_string()))
    }

    /// The per-epoch training log as JSON text (a list of records).
    fn history_json(&self) -> PyResult<String> {
        serde_json::to_string(&self.log).map_err(|e| bad(e.to_string()))
    }

    /// `uns["scdreamer"]` as the CLI writes it, as JSON text (nulls included; the caller drops
    /// them as the h5ad writer does).
    fn uns_json(&self, input: &str, total_seconds: f64) -> PyResult<String> {
        let s = &self.saved;
        let record = RunRecord {
            input,
            preset: &s.run.preset,
            batch_key: &s.batch_key,
            batch_categories: &s.batch_categories,
            transform_batch: &self.transform_batch,
            run: &s.run,
            device: self.device,
            threads: self.threads,
            seed: s.run.train.seed,
            train_seconds: self.train_seconds,
            total_seconds,
            training_log: None,
            labels_key: self.labels_key.as_deref(),
            unlabeled_category: &self.unlabeled_category,
            label_categories: self
                .labels_key
                .as_ref()
                .map(|_| s.label_categories.as_slice()),
            backed_chunk_cells: None,
        };
        let v = record.to_json().py_err()?;
        Ok(v.to_string())
    }
}

impl Model {
    fn probs(&self, py: Python<'_>, a: Option<AnnDataIn>) -> PyResult<Option<Vec<f32>>> {
        let (net, saved, pool) = (&self.net, &self.saved, &self.pool);
        py.allow_threads(|| {
            install(pool, || {
                on_net!(net, |n| n.on(a, saved, |m, prep, d| {
                    let mut tape = n.tape();
                    let mut rng = rand_seed0();
                    pipeline::label_probs_cells(m, d, prep, &mut tape, &mut rng)
                }))
            })
        })
        .py_err()
    }
}

fn rand_seed0() -> rand_chacha::ChaCha8Rng {
    use rand::SeedableRng;
    // The seed of the CLI's normalized-expression and label passes (pipeline::Trained).
    rand_chacha::ChaCha8Rng::seed_from_u64(0)
}
