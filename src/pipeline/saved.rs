//! `save` and `load`: a model's weights and `config.json` (what it was trained on and how), in
//! the format `crate::io::checkpoint` reads and writes.

use std::path::Path;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::fit::Trained;
use super::limits::check_model_fits;
use super::setup::Setup;
use crate::data::labels::CellLabels;
use crate::files::cleanup::Pending;
use crate::io::checkpoint::{self, SavedConfig};
use crate::model::config::RunConfig;
use crate::model::dataset::TransformConstants;
use crate::model::scdreamer::Scdreamer;
use crate::ops::Backend;

/// What a saved model records about its training data.
pub struct SavedData<'a> {
    pub gene_names: &'a [String],
    /// var_names the training input repeated.
    pub repeated_genes: &'a [String],
    pub batch_key: &'a str,
    pub batch_names: &'a [String],
    pub labels_key: Option<&'a str>,
    pub labels: Option<&'a CellLabels>,
    pub constants: TransformConstants,
}

impl Setup {
    /// What a model trained on this data records about it.
    pub fn saved_data(&self) -> SavedData<'_> {
        SavedData {
            gene_names: &self.gene_names,
            repeated_genes: &self.repeated_gene_names,
            batch_key: &self.batch_key,
            batch_names: &self.prep.batch_names,
            labels_key: self.labels_key.as_deref(),
            labels: self.prep.labels.as_ref(),
            constants: self.prep.constants,
        }
    }
}

impl<B: Backend> Trained<B> {
    /// Writes weights and config for `dir` under temp names; commit them with
    /// [`crate::files::cleanup::commit_all`].
    pub fn save(&self, dir: &Path, setup: &Setup) -> anyhow::Result<Vec<Pending>> {
        save_model(dir, &self.model, &self.run, &setup.saved_data())
    }
}

/// Writes weights and config for `dir` under temp names (data in memory or streamed).
pub fn save_model<B: Backend>(
    dir: &Path,
    model: &Scdreamer<B>,
    run: &RunConfig,
    d: &SavedData,
) -> anyhow::Result<Vec<Pending>> {
    checkpoint::save_pending(dir, &saved_config(run, d), &model.params)
}

/// The `config.json` of a model trained with `run` on data `d`.
pub fn saved_config(run: &RunConfig, d: &SavedData) -> SavedConfig {
    SavedConfig {
        format_version: checkpoint::FORMAT_VERSION,
        scdreamer_version: crate::VERSION.to_string(),
        run: run.clone(),
        genes: d.gene_names.to_vec(),
        repeated_genes: d.repeated_genes.to_vec(),
        batch_key: d.batch_key.to_string(),
        batch_categories: d.batch_names.to_vec(),
        labels_key: d.labels_key.map(str::to_string),
        label_categories: d.labels.map(|l| l.categories.clone()).unwrap_or_default(),
        constants: d.constants.into(),
    }
}

/// The model saved in `dir`, on `backend`. Its size is checked against the memory available
/// before it is built (a tampered width must be an error, not an abort in the allocator), and
/// its weights against its config (see [`checkpoint::load_weights`]).
pub fn load<B: Backend>(dir: &Path, backend: &B) -> anyhow::Result<(SavedConfig, Scdreamer<B>)> {
    let config = checkpoint::load_config(dir)?;
    check_model_fits(
        &config.run.model,
        config.run.train.batch_size,
        &format!("the model in {}", dir.display()),
    )?;
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let mut model = Scdreamer::new(backend, config.run.model.clone(), &mut rng);
    checkpoint::load_weights(dir, &mut model.params)?;
    Ok((config, model))
}
