//! `scdreamer integrate`: read, validate, choose genes, train, write the results.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;

use crate::backend::Backend;
use crate::backend::cpu::Cpu;
use crate::backend::device::Device;
use crate::cli::args::{IntegrateArgs, NormalizedArg};
pub(crate) use crate::cli::integrate_checks::check_not_empty;
use crate::cli::integrate_checks::{check_flags, log_path, output_plan};
pub(crate) use crate::cli::integrate_config::{check_fits, gene_selection};
pub use crate::cli::integrate_config::{configs, hyper_params};
use crate::data::dense::Dense;
use crate::data::h5ad::{self, CsrBlocks, ReadOptions, Results};
use crate::data::validate;
use crate::io::cleanup::commit_all;
use crate::io::record::RunRecord;
use crate::model::config::{ModelConfig, RunConfig, TrainConfig};
use crate::model::sup::{CellLabels, LabelPrediction};
use crate::pipeline::{self, Setup};
use crate::prepare::{Prepared, Request};
use crate::train::EpochLog;

/// Above this many cells x genes values, `--normalized auto` skips the dense layer (800 MB).
const NORMALIZED_AUTO_MAX: usize = 200_000_000;

/// Resolves `--input`, falling back to the bundled demo (and saying so).
pub fn resolve_input(input: &Option<PathBuf>) -> anyhow::Result<(PathBuf, bool)> {
    match input {
        Some(p) => Ok((p.clone(), false)),
        None => {
            eprintln!(
                "no --input given: running on the bundled demo (cellbench_3cl_10xsub, 1,345 cells, 3 batches)"
            );
            Ok((crate::data::demo::demo_path()?, true))
        }
    }
}

fn default_output(input: &Path, demo: bool) -> PathBuf {
    if demo {
        return PathBuf::from("demo_scdreamer.h5ad");
    }
    let stem = input.file_stem().and_then(|s| s.to_str()).unwrap_or("out");
    input.with_file_name(format!("{stem}_scdreamer.h5ad"))
}

/// Saves the trained model in a directory.
pub(crate) type SaveModel<'a> =
    Box<dyn FnOnce(&Path) -> anyhow::Result<Vec<crate::io::cleanup::Pending>> + 'a>;

/// Everything the output stage needs, from the resident or the streamed path.
pub(crate) struct Outcome<'a> {
    pub input: &'a Path,
    pub output: &'a Path,
    pub t_start: Instant,
    pub preset: String,
    pub n_cells: usize,
    pub n_genes: usize,
    pub batch_names: &'a [String],
    pub labels: Option<&'a CellLabels>,
    pub latent: Vec<f32>,
    pub normalized: Option<Vec<f32>>,
    pub predicted: Option<LabelPrediction>,
    pub model: &'a ModelConfig,
    pub run: &'a RunConfig,
    pub log: &'a [EpochLog],
    pub train_seconds: f64,
    /// `--backed`: the cells per chunk.
    pub backed_chunk_cells: Option<usize>,
    /// The backend that trained: "cpu" or "cuda".
    pub device: &'static str,
    /// Saves the model in a directory (`--save-model`), after the output is written.
    pub save: SaveModel<'a>,
}

/// The input and output files of `run` (for `--evaluate`/`--report`).
pub(crate) fn input_output(a: &IntegrateArgs) -> anyhow::Result<(PathBuf, PathBuf)> {
    let (input, demo) = resolve_input(&a.input.input)?;
    let output = a
        .output
        .clone()
        .unwrap_or_else(|| default_output(&input, demo));
    Ok((input, output))
}

/// Threads, input, output and device: the common start of both paths.
fn start(a: &IntegrateArgs) -> anyhow::Result<(PathBuf, PathBuf, Device)> {
    check_flags(a)?;
    if let Some(n) = a.threads {
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build_global()
            .context("cannot set the number of threads")?;
    }
    let (input, demo) = resolve_input(&a.input.input)?;
    let output = a
        .output
        .clone()
        .unwrap_or_else(|| default_output(&input, demo));
    output_plan(a, &input, &output).check()?;
    h5ad::install_ctrlc_cleanup();
    let device = crate::backend::device::resolve(a.device.into())?;
    eprintln!("{}", device.describe());
    Ok((input, output, device))
}

/// scDREAMER-Sup's labels when `--labels-key` is given (warnings printed).
pub(crate) fn labels_of(
    a: &IntegrateArgs,
    obs: &crate::data::Frame,
) -> anyhow::Result<Option<(String, CellLabels)>> {
    let (labels, warnings) =
        crate::prepare::labels_of(obs, a.labels_key.as_deref(), &a.unlabeled_category)?;
    print_warnings(&warnings);
    Ok(labels)
}

fn print_warnings(warnings: &[String]) {
    for w in warnings {
        eprintln!("warning: {w}");
    }
}

