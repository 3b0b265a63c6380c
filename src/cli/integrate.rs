//! `scdreamer integrate`: read, validate, choose genes, train, write the results.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use serde_json::json;

use crate::backend::Backend;
use crate::backend::cpu::Cpu;
use crate::backend::device::Device;
use crate::cli::args::{
    AdversaryInputArg, HvgFlavor, IntegrateArgs, Likelihood as LikelihoodArg, LrScheduleArg,
    NormalizedArg, Preset,
};
use crate::data::dense::Dense;
use crate::data::h5ad::{self, CsrBlocks, ReadOptions, Results};
use crate::data::validate;
use crate::model::config::{
    AdversaryInput, Likelihood, LrSchedule, ModelConfig, RunConfig, TrainConfig, default_epochs,
    many_batches,
};
use crate::model::sup::{CellLabels, LabelPrediction};
use crate::pipeline::{self, GeneSelection, Setup};
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

pub(crate) fn gene_selection(
    a: &IntegrateArgs,
    var_names: &[String],
) -> anyhow::Result<GeneSelection> {
    if a.genes.all_genes {
        return Ok(GeneSelection::All);
    }
    if let Some(f) = &a.genes.genes {
        return Ok(GeneSelection::Given(
            crate::data::preprocess::genes_from_file(f, var_names)?,
        ));
    }
    let flavor = a.genes.hvg_flavor.unwrap_or(match a.preset {
        Preset::Authors => HvgFlavor::Seurat,
        Preset::Default => HvgFlavor::SeuratV3,
    });
    Ok(match flavor {
        HvgFlavor::SeuratV3 => GeneSelection::SeuratV3(a.genes.n_top_genes),
        HvgFlavor::Seurat => GeneSelection::Seurat(a.genes.n_top_genes),
    })
}

/// Model and training configuration from the preset and the flags. `n_labels` > 0 selects
/// scDREAMER-Sup, whose preset differs (e.g. its KL weight).
pub fn configs(
    a: &IntegrateArgs,
    n_genes: usize,
    n_batches: usize,
    n_labels: usize,
    n_cells: usize,
) -> anyhow::Result<(ModelConfig, TrainConfig)> {
    let (mut m, mut t) = match a.preset {
        Preset::Default => (
            ModelConfig::default_preset(n_genes, n_batches, n_labels),
            TrainConfig::default_preset(n_cells, n_batches, n_labels, a.seed),
        ),
        Preset::Authors => (
            ModelConfig::authors_preset(n_genes, n_batches, n_labels),
            TrainConfig::authors_preset(a.seed),
        ),
    };
    if let Some(l) = a.latent {
        m.latent = l;
    }
    if let Some(h) = &a.hidden {
        if h.is_empty() || h.contains(&0) {
            anyhow::bail!("--hidden needs one or more positive widths, e.g. 512 or 512,256");
        }
        m.hidden = h.clone();
    }
    if let Some(w) = a.batch_adv_weight {
        m.batch_adv_weight = w;
    }
    if let Some(i) = a.adversary_input {
        m.adversary_input = match i {
            AdversaryInputArg::Sample => AdversaryInput::Sample,
            AdversaryInputArg::Mean => AdversaryInput::Mean,
        };
    }
    if let Some(e) = a.encode_batch {
        m.encode_batch = e;
    }
    if let Some(o) = a.batch_gene_offsets {
        m.batch_gene_offsets = o;
    }
    if let Some(w) = a.disc_weight {
        m.disc_weight = w;
    }
    if let Some(w) = a.kl_weight {
        m.kl_weight = w;
    }
    m.likelihood = match a.likelihood {
        LikelihoodArg::Zinb => Likelihood::Zinb,
        LikelihoodArg::Nb => Likelihood::Nb,
    };
    if let Some(e) = a.epochs {
        t.epochs = e;
    }
    if let Some(b) = a.batch_size {
        t.batch_size = b;
        // The default epoch budget is in steps: follow the batch size the user chose.
        if a.epochs.is_none() && a.preset == Preset::Default {
            t.epochs = default_epochs(n_cells, b, many_batches(n_batches, n_labels));
        }
    }
    if let Some(sch) = a.lr_schedule {
        t.lr_schedule = match sch {
            LrScheduleArg::Constant => LrSchedule::Constant,
            LrScheduleArg::Cosine => LrSchedule::Cosine,
        };
    }
    if let Some(lr) = a.lr {
        // Keep the adversaries' learning rates in the preset's ratio to the AE's.
        let r = lr / t.lr_ae;
        t.lr_ae = lr;
        t.lr_dis *= r;
        t.lr_bc *= r;
    }
    if m.latent == 0 || t.epochs == 0 || t.batch_size < 2 {
        anyhow::bail!(
            "--latent and --epochs must be at least 1 and --batch-size at least 2 (got {}, {}, {})",
            m.latent,
            t.epochs,
            t.batch_size
        );
    }
    if !(t.lr_ae > 0.0 && t.lr_ae.is_finite()) {
        anyhow::bail!("--lr must be a positive number (got {})", t.lr_ae);
    }
    Ok((m, t))
}

