//! `integrate`'s checks before any work: flag ranges, every output path against the inputs and
//! each other, and an empty input named.

use std::path::Path;

use crate::cli::args::IntegrateArgs;
use crate::files::outputs::OutputPlan;
use crate::io::checkpoint;
use crate::io::results::log_path;

/// Loss weights must be finite numbers >= 0: a negative or NaN weight turns a term of the loss
/// around or poisons every step.
pub(crate) fn check_weights(a: &IntegrateArgs) -> anyhow::Result<()> {
    for (flag, w) in [
        ("--kl-weight", a.kl_weight),
        ("--batch-adv-weight", a.batch_adv_weight),
        ("--disc-weight", a.disc_weight),
    ] {
        if let Some(w) = w
            && !(w >= 0.0 && w.is_finite())
        {
            anyhow::bail!("{flag} must be a finite number >= 0 (got {w})");
        }
    }
    Ok(())
}

/// Flags checked before the input is read: a typo must not wait for a large file.
pub(crate) fn check_flags(a: &IntegrateArgs) -> anyhow::Result<()> {
    if a.screen_labels && a.labels_key.is_none() {
        anyhow::bail!("--screen-labels needs --labels-key (it screens the given labels)");
    }
    if a.screen_labels && a.backed {
        anyhow::bail!("--screen-labels needs the data in memory: run without --backed");
    }
    if a.label_balance.is_some() && a.labels_key.is_none() {
        anyhow::bail!("--label-balance needs --labels-key (it weighs the label loss)");
    }
    if a.label_loss.is_some() && a.labels_key.is_none() {
        anyhow::bail!("--label-loss needs --labels-key (it is scDREAMER-Sup's label loss)");
    }
    if !(0.0..=1.0).contains(&a.disagree_threshold) {
        anyhow::bail!(
            "--disagree-threshold must be a probability in [0, 1] (got {})",
            a.disagree_threshold
        );
    }
    if a.threads == Some(0) {
        anyhow::bail!("--threads must be at least 1, got 0");
    }
    if let Some(n) = a.threads
        && n > MAX_THREADS
    {
        anyhow::bail!("--threads {n} is more than {MAX_THREADS}: give at most the number of cores");
    }
    if a.genes.n_top_genes == 0 && !a.genes.all_genes && a.genes.genes.is_none() {
        anyhow::bail!(
            "--n-top-genes must be at least 1, got 0 (use --all-genes to keep every gene)"
        );
    }
    if let Some(h) = &a.hidden
        && (h.is_empty() || h.contains(&0))
    {
        anyhow::bail!("--hidden needs one or more positive widths, e.g. 512 or 512,256");
    }
    if a.latent == Some(0) || a.epochs == Some(0) || a.batch_size.is_some_and(|b| b < 2) {
        anyhow::bail!("--latent and --epochs must be at least 1 and --batch-size at least 2");
    }
    if a.chunk_cells == Some(0) {
        anyhow::bail!("--chunk-cells must be at least 1, got 0");
    }
    check_weights(a)
}

/// A file without cells or genes: said with its name, before any column is looked at.
pub(crate) fn check_not_empty(input: &Path, cells: usize, genes: usize) -> anyhow::Result<()> {
    if cells == 0 || genes == 0 {
        anyhow::bail!(
            "{} has no {} (X is {cells} x {genes}): nothing to integrate",
            input.display(),
            if cells == 0 { "cells" } else { "genes" }
        );
    }
    Ok(())
}

/// More threads than this is a typo, not a machine: each thread reserves its own stack.
const MAX_THREADS: usize = 4096;

/// Every file the run writes and reads, checked before any work starts.
pub(crate) fn output_plan(a: &IntegrateArgs, input: &Path, output: &Path) -> OutputPlan {
    let log = log_path(output);
    let mut plan = OutputPlan::new()
        .file("--output", output)
        .file("the training log", &log)
        .file("the training log", &crate::train::log::log_json_path(&log))
        .input("--input", input);
    if let Some(dir) = &a.save_model {
        plan = plan.dir(
            "--save-model",
            dir,
            &[checkpoint::WEIGHTS, checkpoint::CONFIG],
        );
    }
    if let Some(genes) = &a.genes.genes {
        plan = plan.input("--genes", genes);
    }
    plan
}
