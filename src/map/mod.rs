//! Query mapping (scArches-style): a trained model embeds a new dataset whose batches it never
//! saw. New batches get parameters by architecture surgery ([`surgery`]), optionally trained on
//! the query alone with every reference weight frozen ([`fit`]); a scDREAMER-Sup model
//! transfers its labels with an `Unknown` answer below a confidence threshold ([`labels`]).

pub mod closest;
pub mod fit;
pub mod labels;
pub mod query;
pub mod surgery;

use std::time::Instant;

use crate::data::AnnData;
use crate::io::checkpoint::SavedConfig;
use crate::model::dataset::DeviceData;
use crate::model::scdreamer::Scdreamer;
use crate::model::sup::LabelPrediction;
use crate::ops::Backend;
use crate::pipeline::{Setup, Trained};

pub use fit::QueryFit;
pub use surgery::BatchInit;

/// How a query is mapped.
#[derive(Clone, Debug)]
pub struct MapOptions {
    /// obs column of the query's batches (None: the model's batch key).
    pub batch_key: Option<String>,
    /// Genes the query lacks count as zeros instead of being an error.
    pub fill_missing_genes: bool,
    /// Training of the new batches' parameters (0 epochs: the initial rows are used as they are).
    pub fit: QueryFit,
    /// Where the new batches' rows start.
    pub init: InitChoice,
}

/// How the new batches' rows are initialised.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InitChoice {
    /// The mean of the reference batches' rows.
    Mean,
    /// A copy of the rows of the reference batch that explains the new batch best.
    Closest,
}

/// A mapped query: the extended model, the query's data on its backend and the results.
pub struct Mapped<B: Backend> {
    pub trained: Trained<B>,
    pub setup: Setup,
    /// The extended model's `config.json` (reference + query batches).
    pub saved: SavedConfig,
    /// Embedding, cells x latent, row-major.
    pub latent: Vec<f32>,
    /// Sup: the predicted type of every query cell.
    pub labels: Option<LabelPrediction>,
    pub report: MapReport,
}

/// What the mapping did (the output records it).
pub struct MapReport {
    pub new_batches: Vec<String>,
    /// Where each new batch started.
    pub init: Vec<BatchInit>,
    pub n_filled_genes: usize,
    /// Mean loss of each query-training epoch.
    pub fit_losses: Vec<f64>,
    pub seconds: f64,
}

/// Maps `adata` (its X is taken) onto `model`, saved with `saved`; `model` itself is unchanged
/// (the extended copy is returned).
pub fn map_query<B: Backend>(
    backend: &B,
    model: &Scdreamer<B>,
    saved: &SavedConfig,
    adata: &mut AnnData,
    opts: &MapOptions,
) -> anyhow::Result<Mapped<B>> {
    let t0 = Instant::now();
    if adata.n_obs() == 0 {
        anyhow::bail!("the query has no cells: nothing to map");
    }
    let key = opts.batch_key.as_deref().unwrap_or(&saved.batch_key);
    crate::saved_model::check_ambiguous(
        &saved.genes,
        &saved.repeated_genes,
        &adata.var.repeated_names,
    )?;
    let batches = query::query_batches(adata, key, &saved.batch_categories)?;
    let (genes, n_filled_genes) = query::query_genes(adata, &saved.genes, opts.fill_missing_genes)?;
    if n_filled_genes > 0 {
        eprintln!(
            "warning: the query lacks {n_filled_genes} of the model's {} genes; they count as zeros",
            saved.genes.len()
        );
    }
    let new_batches = batches.new_names().to_vec();
    let n_ref = batches.n_reference;
    let mut cfg = model.cfg.clone();
    cfg.n_batches = batches.names.len();
    let mut setup = Setup::new_taking_x(
        adata,
        key,
        batches.codes.clone(),
        batches.names.clone(),
        genes,
        &cfg,
        Some(saved.constants.into()),
    )?;
    // Sup: the query's cells carry no label (the training loss masks them all out).
    if model.cfg.n_labels > 0 {
        setup.prep.labels = Some(crate::data::labels::CellLabels {
            codes: vec![None; setup.prep.n_cells()],
            categories: saved.label_categories.clone(),
        });
    }
    let data = DeviceData::upload_taking(backend, &mut setup.prep)?;
    let new_codes: Vec<u32> = (n_ref..batches.names.len()).map(|c| c as u32).collect();
    let init = match opts.init {
        InitChoice::Mean => vec![BatchInit::Mean; new_codes.len()],
        InitChoice::Closest => closest::closest_reference_batches(
            model,
            &data,
            &setup.prep,
            &setup.train_rows,
            &new_codes,
            opts.fit.seed,
        )?,
    };
    let mut model = surgery::extend(model, &init)?;
    let mut ext = saved.clone();
    ext.run.model = model.cfg.clone();
    ext.batch_categories = batches.names.clone();
    let rows: Vec<u32> = setup
        .train_rows
        .iter()
        .copied()
        .filter(|&r| setup.prep.batch[r as usize] as usize >= n_ref)
        .collect();
    let fit_losses = if opts.fit.epochs > 0 && !rows.is_empty() {
        fit::fit_new_batches(&mut model, &data, &setup.prep, &rows, n_ref, &opts.fit)?
    } else {
        Vec::new()
    };
    let trained = Trained {
        model,
        data,
        run: ext.run.clone(),
        log: Vec::new(),
        train_seconds: 0.0,
    };
    // The inference pass draws as `embed` does with the saved model, so both give the same
    // embedding (it differs only when the embedding is a sample, the authors' preset).
    let latent = trained.latent(&setup.prep, saved.run.train.seed);
    if latent.iter().any(|v| !v.is_finite()) {
        anyhow::bail!("the query's embedding has non-finite values; nothing was written");
    }
    let labels = trained.predict_labels(&setup.prep);
    Ok(Mapped {
        trained,
        setup,
        saved: ext,
        latent,
        labels,
        report: MapReport {
            new_batches,
            init,
            n_filled_genes,
            fit_losses,
            seconds: t0.elapsed().as_secs_f64(),
        },
    })
}
