//! `Model`: a trained or loaded model with the data it describes: embedding, normalized
//! expression, labels, save/load in the CLI's model format.

use std::path::PathBuf;
use std::sync::Arc;

use numpy::{IntoPyArray, PyArray1, PyArray2};
use pyo3::prelude::*;
use scdreamer::backend::cpu::Cpu;
use scdreamer::backend::cuda::CudaBackend;
use scdreamer::backend::device::{self, Device};
use scdreamer::io::checkpoint::{self, SavedConfig};
use scdreamer::io::record::RunRecord;
use scdreamer::model::dataset::{DeviceData, PreparedData};
use scdreamer::model::scdreamer::Scdreamer;
use scdreamer::model::sup::LabelPrediction;
use scdreamer::ops::Backend;
use scdreamer::pipeline;
use scdreamer::tape::Tape;
use scdreamer::train::EpochLog;

use crate::args::*;
use crate::errors::IntoPy;
use crate::input::Data;
use crate::threads::*;

/// The backend a model lives on.
pub(crate) enum Net {
    Cpu(Net1<Cpu>),
    Cuda(Net1<CudaBackend>),
}

/// A model and, once known, the data it describes (the training data, or data given later).
pub(crate) struct Net1<B: Backend> {
    pub(crate) model: Scdreamer<B>,
    pub(crate) bound: Option<(PreparedData, DeviceData<B>)>,
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

pub(crate) type AnnDataIn = scdreamer::data::AnnData;

/// Dispatches `$body` over the backend of `$net`, binding the typed model as `$n`.
macro_rules! on_net {
    ($net:expr, |$n:ident| $body:expr) => {
        match $net {
            Net::Cpu($n) => $body,
            Net::Cuda($n) => $body,
        }
    };
}

/// `$body` on the cells `$a` (the bound data when None) of `$model` with its model `$m`,
/// preprocessing `$prep`, data `$d` and a fresh tape `$tape`: on the model's device and thread
/// pool, without the GIL; a `PyResult`.
macro_rules! on_cells {
    ($model:expr, $py:expr, $a:expr, |$m:ident, $prep:ident, $d:ident, $tape:ident| $body:expr) => {{
        let (net, saved, pool) = (&$model.net, &$model.saved, &$model.pool);
        $py.allow_threads(|| {
            install(pool, || {
                on_net!(net, |n| n.on($a, saved, |$m, $prep, $d| {
                    let mut $tape = n.tape();
                    $body
                }))
            })
        })
        .py_err()
    }};
}

/// A trained or loaded scDREAMER model.
#[pyclass(module = "scdreamer._scdreamer")]
pub struct Model {
    pub(crate) net: Net,
    pub(crate) saved: SavedConfig,
    pub(crate) log: Vec<EpochLog>,
    pub(crate) train_seconds: f64,
    pub(crate) threads: usize,
    pub(crate) device: &'static str,
    pub(crate) pool: Option<Arc<rayon::ThreadPool>>,
    pub(crate) transform_batch: String,
    pub(crate) unlabeled_category: String,
    pub(crate) labels_key: Option<String>,
}

pub(crate) fn take(data: Option<PyRefMut<'_, Data>>) -> PyResult<Option<AnnDataIn>> {
    data.map(|mut d| d.take()).transpose()
}

pub(crate) fn matrix<'py>(
    py: Python<'py>,
    v: Vec<f32>,
    cols: usize,
) -> PyResult<Bound<'py, PyArray2<f32>>> {
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
        let v = on_cells!(self, py, a, |m, prep, d, tape| {
            let mut rng = pipeline::latent_rng(seed);
            pipeline::ModelOn {
                model: m,
                data: d,
                prep,
            }
            .embed(&mut tape, &mut rng)
        })?;
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
        let as_batch = scdreamer::pipeline::prepare::transform_batch_code(
            &tb,
            &self.saved.batch_key,
            &self.saved.batch_categories,
        )
        .py_err()?;
        let a = take(data)?;
        let v = on_cells!(self, py, a, |m, prep, d, tape| {
            let on = pipeline::ModelOn {
                model: m,
                data: d,
                prep,
            };
            on.normalized(as_batch, &mut tape, &mut rand_seed0())
        })?;
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

    /// Maps the query `data` (new batches welcome) onto this model (see `scdreamer map`):
    /// returns the extended model, bound to the query.
    #[pyo3(signature = (data, batch_key, epochs, seed, lr, fill_missing_genes, batch_init))]
    #[allow(clippy::too_many_arguments)]
    fn map_query(
        &self,
        py: Python<'_>,
        data: PyRefMut<'_, Data>,
        batch_key: Option<String>,
        epochs: usize,
        seed: u64,
        lr: f32,
        fill_missing_genes: bool,
        batch_init: &str,
    ) -> PyResult<Model> {
        let init = match batch_init {
            "mean" => scdreamer::map::InitChoice::Mean,
            "closest" => scdreamer::map::InitChoice::Closest,
            other => {
                return Err(bad(format!(
                    "batch_init must be 'mean' or 'closest' (got {other:?})"
                )));
            }
        };
        if !(lr.is_finite() && lr > 0.0) {
            return Err(bad(format!("lr must be positive (got {lr})")));
        }
        let mut a = take(Some(data))?.expect("given");
        let opts = scdreamer::map::MapOptions {
            batch_key,
            fill_missing_genes,
            fit: scdreamer::map::QueryFit {
                epochs,
                batch_size: self.saved.run.train.batch_size,
                lr,
                seed,
            },
            init,
        };
        let (net, saved, pool) = (&self.net, &self.saved, &self.pool);
        let (net, ext) = py
            .allow_threads(|| {
                install(pool, || -> anyhow::Result<(Net, SavedConfig)> {
                    Ok(match net {
                        Net::Cpu(n) => {
                            let (n1, ext) = mapped(n, saved, &mut a, &opts)?;
                            (Net::Cpu(n1), ext)
                        }
                        Net::Cuda(n) => {
                            let (n1, ext) = mapped(n, saved, &mut a, &opts)?;
                            (Net::Cuda(n1), ext)
                        }
                    })
                })
            })
            .py_err()?;
        Ok(Model {
            net,
            labels_key: ext.labels_key.clone(),
            saved: ext,
            log: Vec::new(),
            train_seconds: 0.0,
            threads: self.threads,
            device: self.device,
            pool: self.pool.clone(),
            transform_batch: "all".into(),
            unlabeled_category: self.unlabeled_category.clone(),
        })
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
            // The per-epoch log stays in memory, as the model's `history` DataFrame.
            training_log: "Model.history",
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
        on_cells!(self, py, a, |m, prep, d, tape| {
            let on = pipeline::ModelOn {
                model: m,
                data: d,
                prep,
            };
            on.label_probs(&mut tape, &mut rand_seed0())
        })
    }
}

/// The query mapped onto `n`'s model: the extended model bound to the query, and its config.
fn mapped<B: Backend>(
    n: &Net1<B>,
    saved: &SavedConfig,
    a: &mut AnnDataIn,
    opts: &scdreamer::map::MapOptions,
) -> anyhow::Result<(Net1<B>, SavedConfig)> {
    let m = scdreamer::map::map_query(n.model.params.backend(), &n.model, saved, a, opts)?;
    let bound = Some((m.setup.prep, m.trained.data));
    Ok((
        Net1 {
            model: m.trained.model,
            bound,
        },
        m.saved,
    ))
}

pub(crate) fn rand_seed0() -> rand_chacha::ChaCha8Rng {
    use rand::SeedableRng;
    // The seed of the CLI's normalized-expression and label passes (pipeline::Trained).
    rand_chacha::ChaCha8Rng::seed_from_u64(0)
}
