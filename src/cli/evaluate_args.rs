//! The flags of `scdreamer evaluate` and of `integrate --evaluate/--report`.

use std::path::PathBuf;

use clap::Args;

#[derive(Args, Debug, Clone)]
pub struct EvaluateArgs {
    /// Input .h5ad with raw counts in X (for the unintegrated PCA) and obs batch/label columns.
    #[arg(long, short = 'i')]
    pub input: PathBuf,
    /// Embedding to score (repeatable): an obsm KEY of the input, NAME=FILE.npy (rows in the
    /// input's cell order) or NAME=OTHER.h5ad:KEY (rows matched by cell name).
    #[arg(long = "embedding", short = 'e', required = true, value_name = "SPEC")]
    pub embeddings: Vec<String>,
    /// obs column of batches.
    #[arg(long, default_value = "batch")]
    pub batch_key: String,
    /// obs column of cell-type labels.
    #[arg(long, default_value = "cell_type")]
    pub label_key: String,
    /// Write the table as CSV (one row per embedding).
    #[arg(long, short = 'o')]
    pub output: Option<PathBuf>,
    #[command(flatten)]
    pub pictures: PictureArgs,
    /// Only the pictures (--report/--figures), no metrics.
    #[arg(long)]
    pub no_metrics: bool,
    /// Seed of the KMeans start (drawn as scib-metrics' JAX KMeans(seed=0) draws it, so the
    /// default reproduces its clusters) and of the UMAP layouts.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// CPU threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// No progress lines.
    #[arg(long)]
    pub quiet: bool,
}

/// Report and figure outputs, shared by `evaluate` and `integrate`.
#[derive(Args, Debug, Clone, Default)]
pub struct PictureArgs {
    /// Write one self-contained HTML report (UMAPs by batch and label, the metrics table,
    /// training curves of scdreamer outputs; images inlined, opens offline).
    #[arg(long, value_name = "FILE.html")]
    pub report: Option<PathBuf>,
    /// Write the UMAP pictures as PNG files (and the layouts as .npy) into DIR.
    #[arg(long, value_name = "DIR")]
    pub figures: Option<PathBuf>,
}

/// `integrate --evaluate` / `--report`: score and draw the embedding just written.
#[derive(Args, Debug, Clone, Default)]
pub struct IntegrateEvaluateArgs {
    /// After training, score obsm['X_scdreamer'] with the scib metrics (needs labels:
    /// --label-key, or --labels-key).
    #[arg(long)]
    pub evaluate: bool,
    /// obs column of cell-type labels for --evaluate / --report (default: --labels-key, else
    /// `cell_type`).
    #[arg(long)]
    pub label_key: Option<String>,
    /// Metrics CSV of --evaluate.
    #[arg(long, value_name = "FILE.csv")]
    pub metrics_output: Option<PathBuf>,
    #[command(flatten)]
    pub pictures: PictureArgs,
}
