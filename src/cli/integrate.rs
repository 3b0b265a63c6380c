//! `scdreamer integrate`: the flags of a run, the backend `--device` chose, and the lines
//! printed; reading, training, inference and writing are `pipeline` and `io` calls, the
//! same for data in memory and `--backed`, on the CPU or a GPU.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;

use crate::backend::cpu::{Cpu, par};
use crate::backend::device::Device;
use crate::cli::args::{IntegrateArgs, NormalizedArg};
use crate::cli::integrate_checks::{check_flags, output_plan};
pub use crate::cli::integrate_config::hyper_params;
use crate::cli::integrate_input::{Data, Loaded, load};
use crate::data::Frame;
use crate::data::h5ad::{self, CsrBlocks};
use crate::io::results::{Outcome, Written, write_results};
use crate::model::config::{ModelConfig, RunConfig, TrainConfig};
use crate::model::dataset::DeviceData;
use crate::model::sup_screen::{SCREEN_ENRICHMENT, SCREEN_NEIGHBOURS, neighbour_votes, screen};
use crate::ops::Backend;
use crate::pipeline::{self, Cells, FitOptions, Inference, Resident, SavedData};

/// Above this many cells x genes values, `--normalized auto` skips the dense layer (800 MB).
const NORMALIZED_AUTO_MAX: usize = 200_000_000;
/// With --backed, `--normalized auto` writes the dense layer only up to this many values
/// (256 MB, about two default chunks), since it is held in memory whole.
const BACKED_NORMALIZED_AUTO_MAX: usize = 64_000_000;

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

/// The input and output files of `run` (for `--evaluate`/`--report`).
pub(crate) fn input_output(a: &IntegrateArgs) -> anyhow::Result<(PathBuf, PathBuf)> {
    let (input, demo) = resolve_input(&a.input.input)?;
    let output = a
        .output
        .clone()
        .unwrap_or_else(|| default_output(&input, demo));
    Ok((input, output))
}

/// Threads, input, output and device: checked before any work.
fn start(a: &IntegrateArgs) -> anyhow::Result<(PathBuf, PathBuf, Device)> {
    check_flags(a)?;
    set_threads(a.threads)?;
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

/// `--threads`: the size of the global pool (all cores when None).
pub(crate) fn set_threads(threads: Option<usize>) -> anyhow::Result<()> {
    if let Some(n) = threads {
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build_global()
            .context("cannot set the number of threads")?;
    }
    Ok(())
}

pub fn run(a: &IntegrateArgs) -> anyhow::Result<()> {
    let t_start = Instant::now();
    let (input, output, device) = start(a)?;
    let loaded = load(a, &input, if device.is_cuda() { "cuda" } else { "cpu" })?;
    let run = Run {
        a,
        t_start,
        input: &input,
        output: &output,
    };
    match device {
        Device::Cpu { .. } => par::on_a_worker(|| train_and_write(&Cpu::new(), &run, loaded)),
        #[cfg(feature = "cuda")]
        Device::Cuda(rt) => {
            train_and_write(&crate::backend::device::cuda_backend(rt)?, &run, loaded)
        }
    }
}

/// The flags and files of a run.
struct Run<'a> {
    a: &'a IntegrateArgs,
    t_start: Instant,
    input: &'a Path,
    output: &'a Path,
}

/// Where the results come from besides the model: the output's X, obs and var, and what a
/// saved model records about the data.
struct Sink<'a> {
    x: &'a dyn CsrBlocks,
    obs: &'a Frame,
    var: Frame,
    saved: SavedData<'a>,
    /// `--backed`: the cells per chunk.
    chunk_cells: Option<usize>,
}