/// Saves the trained model in a directory.
pub(crate) type SaveModel<'a> = Box<dyn FnOnce(&Path) -> anyhow::Result<()> + 'a>;

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
    h5ad::check_output_path(&output, &input)?;
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
    match &a.labels_key {
        Some(key) => {
            let (labels, warnings) =
                crate::model::sup::cell_labels(obs, key, &a.unlabeled_category)?;
            for w in &warnings {
                eprintln!("warning: {w}");
            }
            Ok(Some((key.clone(), labels)))
        }
        None => Ok(None),
    }
}

/// `--transform-batch` as a batch code (None for `all`); fails before training on a batch name
/// that does not exist.
pub(crate) fn transform_batch(
    a: &IntegrateArgs,
    batch_names: &[String],
) -> anyhow::Result<Option<u32>> {
    Ok(match a.transform_batch.as_str() {
        "all" => None,
        b => Some(
            batch_names
                .iter()
                .position(|n| n == b)
                .map(|i| i as u32)
                .with_context(|| {
                    format!(
                        "--transform-batch '{b}' is not a batch of '{}'; batches: {}",
                        a.input.batch_key,
                        batch_names.join(", ")
                    )
                })?,
        ),
    })
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
    let (batch, batch_names) =
        validate::batch_codes(&adata.obs, &a.input.batch_key, a.input.allow_single_batch)?;
    // scDREAMER-Sup when a labels column is given.
    let labels = labels_of(a, &adata.obs)?;
    let as_batch = transform_batch(a, &batch_names)?;
    let report = validate::DropReport {
        cells_dropped: adata.x.row_sums().iter().filter(|&&s| s == 0.0).count(),
        genes_dropped: adata.x.col_sums().iter().filter(|&&s| s == 0.0).count(),
    };
    if report.cells_dropped == adata.n_obs() || report.genes_dropped == adata.n_vars() {
        anyhow::bail!(
            "{} has no non-zero counts: nothing to integrate",
            input.display()
        );
    }
    print_dropped(&report);
    let how = gene_selection(a, &adata.var.index)?;
    let genes = pipeline::select_genes(&adata, &batch, batch_names.len(), &how)?;
    let n_labels = labels.as_ref().map_or(0, |(_, l)| l.categories.len());
    let (model_cfg, train_cfg) =
        configs(a, genes.len(), batch_names.len(), n_labels, adata.n_obs())?;
    // Takes adata.x: the full-gene matrix is not needed after gene selection, and when every
    // gene is kept it moves instead of being copied (atlas-scale memory).
    let mut setup = Setup::new_taking_x(
        &mut adata,
        &a.input.batch_key,
        batch,
        batch_names,
        genes,
        &model_cfg,
        None,
    )?;
    if let Some((key, l)) = labels {
        print_labels(&key, &l);
        setup = setup.with_labels(&key, l);
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
    let log_path = o.output.with_extension("log.csv");
    let uns = json!({
        "version": crate::VERSION,
        "preset": o.preset,
        "input": o.input.display().to_string(),
        "batch_key": a.input.batch_key,
        "batch_categories": o.batch_names,
        "transform_batch": a.transform_batch,
        "normalized_layer": "decoder rho of the posterior mean, scaled to 10,000 counts per cell; averaged over batches when transform_batch is 'all'",
        "embedding": format!("{:?}", o.model.embed).to_lowercase(),
        "device": o.device,
        "threads": rayon::current_num_threads(),
        "seed": a.seed,
        "train_seconds": o.train_seconds,
        "total_seconds": o.t_start.elapsed().as_secs_f64(),
        "model": serde_json::to_value(&o.run.model)?,
        "train": serde_json::to_value(&o.run.train)?,
        "training_log": log_path.display().to_string(),
        "labels_key": a.labels_key,
        "unlabeled_category": a.labels_key.as_ref().map(|_| &a.unlabeled_category),
        "label_categories": label_categories,
        "backed_chunk_cells": o.backed_chunk_cells,
    });
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
    h5ad::write_h5ad_blocks(o.output, x, obs, var, &results)?;
    crate::train::write_log(o.log, &log_path)?;
    if let Some(dir) = &a.save_model {
        (o.save)(dir)?;
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
