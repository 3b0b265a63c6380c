//! A saved model applied to data: load its weights and configuration, match the data's genes
//! (by name, any order) and batches (by category name) against the model's. `scdreamer embed`
//! and the Python module's `Model.load` share these steps.

use std::collections::HashMap;
use std::path::Path;

use anyhow::Context;

use crate::data::AnnData;
use crate::io::checkpoint::SavedConfig;
use crate::model::scdreamer::Scdreamer;
use crate::ops::Backend;
use crate::pipeline::Setup;

/// The index of each of `var_names`, and the `wanted` genes missing from them (in order).
pub fn gene_positions<'w, 'v>(
    wanted: &'w [String],
    var_names: &'v [String],
) -> (HashMap<&'v str, usize>, Vec<&'w String>) {
    let pos: HashMap<&str, usize> = var_names
        .iter()
        .enumerate()
        .map(|(i, n)| (n.as_str(), i))
        .collect();
    let missing = wanted
        .iter()
        .filter(|g| !pos.contains_key(g.as_str()))
        .collect();
    (pos, missing)
}

/// Indices of `wanted` genes in `var_names`, or an error naming the missing ones.
pub fn match_genes(wanted: &[String], var_names: &[String]) -> anyhow::Result<Vec<usize>> {
    let (pos, missing) = gene_positions(wanted, var_names);
    if !missing.is_empty() {
        anyhow::bail!(
            "the input lacks {} of the model's {} genes (e.g. {}): give data with the same var_names",
            missing.len(),
            wanted.len(),
            missing
                .iter()
                .take(5)
                .map(|g| g.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(wanted.iter().map(|g| pos[g.as_str()]).collect())
}

/// Batch code of every cell against the model's categories.
pub fn match_batches(
    adata: &AnnData,
    key: &str,
    categories: &[String],
) -> anyhow::Result<Vec<u32>> {
    let col = adata.obs.require(key, "obs")?;
    let pos: HashMap<&str, u32> = categories
        .iter()
        .enumerate()
        .map(|(i, n)| (n.as_str(), i as u32))
        .collect();
    (0..adata.n_obs())
        .map(|i| {
            let v = col.label(i).with_context(|| {
                format!("cell '{}' has no value in obs['{key}']", adata.obs.index[i])
            })?;
            pos.get(v.as_str()).copied().with_context(|| {
                format!(
                    "cell '{}' is in batch '{v}', which the model was not trained on; known batches: {}",
                    adata.obs.index[i],
                    categories.join(", ")
                )
            })
        })
        .collect()
}

/// Refuses a model gene whose name the input repeats while the training data did not: after
/// making the names unique the first column would be taken, which may be the wrong one.
pub fn check_ambiguous(
    model_genes: &[String],
    trained_repeated: &[String],
    input_repeated: &[String],
) -> anyhow::Result<()> {
    let ambiguous: Vec<&str> = model_genes
        .iter()
        .filter(|g| input_repeated.contains(g) && !trained_repeated.contains(g))
        .map(String::as_str)
        .collect();
    if let Some(first) = ambiguous.first() {
        anyhow::bail!(
            "{} of the model's genes occur more than once in the input's var_names (e.g. '{first}'), \
             but once in the training data: which column is the model's gene is ambiguous; \
             drop or rename the extra columns",
            ambiguous.len()
        );
    }
    Ok(())
}

/// Loads the model saved in `dir` onto `backend` (see [`crate::pipeline::load`]).
pub fn load_model<B: Backend>(
    dir: &Path,
    backend: &B,
) -> anyhow::Result<(SavedConfig, Scdreamer<B>)> {
    crate::pipeline::load(dir, backend)
}

/// The model's genes and batches of `adata`, with the training data's transform constants.
/// Takes `adata.x` (see [`Setup::new_taking_x`]); `source` names the data in messages.
pub fn setup_for(adata: &mut AnnData, saved: &SavedConfig, source: &str) -> anyhow::Result<Setup> {
    let genes = match_genes(&saved.genes, &adata.var.index)?;
    let batch = match_batches(adata, &saved.batch_key, &saved.batch_categories)?;
    let n = adata.n_obs();
    Setup::new_taking_x(
        adata,
        &saved.batch_key,
        batch,
        saved.batch_categories.clone(),
        genes,
        &saved.run.model,
        Some(saved.constants.into()),
    )
    .or_else(|e| {
        if n > 0 {
            Err(e)
        } else {
            anyhow::bail!("no cells in {source}")
        }
    })
}
