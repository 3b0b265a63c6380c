//! `scdreamer evaluate`, and `integrate --evaluate/--report`, which runs the same job on the
//! file just written.

use std::path::Path;

use anyhow::{Result, bail};

use crate::cli::args::IntegrateArgs;
use crate::cli::embedding_input::{self, Embedding};
pub use crate::cli::evaluate_args::{EvaluateArgs, IntegrateEvaluateArgs, PictureArgs};
use crate::cli::evaluate_report;
use crate::cli::evaluate_scores::{Job, Progress, csv_text, evaluate, table_text, write_atomic};
use crate::data::h5ad::{ReadOptions, read_h5ad};

pub fn run(args: &EvaluateArgs) -> Result<()> {
    if let Some(t) = args.threads {
        // Ignore the error of a pool already built (tests run several commands in one process).
        let _ = rayon::ThreadPoolBuilder::new()
            .num_threads(t)
            .build_global();
    }
    let progress = Progress::new(args.quiet);
    progress.say(&format!("reading {}", args.input.display()));
    let opts = ReadOptions {
        layer: None,
        allow_non_integer: true,
        progress: !args.quiet,
    };
    let adata = read_h5ad(&args.input, &opts)?;
    let mut embeddings = Vec::new();
    for spec in &args.embeddings {
        embeddings.push(embedding_input::load(spec, &args.input, &adata.obs.index)?);
    }
    let job = Job {
        adata: &adata,
        input: &args.input,
        batch_key: &args.batch_key,
        label_key: &args.label_key,
        seed: args.seed,
    };
    run_job(
        &job,
        &embeddings,
        !args.no_metrics,
        args.output.as_deref(),
        &args.pictures,
        &progress,
    )
}

/// Score (unless `metrics` is false), print, write the CSV, the report and the figures.
pub fn run_job(
    job: &Job,
    embeddings: &[Embedding],
    metrics: bool,
    csv: Option<&Path>,
    pictures: &PictureArgs,
    progress: &Progress,
) -> Result<()> {
    if !metrics && pictures.report.is_none() && pictures.figures.is_none() {
        bail!("--no-metrics leaves nothing to do: add --report FILE.html and/or --figures DIR");
    }
    // Check the outputs can be written before the long part.
    for p in [csv, pictures.report.as_deref()].into_iter().flatten() {
        if let Some(dir) = p.parent().filter(|d| !d.as_os_str().is_empty())
            && !dir.is_dir()
        {
            bail!(
                "cannot write {}: no directory {}",
                p.display(),
                dir.display()
            );
        }
    }
    let eval = if metrics {
        let e = evaluate(
            job.adata,
            job.input,
            embeddings,
            job.batch_key,
            job.label_key,
            job.seed,
            progress,
        )?;
        print!("{}", table_text(&e));
        if let Some(out) = csv {
            write_atomic(out, &csv_text(&e))?;
            progress.say(&format!("wrote {}", out.display()));
        }
        Some(e)
    } else {
        None
    };
    if pictures.report.is_some() || pictures.figures.is_some() {
        evaluate_report::pictures(job, embeddings, eval.as_ref(), pictures, progress)?;
    }
    Ok(())
}

fn wants_evaluation(a: &IntegrateArgs) -> bool {
    let ev = &a.evaluate;
    ev.evaluate || ev.pictures.report.is_some() || ev.pictures.figures.is_some()
}

fn label_key_of(a: &IntegrateArgs) -> String {
    a.evaluate
        .label_key
        .clone()
        .or_else(|| a.labels_key.clone())
        .unwrap_or_else(|| "cell_type".to_string())
}

/// Before training: `--evaluate`/`--report` need the label column, so a wrong key fails now,
/// not after the run.
pub fn check_label_key(a: &IntegrateArgs, input: &Path) -> Result<()> {
    if !wants_evaluation(a) {
        return Ok(());
    }
    let key = label_key_of(a);
    let file = crate::data::h5ad::open_h5(input)?;
    let keys = file
        .group("obs")
        .and_then(|g| g.member_names())
        .unwrap_or_default();
    if !keys.iter().any(|k| k == &key) {
        bail!(
            "{}: --evaluate/--report need cell-type labels, but obs has no '{key}' (obs keys: {}); \
             name the column with --label-key",
            input.display(),
            keys.iter()
                .filter(|k| !k.starts_with('_'))
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(())
}

/// `integrate --evaluate` / `--report` / `--figures`: score and draw obsm['X_scdreamer'] of the
/// output just written (re-read from it, so it is exactly what the user gets).
pub fn after_integrate(a: &IntegrateArgs, output: &Path) -> Result<()> {
    let ev = &a.evaluate;
    if !wants_evaluation(a) {
        return Ok(());
    }
    let label_key = label_key_of(a);
    let progress = Progress::new(a.quiet);
    let opts = ReadOptions {
        layer: None,
        allow_non_integer: true,
        progress: false,
    };
    let adata = read_h5ad(output, &opts)?;
    if adata.obs.get(&label_key).is_none() {
        bail!(
            "--evaluate/--report need cell-type labels: obs has no '{label_key}' (keys: {}); \
             name the column with --label-key",
            adata.obs.keys().join(", ")
        );
    }
    let emb = embedding_input::load("X_scdreamer", output, &adata.obs.index)?;
    let job = Job {
        adata: &adata,
        input: output,
        batch_key: &a.input.batch_key,
        label_key: &label_key,
        seed: a.seed,
    };
    run_job(
        &job,
        &[emb],
        ev.evaluate,
        ev.metrics_output.as_deref(),
        &ev.pictures,
        &progress,
    )
}