/// `--transform-batch` as a batch code (None for `all`); fails before training on a batch name
/// that does not exist.
pub(crate) fn transform_batch(
    a: &IntegrateArgs,
    batch_names: &[String],
) -> anyhow::Result<Option<u32>> {
    crate::prepare::transform_batch_code(&a.transform_batch, &a.input.batch_key, batch_names)
}

pub(crate) fn print_labels(key: &str, l: &CellLabels) {
    eprintln!(
        "scDREAMER-Sup: {} of {} cells labelled in obs['{key}'], {} types",
        l.n_labelled(),
        l.codes.len(),
        l.categories.len()
    );
}

pub(crate) fn print_plan(
    a: &IntegrateArgs,
    n_cells: usize,
    n_genes: usize,
    n_batches: usize,
    t: &TrainConfig,
    device: &str,
) {
    eprintln!(
        "scdreamer {}: {} cells x {} genes, {} batches ({}); preset {}, {} epochs, batch size {}, device {device}",
        crate::VERSION,
        n_cells,
        n_genes,
        n_batches,
        a.input.batch_key,
        format!("{:?}", a.preset).to_lowercase(),
        t.epochs,
        t.batch_size
    );
}

pub fn run(a: &IntegrateArgs) -> anyhow::Result<()> {
    let t_start = Instant::now();
    let (input, output, device) = start(a)?;
    if a.backed {
        if device.is_cuda() {
            eprintln!("--backed streams chunks through the CPU backend: training on the CPU");
        }
        return crate::cli::integrate_backed::run(a, &input, &output, t_start);
    }
    if a.chunk_cells.is_some() {
        anyhow::bail!("--chunk-cells needs --backed");
    }
    let opts = ReadOptions {
        layer: a.input.layer.clone(),
        allow_non_integer: a.input.allow_non_integer,
        progress: !a.quiet,
    };
    let mut adata = h5ad::read_h5ad(&input, &opts)?;
    check_not_empty(&input, adata.n_obs(), adata.n_vars())?;
    let how = gene_selection(a, &adata.var)?;
    let hyper = hyper_params(a);
    let request = Request {
        source: &input.display().to_string(),
        batch_key: &a.input.batch_key,
        allow_single_batch: a.input.allow_single_batch,
        labels_key: a.labels_key.as_deref(),
        unlabeled_category: &a.unlabeled_category,
        transform_batch: &a.transform_batch,
        genes: how,
        hyper: &hyper,
    };
    let Prepared {
        setup,
        model_cfg,
        train_cfg,
        as_batch,
        report,
        label_warnings,
    } = crate::prepare::prepare(&mut adata, &request)?;
    check_fits(&model_cfg, &train_cfg, adata.obs.len())?;
    print_warnings(&label_warnings);
    print_dropped(&report);
    if let (Some(key), Some(l)) = (&setup.labels_key, &setup.prep.labels) {
        print_labels(key, l);
    }
    print_plan(
        a,
        adata.obs.len(),
        setup.genes.len(),
        setup.prep.batch_names.len(),
        &train_cfg,
        if device.is_cuda() { "cuda" } else { "cpu" },
    );

    let job = Job {
        a,
        t_start,
        input,
        output,
        adata,
        setup,
        model_cfg,
        train_cfg,
        as_batch,
    };
    match device {
        Device::Cpu { .. } => train_and_write(&Cpu::new(), job),
        #[cfg(feature = "cuda")]
        Device::Cuda(rt) => train_and_write(&crate::backend::device::cuda_backend(rt)?, job),
    }
}

/// Everything `run` prepared for training, handed to the backend-generic second half.
struct Job<'a> {
    a: &'a IntegrateArgs,
    t_start: Instant,
    input: PathBuf,
    output: PathBuf,
    adata: crate::data::AnnData,
    setup: Setup,
    model_cfg: ModelConfig,
    train_cfg: TrainConfig,
    as_batch: Option<u32>,
}

/// Trains on `backend`, then writes the embedding, the normalized layer, the log and the model.
fn train_and_write<B: Backend>(backend: &B, job: Job) -> anyhow::Result<()> {
    let Job {
        a,
        t_start,
        input,
        output,
        adata,
        mut setup,
        model_cfg,
        train_cfg,
        as_batch,
    } = job;
    let preset = format!("{:?}", a.preset).to_lowercase();
    let trained = pipeline::fit(backend, &mut setup, model_cfg, train_cfg, &preset, !a.quiet)?;
    let latent = trained.latent(&setup.prep, a.seed);
    let n = adata.obs.len();
    let write_normalized = match a.normalized {
        NormalizedArg::Yes => true,
        NormalizedArg::No => false,
        NormalizedArg::Auto => n * setup.genes.len() <= NORMALIZED_AUTO_MAX,
    };
    if !write_normalized && a.normalized == NormalizedArg::Auto {
        eprintln!(
            "not writing layers['scdreamer_normalized']: {n} cells x {} genes would take {:.1} GB dense (use --normalized yes)",
            setup.genes.len(),
            (n * setup.genes.len() * 4) as f64 / 1e9
        );
    }
    let normalized = write_normalized.then(|| trained.normalized(&setup.prep, as_batch));
    let predicted = trained.predict_labels(&setup.prep);
    // Output: all input cells, the genes used, raw counts in X (the training counts themselves:
    // no second copy).
    let x = trained.counts(&setup.prep);
    let var = adata.var.select(&setup.genes);
    let outcome = Outcome {
        input: &input,
        output: &output,
        t_start,
        preset,
        n_cells: n,
        n_genes: setup.genes.len(),
        batch_names: &setup.prep.batch_names,
        labels: setup.prep.labels.as_ref(),
        latent,
        normalized,
        predicted,
        model: &trained.model.cfg,
        run: &trained.run,
        log: &trained.log,
        train_seconds: trained.train_seconds,
        backed_chunk_cells: None,
        device: backend.name(),
        save: Box::new(|dir| trained.save(dir, &setup)),
    };
    finish(a, outcome, x, &adata.obs, &var)
}

