//! `uns["scdreamer"]` of an integration: what ran, with which settings, on which device. The
//! CLI writes it into its output file and the Python module into `adata.uns`, from this one
//! function, so the two records hold the same keys and values.

use serde_json::{Value, json};

use crate::model::config::RunConfig;

/// The facts of one `integrate` run.
pub struct RunRecord<'a> {
    /// The input file, or what the Python module was given (e.g. `AnnData (in memory)`).
    pub input: &'a str,
    pub preset: &'a str,
    pub batch_key: &'a str,
    pub batch_categories: &'a [String],
    /// A batch name, or `all`.
    pub transform_batch: &'a str,
    pub run: &'a RunConfig,
    /// The backend that trained: "cpu" or "cuda".
    pub device: &'a str,
    pub threads: usize,
    pub seed: u64,
    pub train_seconds: f64,
    pub total_seconds: f64,
    /// Where the per-epoch log is: the CLI's `.log.csv`, or Python's `Model.history`.
    pub training_log: &'a str,
    pub labels_key: Option<&'a str>,
    pub unlabeled_category: &'a str,
    pub label_categories: Option<&'a [String]>,
    /// `--backed`: the cells per chunk.
    pub backed_chunk_cells: Option<usize>,
}

impl RunRecord<'_> {
    /// The record as JSON (nulls are left out of files).
    pub fn to_json(&self) -> anyhow::Result<Value> {
        Ok(json!({
            "version": crate::VERSION,
            "preset": self.preset,
            "input": self.input,
            "batch_key": self.batch_key,
            "batch_categories": self.batch_categories,
            "transform_batch": self.transform_batch,
            "normalized_layer": "decoder rho of the posterior mean, scaled to 10,000 counts per cell; averaged over batches when transform_batch is 'all'",
            "embedding": format!("{:?}", self.run.model.embed).to_lowercase(),
            "device": self.device,
            "threads": self.threads,
            "seed": self.seed,
            "train_seconds": self.train_seconds,
            "total_seconds": self.total_seconds,
            "model": serde_json::to_value(&self.run.model)?,
            "train": serde_json::to_value(&self.run.train)?,
            "training_log": self.training_log,
            "labels_key": self.labels_key,
            "unlabeled_category": self.labels_key.map(|_| self.unlabeled_category),
            "label_categories": self.label_categories,
            "backed_chunk_cells": self.backed_chunk_cells,
        }))
    }
}
