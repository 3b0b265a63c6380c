//! The scib-metrics 0.5 Benchmarker table of one or more embeddings, computed natively: the
//! cell groups, the scores, and the table as text and CSV.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use rayon::prelude::*;

use crate::cli::embedding_input::Embedding;
use crate::data::anndata::AnnData;
use crate::data::hvg::{BatchedCounts, seurat_v3};
use crate::data::validate::{batch_codes, column_levels};
use crate::metrics::jax_random::JaxKMeansSampler;
use crate::metrics::pcr::{pcr, unintegrated_pca};
use crate::metrics::scib::{Groups, METRIC_NAMES, ScibScores, score_embedding_without_pcr_pre};

/// Everything scored in one run.
pub struct Evaluation {
    pub names: Vec<String>,
    pub scores: Vec<ScibScores>,
}

/// Progress lines on stderr with the elapsed time.
pub struct Progress {
    start: Instant,
    quiet: bool,
}

impl Progress {
    pub fn new(quiet: bool) -> Self {
        Progress {
            start: Instant::now(),
            quiet,
        }
    }
    pub fn say(&self, msg: &str) {
        if !self.quiet {
            eprintln!("[{:6.1} s] {msg}", self.start.elapsed().as_secs_f64());
        }
    }
}

/// One evaluation: the data and the obs keys.
pub struct Job<'a> {
    pub adata: &'a AnnData,
    pub input: &'a Path,
    pub batch_key: &'a str,
    pub label_key: &'a str,
    pub seed: u64,
}

/// Batch and label codes of the cells and the names behind them.
pub struct CellGroups {
    pub batches: Vec<u32>,
    pub batch_names: Vec<String>,
    pub labels: Vec<u32>,
    pub label_names: Vec<String>,
}

impl CellGroups {
    fn codes(self) -> (Vec<u32>, usize, Vec<u32>, usize) {
        let (nb, nl) = (self.batch_names.len(), self.label_names.len());
        (self.batches, nb, self.labels, nl)
    }
}

/// Batch and label codes of the cells, with the errors a user can act on.
pub fn groups_of(
    adata: &AnnData,
    input: &Path,
    batch_key: &str,
    label_key: &str,
) -> Result<CellGroups> {
    let shown = input.display();
    let (batches, batch_names) =
        batch_codes(&adata.obs, batch_key, true).with_context(|| shown.to_string())?;
    if batch_names.len() < 2 {
        bail!(
            "{shown}: obs['{batch_key}'] has a single batch ('{}'): batch-correction metrics need \
             at least two; choose another --batch-key",
            batch_names[0]
        );
    }
    let col = adata
        .obs
        .require(label_key, "obs")
        .map_err(|e| anyhow::anyhow!("{shown}: label {e} (choose one with --label-key)"))?;
    let (levels, names) = column_levels(col);
    if let Some(i) = levels.iter().position(|l| l.is_none()) {
        bail!(
            "{shown}: obs['{label_key}'] has no label for cell '{}' (row {i}); scib metrics need a \
             label for every cell",
            adata.obs.index[i]
        );
    }
    if names.len() < 2 {
        bail!(
            "{shown}: obs['{label_key}'] has a single category ('{}'): label metrics (silhouette, \
             NMI/ARI, cLISI) need at least two cell types; choose another --label-key",
            names.first().map_or("", |s| s.as_str())
        );
    }
    let labels = levels.into_iter().map(|l| l.unwrap_or(0)).collect();
    Ok(CellGroups {
        batches,
        batch_names,
        labels,
        label_names: names,
    })
}

/// Score every embedding (the unintegrated PCA is computed once for PCR comparison).
pub fn evaluate(
    adata: &AnnData,
    input: &Path,
    embeddings: &[Embedding],
    batch_key: &str,
    label_key: &str,
    seed: u64,
    progress: &Progress,
) -> Result<Evaluation> {
    let (batches, n_batches, labels, n_labels) =
        groups_of(adata, input, batch_key, label_key)?.codes();
    let genes: Vec<usize> = if adata.n_vars() > 2000 {
        progress.say("unintegrated PCA: 2,000 seurat_v3 genes");
        seurat_v3(
            BatchedCounts::new(&adata.x, Some(&batches), n_batches),
            2000,
        )?
        .selected
    } else {
        (0..adata.n_vars()).collect()
    };
    let g = Groups {
        batches: &batches,
        n_batches,
        labels: &labels,
        n_labels,
    };
    // The PCA and the embeddings are independent until the PCR comparison: computing them
    // side by side keeps both cores busy through each one's serial steps.
    let (pcr_pre, pending) = rayon::join(
        || {
            progress.say(&format!(
                "unintegrated PCA of {} cells x {} genes (50 PCs)",
                adata.n_obs(),
                genes.len()
            ));
            let pre = unintegrated_pca(&adata.x, &genes, 50);
            progress.say("unintegrated PCA done");
            pcr(&pre, pre.len() / adata.n_obs(), &batches, n_batches)
        },
        || {
            embeddings
                .par_iter()
                .enumerate()
                .map(|(k, e)| {
                    let tag = format!("[{}/{}] {}", k + 1, embeddings.len(), e.name);
                    let mut sampler = JaxKMeansSampler::new(seed as u32);
                    let s = score_embedding_without_pcr_pre(
                        &e.x,
                        e.d,
                        &g,
                        &mut sampler,
                        &mut |stage| progress.say(&format!("{tag}: {stage}")),
                    );
                    progress.say(&format!("{tag}: done"));
                    s
                })
                .collect::<Vec<_>>()
        },
    );
    let scores: Vec<ScibScores> = pending.iter().map(|p| p.finish(pcr_pre)).collect();
    for (e, s) in embeddings.iter().zip(&scores) {
        progress.say(&format!("{}: Total {:.4}", e.name, s.get("Total")));
    }
    Ok(Evaluation {
        names: embeddings.iter().map(|e| e.name.clone()).collect(),
        scores,
    })
}

/// The table as scib prints it: one row per embedding.
pub fn table_text(e: &Evaluation) -> String {
    let w = e.names.iter().map(|n| n.len()).max().unwrap_or(9).max(9);
    let mut o = format!("{:w$}", "Embedding");
    for m in METRIC_NAMES {
        let _ = write!(o, "  {m:>8}");
    }
    o.push('\n');
    for (name, s) in e.names.iter().zip(&e.scores) {
        let _ = write!(o, "{name:w$}");
        for (m, v) in METRIC_NAMES.iter().zip(&s.values) {
            let _ = write!(o, "  {:>w2$.4}", v, w2 = m.len().max(8));
        }
        o.push('\n');
    }
    o
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

pub fn csv_text(e: &Evaluation) -> String {
    let mut o = String::from("Embedding");
    for m in METRIC_NAMES {
        o.push(',');
        o.push_str(m);
    }
    o.push('\n');
    for (name, s) in e.names.iter().zip(&e.scores) {
        o.push_str(&csv_field(name));
        for v in &s.values {
            let _ = write!(o, ",{v}");
        }
        o.push('\n');
    }
    o
}

/// Write beside the target and rename, so a failed run leaves no half-written file.
pub fn write_atomic(path: &Path, text: &str) -> Result<()> {
    let tmp = path.with_extension(format!(
        "{}.tmp{}",
        path.extension().and_then(|e| e.to_str()).unwrap_or(""),
        std::process::id()
    ));
    std::fs::write(&tmp, text).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}