pub(crate) fn print_dropped(report: &validate::DropReport) {
    if report.cells_dropped + report.genes_dropped > 0 {
        eprintln!(
            "{report} (they stay in the output; empty cells are embedded but not trained on)"
        );
    }
}

/// Checks the embedding, writes the output file (X given block by block), the training log,
/// and the closing messages. Shared by the resident and the streamed paths.
pub(crate) fn finish(
    a: &IntegrateArgs,
    o: Outcome,
    x: &dyn CsrBlocks,
    obs: &crate::data::Frame,
    var: &crate::data::Frame,
) -> anyhow::Result<()> {
    if o.latent.iter().any(|v| !v.is_finite()) {
        anyhow::bail!("the embedding has non-finite values; nothing was written");
    }
    let n = o.n_cells;
    let label_categories = o.labels.map(|l| l.categories.clone());
    let latent_dim = o.model.latent;
    let log_path = log_path(o.output);
    let log_name = log_path.display().to_string();
    let uns = RunRecord {
        input: &o.input.display().to_string(),
        preset: &o.preset,
        batch_key: &a.input.batch_key,
        batch_categories: o.batch_names,
        transform_batch: &a.transform_batch,
        run: o.run,
        device: o.device,
        threads: rayon::current_num_threads(),
        seed: a.seed,
        train_seconds: o.train_seconds,
        total_seconds: o.t_start.elapsed().as_secs_f64(),
        training_log: &log_name,
        labels_key: a.labels_key.as_deref(),
        unlabeled_category: &a.unlabeled_category,
        label_categories: label_categories.as_deref(),
        backed_chunk_cells: o.backed_chunk_cells,
    }
    .to_json()?;
    let write_normalized = o.normalized.is_some();
    let results = Results {
        obsm: vec![("X_scdreamer".into(), Dense::new(n, latent_dim, o.latent)?)],
        layers: match o.normalized {
            Some(v) => vec![("scdreamer_normalized".into(), Dense::new(n, o.n_genes, v)?)],
            None => Vec::new(),
        },
        obs: match (&o.predicted, &label_categories) {
            (Some(p), Some(c)) => p.obs_columns(c),
            _ => Vec::new(),
        },
        uns: vec![("scdreamer".into(), uns)],
    };
    // Every output under a temp name first, then all renamed together: a full disk or an
    // interrupt leaves none of them, never an .h5ad without its log or a model without config.
    let mut pending = vec![h5ad::write_h5ad_pending(o.output, x, obs, var, &results)?];
    pending.extend(crate::train::log::write_log_pending(o.log, &log_path)?);
    if let Some(dir) = &a.save_model {
        pending.extend((o.save)(dir)?);
    }
    commit_all(pending)?;
    if let Some(dir) = &a.save_model {
        eprintln!("saved the model to {}", dir.display());
    }
    if let (Some(p), Some(l)) = (&o.predicted, o.labels) {
        let labelled: Vec<(u32, u32)> = (l.codes.iter().zip(&p.codes))
            .filter_map(|(t, &p)| t.map(|t| (t, p)))
            .collect();
        let hits = labelled.iter().filter(|(t, p)| t == p).count();
        eprintln!(
            "wrote obs['scdreamer_label'] and obs['scdreamer_label_confidence']; \
             the prediction agrees with {hits} of the {} given labels",
            labelled.len()
        );
    }
    let last = o.log.last();
    eprintln!(
        "wrote {} (obsm['X_scdreamer']{}) and the training log {} in {:.1} s{}",
        o.output.display(),
        if write_normalized {
            ", layers['scdreamer_normalized']"
        } else {
            ""
        },
        log_path.display(),
        o.t_start.elapsed().as_secs_f64(),
        last.map(|l| format!(
            "; final batch-classifier accuracy {:.2} (chance {:.2})",
            l.batch_classifier_accuracy,
            1.0 / o.batch_names.len() as f64
        ))
        .unwrap_or_default()
    );
    Ok(())
}
