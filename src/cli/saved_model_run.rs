//! The flags shared by `embed` and `map` (a saved model, the cells it reads, where its results
//! go), with the two steps both take on them: checking the files and reading the input.

use std::path::PathBuf;

use clap::Args;

use crate::data::AnnData;
use crate::data::h5ad::{self, ReadOptions};
use crate::files::outputs::OutputPlan;
use crate::io::checkpoint;

/// A saved model, the cells it reads and where its results go: shared by `embed` and `map`.
#[derive(Args, Debug, Clone)]
pub struct SavedModelRun {
    /// Directory written by `integrate --save-model` (for `map`, the reference).
    #[arg(long)]
    pub model: PathBuf,
    /// Input .h5ad with raw counts and the batch column (for `map`, the query: new batches
    /// welcome).
    #[arg(long, short = 'i')]
    pub input: PathBuf,
    /// Output .h5ad: the cells with obsm['X_scdreamer'] (for `map`, and the labels of a Sup
    /// model).
    #[arg(long, short = 'o')]
    pub output: PathBuf,
    /// Read counts from `layers/NAME` instead of X.
    #[arg(long, value_name = "NAME")]
    pub layer: Option<String>,
    /// Accept non-integer values in X.
    #[arg(long)]
    pub allow_non_integer: bool,
    /// Do not draw progress bars.
    #[arg(long)]
    pub quiet: bool,
}

impl SavedModelRun {
    /// The files a run reads (the input, the model's two files) and the output it writes.
    pub fn output_plan(&self) -> OutputPlan {
        OutputPlan::new()
            .file("--output", &self.output)
            .input("--input", &self.input)
            .input("--model file", &self.model.join(checkpoint::CONFIG))
            .input("--model file", &self.model.join(checkpoint::WEIGHTS))
    }

    /// Reads `--input` as the flags say.
    pub fn read_input(&self) -> anyhow::Result<AnnData> {
        h5ad::read_h5ad(
            &self.input,
            &ReadOptions {
                layer: self.layer.clone(),
                allow_non_integer: self.allow_non_integer,
                progress: !self.quiet,
            },
        )
    }
}
