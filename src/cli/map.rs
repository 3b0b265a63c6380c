//! `scdreamer map --model DIR --input query.h5ad --output out.h5ad`: a saved model maps a query
//! dataset whose batches it may never have seen (scArches-style surgery, see [`crate::map`]),
//! writes the query's embedding in the reference latent space and, for a scDREAMER-Sup model,
//! the transferred labels with an `Unknown` answer below `--unknown-threshold`.

use std::path::PathBuf;

use serde_json::json;

use crate::backend::cpu::Cpu;
use crate::data::dense::Dense;
use crate::data::h5ad::{self, Results};
use crate::files::cleanup::commit_all;
use crate::io::checkpoint;
use crate::map::{BatchInit, InitChoice, MapOptions, QueryFit};

/// Default of `--unknown-threshold`: of 0.5-0.95, the threshold that separated the cells of a
/// type missing from the reference best (largest share of novel-type cells below it minus
/// share of known-type cells below it, averaged over four leave-one-type-out splits;
/// BENCHMARKS.md, "Query mapping").
pub const DEFAULT_UNKNOWN_THRESHOLD: f32 = 0.85;

#[derive(clap::Args, Debug, Clone)]
pub struct MapArgs {
    #[command(flatten)]
    pub files: crate::cli::saved_model_run::SavedModelRun,
    /// obs column of the query's batches (default: the model's batch key). Batches the model
    /// knows keep their parameters; the others get new ones.
    #[arg(long)]
    pub batch_key: Option<String>,
    /// Epochs of training the new batches' parameters on the query, every reference weight
    /// frozen (0: the new batches start from the mean of the reference batches and stay there).
    #[arg(long, default_value_t = 0)]
    pub epochs: usize,
    /// Where the new batches' parameters start: the mean of the reference batches' rows, or a
    /// copy of the reference batch under which the model explains the new batch best (highest
    /// ELBO).
    #[arg(long, value_enum, default_value_t = BatchInitArg::Mean)]
    pub batch_init: BatchInitArg,
    /// Seed of the query training (the inference pass draws as `embed` does).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Learning rate of the query training.
    #[arg(long, default_value_t = 1e-3)]
    pub lr: f32,
    /// Save the extended model (reference + query batches) here; `embed` then knows all of them.
    #[arg(long, value_name = "DIR2")]
    pub save_model: Option<PathBuf>,
    /// Genes of the model that the query lacks count as zeros (with a warning) instead of
    /// being an error.
    #[arg(long)]
    pub fill_missing_genes: bool,
    /// Sup: cells whose predicted type has a probability below this are labelled 'Unknown' in
    /// obs['scdreamer_label'] (the best guess stays in obs['scdreamer_label_best']).
    #[arg(long, default_value_t = DEFAULT_UNKNOWN_THRESHOLD)]
    pub unknown_threshold: f32,
    /// Sup: obs column of labels the query already has (e.g. an annotation to check):
    /// obs['scdreamer_label_disagrees'] marks the cells predicted as another type of the model
    /// with at least `--disagree-threshold` probability. Labels the model lacks never disagree.
    #[arg(long)]
    pub labels_key: Option<String>,
    /// Label value of `--labels-key` that marks an unlabelled cell.
    #[arg(long, default_value = "Unknown")]
    pub unlabeled_category: String,
    /// See `--labels-key`.
    #[arg(long, default_value_t = crate::model::sup_screen::DISAGREE_THRESHOLD)]
    pub disagree_threshold: f32,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum BatchInitArg {
    Mean,
    Closest,
}

pub fn run(a: &MapArgs) -> anyhow::Result<()> {
    if !(0.0..=1.0).contains(&a.unknown_threshold) {
        anyhow::bail!(
            "--unknown-threshold is {}: it is a probability, give a value in [0, 1]",
            a.unknown_threshold
        );
    }
    if !(0.0..=1.0).contains(&a.disagree_threshold) {
        anyhow::bail!(
            "--disagree-threshold must be a probability in [0, 1] (got {})",
            a.disagree_threshold
        );
    }
    if !(a.lr.is_finite() && a.lr > 0.0) {
        anyhow::bail!("--lr is {}: give a positive learning rate", a.lr);
    }
    let mut plan = a.files.output_plan();
    if let Some(dir) = &a.save_model {
        plan = plan.dir(
            "--save-model",
            dir,
            &[checkpoint::WEIGHTS, checkpoint::CONFIG],
        );
    }
    plan.check()?;
    h5ad::install_ctrlc_cleanup();
    let config = checkpoint::load_config(&a.files.model)?;
    crate::pipeline::limits::check_model_fits(
        &config.run.model,
        config.run.train.batch_size,
        &format!("the model in {}", a.files.model.display()),
    )?;
    let backend = Cpu::new();
    let (saved, model) = crate::saved_model::load_model(&a.files.model, &backend)?;
    let mut adata = a.files.read_input()?;
    let given = match &a.labels_key {
        Some(key) => Some(crate::map::labels::query_labels(
            &adata.obs,
            key,
            &a.unlabeled_category,
            &saved.label_categories,
        )?),
        None => None,
    };
    let opts = MapOptions {
        batch_key: a.batch_key.clone(),
        fill_missing_genes: a.fill_missing_genes,
        fit: QueryFit {
            epochs: a.epochs,
            batch_size: saved.run.train.batch_size,
            lr: a.lr,
            seed: a.seed,
        },
        init: match a.batch_init {
            BatchInitArg::Mean => InitChoice::Mean,
            BatchInitArg::Closest => InitChoice::Closest,
        },
    };
    let m = crate::map::map_query(&backend, &model, &saved, &mut adata, &opts)?;
    let n = m.setup.prep.n_cells();
    let var = adata.var.select(&m.setup.genes);
    let starts: Vec<String> = (m.report.new_batches.iter().zip(&m.report.init))
        .map(|(name, init)| match init {
            BatchInit::Mean => format!("{name} from the mean of the reference batches"),
            BatchInit::Copy(b) => format!(
                "{name} from a copy of {}",
                m.saved.batch_categories[*b as usize]
            ),
        })
        .collect();
    let uns = json!({
        "version": crate::VERSION,
        "model": a.files.model.display().to_string(),
        "model_scdreamer_version": saved.scdreamer_version,
        "batch_key": m.setup.batch_key,
        "batch_categories": m.saved.batch_categories,
        "new_batches": m.report.new_batches,
        "filled_genes": m.report.n_filled_genes,
        "batch_init": starts,
        "epochs": a.epochs,
        "seed": a.seed,
        "query_fit_losses": m.report.fit_losses,
        "labels_key": saved.labels_key,
        "label_categories": saved.label_categories,
        "unknown_threshold": a.unknown_threshold,
        "map_seconds": m.report.seconds,
    });
    let results = Results {
        obsm: vec![(
            "X_scdreamer".into(),
            Dense::new(n, m.trained.model.cfg.latent, m.latent.clone())?,
        )],
        layers: Vec::new(),
        obs: m
            .labels
            .as_ref()
            .map(|p| {
                let mut cols = crate::map::labels::obs_columns(
                    p,
                    &saved.label_categories,
                    a.unknown_threshold,
                );
                if let Some(g) = &given {
                    let flags = crate::model::sup_screen::disagrees(g, p, a.disagree_threshold);
                    cols.push((
                        "scdreamer_label_disagrees".into(),
                        crate::data::anndata::Column::Bool(flags),
                    ));
                }
                cols
            })
            .unwrap_or_default(),
        uns: vec![("scdreamer".into(), uns)],
    };
    let mut pending = vec![h5ad::write_h5ad_pending(
        &a.files.output,
        m.trained.counts(&m.setup.prep),
        &adata.obs,
        &var,
        &results,
    )?];
    if let Some(dir) = &a.save_model {
        pending.extend(checkpoint::save_pending(
            dir,
            &m.saved,
            &m.trained.model.params,
        )?);
    }
    commit_all(pending)?;
    eprintln!(
        "mapped {n} cells ({} new batch(es): {}) in {:.1} s; wrote {}{}",
        m.report.new_batches.len(),
        starts.join(", "),
        m.report.seconds,
        a.files.output.display(),
        a.save_model
            .as_ref()
            .map(|d| format!(" and the extended model to {}", d.display()))
            .unwrap_or_default()
    );
    Ok(())
}
