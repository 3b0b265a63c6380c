//! The results of `integrate`, written together: the output `.h5ad` (X given block by block,
//! the embedding, the normalized layer, Sup's labels, `uns["scdreamer"]`), the training log and
//! the saved model. Every file goes under a temporary name first and all are renamed together,
//! so a full disk or an interrupt leaves none of them: never an `.h5ad` without its log, or a
//! model without its config. Also the output of `embed` (new cells through a saved model).

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde_json::json;

use crate::data::Frame;
use crate::data::anndata::Column;
use crate::data::dense::Dense;
use crate::data::h5ad::{self, CsrBlocks, Results};
use crate::data::labels::CellLabels;
use crate::files::cleanup::{Pending, commit_all};
use crate::io::checkpoint::SavedConfig;
use crate::io::record::RunRecord;
use crate::model::config::{ModelConfig, RunConfig};
use crate::model::sup::LabelPrediction;
use crate::train::EpochLog;

/// Saves the trained model in a directory (under temporary names).
pub type SaveModel<'a> = Box<dyn FnOnce(&Path) -> anyhow::Result<Vec<Pending>> + 'a>;

/// `<output>.log.csv` beside the output (`out.h5ad` -> `out.log.csv`).
pub fn log_path(output: &Path) -> PathBuf {
    output.with_extension("log.csv")
}

/// Everything the results hold, from data in memory or streamed.
pub struct Outcome<'a> {
    pub input: &'a Path,
    pub output: &'a Path,
    pub t_start: Instant,
    pub preset: String,
    pub batch_key: &'a str,
    /// A batch name, or `all`.
    pub transform_batch: &'a str,
    pub seed: u64,
    pub labels_key: Option<&'a str>,
    pub unlabeled_category: &'a str,
    pub n_cells: usize,
    pub n_genes: usize,
    pub batch_names: &'a [String],
    pub labels: Option<&'a CellLabels>,
    pub latent: Vec<f32>,
    pub normalized: Option<Vec<f32>>,
    pub predicted: Option<LabelPrediction>,
    /// Sup: the probability above which a prediction contradicting the given label is flagged
    /// in `obs['scdreamer_label_disagrees']`.
    pub disagree_threshold: f32,
    pub model: &'a ModelConfig,
    pub run: &'a RunConfig,
    pub log: &'a [EpochLog],
    pub train_seconds: f64,
    /// `--backed`: the cells per chunk.
    pub backed_chunk_cells: Option<usize>,
    /// The backend that trained: "cpu" or "cuda".
    pub device: &'static str,
    /// Where to save the model (`--save-model`), and how.
    pub save_model: Option<&'a Path>,
    pub save: SaveModel<'a>,
}

/// What was written, for the closing messages.
pub struct Written {
    pub log_path: PathBuf,
    /// Sup: how many of the given labels the prediction agrees with, of how many.
    pub label_agreement: Option<(usize, usize)>,
}

/// Checks the embedding and writes the output file (`x`: the raw counts of the genes used,
/// block by block), the training log and the model, all or none.
pub fn write_results(
    o: Outcome,
    x: &dyn CsrBlocks,
    obs: &Frame,
    var: &Frame,
) -> anyhow::Result<Written> {
    if o.latent.iter().any(|v| !v.is_finite()) {
        anyhow::bail!("the embedding has non-finite values; nothing was written");
    }
    let n = o.n_cells;
    let label_categories = o.labels.map(|l| l.categories.clone());
    let log_path = log_path(o.output);
    let log_name = log_path.display().to_string();
    let uns = RunRecord {
        input: &o.input.display().to_string(),
        preset: &o.preset,
        batch_key: o.batch_key,
        batch_categories: o.batch_names,
        transform_batch: o.transform_batch,
        run: o.run,
        device: o.device,
        threads: rayon::current_num_threads(),
        seed: o.seed,
        train_seconds: o.train_seconds,
        total_seconds: o.t_start.elapsed().as_secs_f64(),
        training_log: &log_name,
        labels_key: o.labels_key,
        unlabeled_category: o.unlabeled_category,
        label_categories: label_categories.as_deref(),
        backed_chunk_cells: o.backed_chunk_cells,
    }
    .to_json()?;
    let results = Results {
        obsm: vec![(
            "X_scdreamer".into(),
            Dense::new(n, o.model.latent, o.latent)?,
        )],
        layers: match o.normalized {
            Some(v) => vec![("scdreamer_normalized".into(), Dense::new(n, o.n_genes, v)?)],
            None => Vec::new(),
        },
        obs: match (&o.predicted, o.labels) {
            (Some(p), Some(l)) => {
                let mut cols = p.obs_columns(&l.categories);
                let flags = crate::model::sup_screen::disagrees(l, p, o.disagree_threshold);
                cols.push(("scdreamer_label_disagrees".into(), Column::Bool(flags)));
                cols
            }
            _ => Vec::new(),
        },
        uns: vec![("scdreamer".into(), uns)],
    };
    let mut pending = vec![h5ad::write_h5ad_pending(o.output, x, obs, var, &results)?];
    pending.extend(crate::train::log::write_log_pending(o.log, &log_path)?);
    if let Some(dir) = o.save_model {
        pending.extend((o.save)(dir)?);
    }
    commit_all(pending)?;
    let label_agreement = match (&o.predicted, o.labels) {
        (Some(p), Some(l)) => {
            let labelled: Vec<(u32, u32)> = (l.codes.iter().zip(&p.codes))
                .filter_map(|(t, &p)| t.map(|t| (t, p)))
                .collect();
            let hits = labelled.iter().filter(|(t, p)| t == p).count();
            Some((hits, labelled.len()))
        }
        _ => None,
    };
    Ok(Written {
        log_path,
        label_agreement,
    })
}

/// What `embed` computed with the model saved in `model_dir`.
pub struct Embedded<'a> {
    pub output: &'a Path,
    pub model_dir: &'a Path,
    pub saved: &'a SavedConfig,
    /// The backend that ran the model: "cpu" or "cuda".
    pub device: &'static str,
    /// `n_cells x latent`, row-major.
    pub latent: Vec<f32>,
    pub predicted: Option<LabelPrediction>,
}

/// Checks the embedding and writes `embed`'s output (`x`: the raw counts of the model's genes).
pub fn write_embedding(
    e: Embedded,
    x: &dyn CsrBlocks,
    obs: &Frame,
    var: &Frame,
) -> anyhow::Result<()> {
    if e.latent.iter().any(|v| !v.is_finite()) {
        anyhow::bail!("the embedding has non-finite values; nothing was written");
    }
    let saved = e.saved;
    let uns = json!({
        "version": crate::VERSION,
        "model": e.model_dir.display().to_string(),
        "model_scdreamer_version": saved.scdreamer_version,
        "batch_key": saved.batch_key,
        "batch_categories": saved.batch_categories,
        "labels_key": saved.labels_key,
        "label_categories": saved.label_categories,
        "device": e.device,
    });
    let results = Results {
        obsm: vec![(
            "X_scdreamer".into(),
            Dense::new(x.n_rows(), saved.run.model.latent, e.latent)?,
        )],
        layers: Vec::new(),
        obs: e
            .predicted
            .as_ref()
            .map(|p| p.obs_columns(&saved.label_categories))
            .unwrap_or_default(),
        uns: vec![("scdreamer".into(), uns)],
    };
    h5ad::write_h5ad_blocks(e.output, x, obs, var, &results)
}
