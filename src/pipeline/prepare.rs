//! From counts in memory (an [`AnnData`] read from a file by the CLI, or handed over by the
//! Python module) to a model ready to train: the batch and label registry, the empty-cell
//! report, the genes, the configuration and the [`Setup`]. `scdreamer integrate` and
//! `scdreamer.integrate` run these same steps, so they train the same model.

use anyhow::Context;

use super::setup::{GeneSelection, Setup, select_genes};
use crate::data::AnnData;
use crate::data::labels::CellLabels;
use crate::data::validate::{self, DropReport};
use crate::model::config::{ModelConfig, TrainConfig};
use crate::model::hyper::HyperParams;

/// What to train on and how.
pub struct Request<'a> {
    /// Names the data in messages (the input file, or `adata.X`).
    pub source: &'a str,
    pub batch_key: &'a str,
    pub allow_single_batch: bool,
    /// scDREAMER-Sup: the obs column of cell-type labels.
    pub labels_key: Option<&'a str>,
    pub unlabeled_category: &'a str,
    /// A batch name, or `all`.
    pub transform_batch: &'a str,
    pub genes: GeneSelection,
    pub hyper: &'a HyperParams,
    /// Training runs on a GPU: the default preset's minibatch grows with the data
    /// (`HyperParams::on_device`) unless a batch size was given.
    pub gpu: bool,
}

/// Everything decided before training: the data set up in memory ([`Setup`]), streamed
/// (`super::Streamed`) or as a caller holds it, and the configuration.
pub struct Prepared<D = Setup> {
    pub data: D,
    pub model_cfg: ModelConfig,
    pub train_cfg: TrainConfig,
    /// `transform_batch` as a batch code (None for `all`).
    pub as_batch: Option<u32>,
    /// Cells and genes without counts (kept, reported).
    pub report: DropReport,
    /// Sup: warnings about the labels (e.g. a type with fewer than 3 cells).
    pub label_warnings: Vec<String>,
}

impl<D> Prepared<D> {
    pub fn new(
        data: D,
        (model_cfg, train_cfg): (ModelConfig, TrainConfig),
        as_batch: Option<u32>,
        report: DropReport,
        label_warnings: Vec<String>,
    ) -> Self {
        Prepared {
            data,
            model_cfg,
            train_cfg,
            as_batch,
            report,
            label_warnings,
        }
    }

    /// The same decisions about the data held another way.
    pub fn map_data<E>(self, f: impl FnOnce(D) -> E) -> Prepared<E> {
        let configs = (self.model_cfg, self.train_cfg);
        Prepared::new(
            f(self.data),
            configs,
            self.as_batch,
            self.report,
            self.label_warnings,
        )
    }
}

/// scDREAMER-Sup's labels (with their obs key) and the warnings about them.
pub type LabelsAndWarnings = (Option<(String, CellLabels)>, Vec<String>);

/// scDREAMER-Sup's labels from `obs[key]`, with warnings.
pub fn labels_of(
    obs: &crate::data::Frame,
    key: Option<&str>,
    unlabeled: &str,
) -> anyhow::Result<LabelsAndWarnings> {
    match key {
        Some(key) => {
            let (labels, warnings) = crate::data::labels::cell_labels(obs, key, unlabeled)?;
            Ok((Some((key.to_string(), labels)), warnings))
        }
        None => Ok((None, Vec::new())),
    }
}

/// `transform_batch` as a batch code (None for `all`); an unknown batch name is an error.
pub fn transform_batch_code(
    name: &str,
    batch_key: &str,
    batch_names: &[String],
) -> anyhow::Result<Option<u32>> {
    Ok(match name {
        "all" => None,
        b => Some(
            batch_names
                .iter()
                .position(|n| n == b)
                .map(|i| i as u32)
                .with_context(|| {
                    format!(
                        "--transform-batch '{b}' is not a batch of '{batch_key}'; batches: {}",
                        batch_names.join(", ")
                    )
                })?,
        ),
    })
}

/// Validates the registry, selects genes and builds the [`Setup`]. Takes `adata.x` (left
/// empty): the full-gene matrix is not needed after gene selection, and when every gene is
/// kept it moves instead of being copied (atlas-scale memory). obs and var stay.
pub fn prepare(adata: &mut AnnData, req: &Request) -> anyhow::Result<Prepared> {
    let (batch, batch_names) =
        validate::batch_codes(&adata.obs, req.batch_key, req.allow_single_batch)?;
    let (labels, label_warnings) = labels_of(&adata.obs, req.labels_key, req.unlabeled_category)?;
    let as_batch = transform_batch_code(req.transform_batch, req.batch_key, &batch_names)?;
    let report = DropReport {
        cells_dropped: adata.x.row_sums().iter().filter(|&&s| s == 0.0).count(),
        genes_dropped: adata.x.col_sums().iter().filter(|&&s| s == 0.0).count(),
    };
    if report.cells_dropped == adata.n_obs() || report.genes_dropped == adata.n_vars() {
        anyhow::bail!(
            "{} has no non-zero counts: nothing to integrate",
            req.source
        );
    }
    let genes = select_genes(adata, &batch, batch_names.len(), &req.genes)?;
    let n_labels = labels.as_ref().map_or(0, |(_, l)| l.categories.len());
    let (model_cfg, train_cfg) = req
        .hyper
        .clone()
        .on_device(req.gpu, adata.n_obs())
        .configs(genes.len(), batch_names.len(), n_labels, adata.n_obs())?;
    let mut setup = Setup::new_taking_x(
        adata,
        req.batch_key,
        batch,
        batch_names,
        genes,
        &model_cfg,
        None,
    )?;
    if let Some((key, l)) = labels {
        setup = setup.with_labels(&key, l);
    }
    let configs = (model_cfg, train_cfg);
    Ok(Prepared::new(
        setup,
        configs,
        as_batch,
        report,
        label_warnings,
    ))
}