/// Puts the data on `backend`, then trains, infers and writes.
fn train_and_write<B: Backend>(backend: &B, run: &Run, loaded: Loaded) -> anyhow::Result<()> {
    let Loaded {
        data,
        model_cfg,
        train_cfg,
        as_batch,
        ..
    } = loaded;
    match data {
        Data::Resident { adata, mut setup } => {
            let mut held = pipeline::upload_for_training(backend, &mut setup, &train_cfg)?;
            // The labels as given: the output compares the prediction with them.
            let given = setup.prep.labels.clone();
            if run.a.screen_labels {
                screen_labels(
                    backend,
                    run,
                    &mut setup,
                    &mut held,
                    (&model_cfg, &train_cfg),
                )?;
            }
            let cells = Resident {
                prep: &setup.prep,
                data: &held,
                train_rows: &setup.train_rows,
            };
            // The output's X: the training counts themselves (no second copy).
            let mut saved = setup.saved_data();
            saved.labels = given.as_ref();
            let sink = Sink {
                x: held.host_counts(&setup.prep),
                obs: &adata.obs,
                var: adata.var.select(&setup.genes),
                saved,
                chunk_cells: None,
            };
            drive(backend, run, &cells, sink, (model_cfg, train_cfg), as_batch)
        }
        Data::Streamed(s) => {
            let sink = Sink {
                x: &s.backed,
                obs: &s.backed.reader.obs,
                var: s.backed.reader.var.select(&s.backed.genes),
                saved: s.saved_data(),
                chunk_cells: Some(s.chunk_cells()),
            };
            let cells = s.on(backend);
            drive(backend, run, &cells, sink, (model_cfg, train_cfg), as_batch)
        }
    }
}

/// `--screen-labels`: trains the unsupervised model on the same cells, then hides every given
/// label that the cell's nearest labelled neighbours in its embedding outvote (the Sup model
/// trained next predicts those cells as unlabelled ones).
fn screen_labels<B: Backend>(
    backend: &B,
    run: &Run,
    setup: &mut pipeline::Setup,
    held: &mut DeviceData<B>,
    (sup_cfg, sup_train): (&ModelConfig, &TrainConfig),
) -> anyhow::Result<()> {
    let a = run.a;
    let n = setup.prep.n_cells();
    let (model_cfg, train_cfg) = hyper_params(a)
        .on_device(backend.name() == "cuda", n)
        .configs(sup_cfg.n_genes, sup_cfg.n_batches, 0, n)?;
    if !a.quiet {
        eprintln!("--screen-labels: training the unsupervised model to screen the labels");
    }
    let cells = Resident {
        prep: &setup.prep,
        data: held,
        train_rows: &setup.train_rows,
    };
    let fitted = pipeline::fit_cells(
        backend,
        &cells,
        FitOptions::new(RunConfig::new("default", model_cfg, train_cfg), !a.quiet),
    )?;
    let inferred = pipeline::infer(
        &fitted.model,
        &cells,
        &Inference {
            latent: true,
            seed: a.seed,
            labels: false,
            normalized: None,
            progress: false,
        },
    )?;
    let labels = setup
        .prep
        .labels
        .as_ref()
        .context("--screen-labels without labels")?;
    let votes = neighbour_votes(
        &inferred.latent,
        fitted.model.cfg.latent,
        labels,
        SCREEN_NEIGHBOURS,
    );
    let (screened, hidden) = screen(labels, &votes, SCREEN_ENRICHMENT);
    eprintln!(
        "--screen-labels: {hidden} of the {} given labels are outvoted by their cells' \
         {SCREEN_NEIGHBOURS} nearest labelled cells and trained as unlabelled",
        labels.n_labelled()
    );
    pipeline::relabel(backend, setup, held, screened, sup_train)
}

/// The run itself, whatever holds the cells: fit, infer, write, then the closing lines.
fn drive<B: Backend>(
    backend: &B,
    run: &Run,
    cells: &dyn Cells<B>,
    sink: Sink,
    (model_cfg, train_cfg): (ModelConfig, TrainConfig),
    as_batch: Option<u32>,
) -> anyhow::Result<()> {
    let a = run.a;
    let preset = format!("{:?}", a.preset).to_lowercase();
    let fitted = pipeline::fit_cells(
        backend,
        cells,
        FitOptions::new(RunConfig::new(&preset, model_cfg, train_cfg), !a.quiet),
    )?;
    let (n, n_genes) = (cells.n_cells(), sink.saved.gene_names.len());
    let inferred = pipeline::infer(
        &fitted.model,
        cells,
        &Inference {
            latent: true,
            seed: a.seed,
            labels: true,
            normalized: write_normalized(a, n, n_genes, sink.chunk_cells.is_some())
                .then_some(as_batch),
            progress: !a.quiet,
        },
    )?;
    let saved = &sink.saved;
    let outcome = Outcome {
        input: run.input,
        output: run.output,
        t_start: run.t_start,
        preset,
        batch_key: &a.input.batch_key,
        transform_batch: &a.transform_batch,
        seed: a.seed,
        labels_key: a.labels_key.as_deref(),
        unlabeled_category: &a.unlabeled_category,
        n_cells: n,
        n_genes,
        batch_names: saved.batch_names,
        labels: saved.labels,
        latent: inferred.latent,
        normalized: inferred.normalized,
        predicted: inferred.predicted,
        disagree_threshold: a.disagree_threshold,
        model: &fitted.model.cfg,
        run: &fitted.run,
        log: &fitted.log,
        train_seconds: fitted.train_seconds,
        backed_chunk_cells: sink.chunk_cells,
        device: backend.name(),
        save_model: a.save_model.as_deref(),
        save: Box::new(|dir| pipeline::save_model(dir, &fitted.model, &fitted.run, saved)),
    };
    let has_normalized = outcome.normalized.is_some();
    let written = write_results(outcome, sink.x, sink.obs, &sink.var)?;
    print_written(
        run,
        &written,
        has_normalized,
        &fitted.log,
        saved.batch_names.len(),
    );
    Ok(())
}

/// `--normalized`: whether to write the dense layer (saying why not, when `auto` skips it).
fn write_normalized(a: &IntegrateArgs, n: usize, n_genes: usize, backed: bool) -> bool {
    let max = if backed {
        BACKED_NORMALIZED_AUTO_MAX
    } else {
        NORMALIZED_AUTO_MAX
    };
    match a.normalized {
        NormalizedArg::Yes => true,
        NormalizedArg::No => false,
        NormalizedArg::Auto if n * n_genes <= max => true,
        NormalizedArg::Auto => {
            eprintln!(
                "{}not writing layers['scdreamer_normalized']: {n} cells x {n_genes} genes would \
                 take {:.2} GB dense in memory (use --normalized yes to write it anyway)",
                if backed { "--backed: " } else { "" },
                (n * n_genes * 4) as f64 / 1e9
            );
            false
        }
    }
}

fn print_written(
    run: &Run,
    w: &Written,
    normalized: bool,
    log: &[crate::train::EpochLog],
    n_batches: usize,
) {
    if let Some(dir) = &run.a.save_model {
        eprintln!("saved the model to {}", dir.display());
    }
    if let Some((hits, of)) = w.label_agreement {
        eprintln!(
            "wrote obs['scdreamer_label'] and obs['scdreamer_label_confidence']; \
             the prediction agrees with {hits} of the {of} given labels"
        );
    }
    eprintln!(
        "wrote {} (obsm['X_scdreamer']{}) and the training log {} in {:.1} s{}",
        run.output.display(),
        if normalized {
            ", layers['scdreamer_normalized']"
        } else {
            ""
        },
        w.log_path.display(),
        run.t_start.elapsed().as_secs_f64(),
        log.last()
            .map(|l| format!(
                "; final batch-classifier accuracy {:.2} (chance {:.2})",
                l.batch_classifier_accuracy,
                1.0 / n_batches as f64
            ))
            .unwrap_or_default()
    );
}
