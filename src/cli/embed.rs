//! `scdreamer embed --model DIR --input new.h5ad --output out.h5ad`: a saved model embeds new
//! cells of known batches without retraining. Genes are matched by name (any order; missing ones
//! are an error) and batches by category name (an unknown batch is an error).

use std::collections::HashMap;

use anyhow::Context;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde_json::json;

use crate::backend::cpu::Cpu;
use crate::cli::args::EmbedArgs;
use crate::data::AnnData;
use crate::data::dense::Dense;
use crate::data::h5ad::{self, ReadOptions, Results};
use crate::io::checkpoint;
use crate::io::outputs::OutputPlan;
use crate::model::scdreamer::Scdreamer;
use crate::pipeline::{Setup, Trained};

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

/// Indices of `wanted` genes in `var_names`, or an error naming the missing ones.
pub fn match_genes(wanted: &[String], var_names: &[String]) -> anyhow::Result<Vec<usize>> {
    let pos: HashMap<&str, usize> = var_names
        .iter()
        .enumerate()
        .map(|(i, n)| (n.as_str(), i))
        .collect();
    let missing: Vec<&str> = wanted
        .iter()
        .filter(|g| !pos.contains_key(g.as_str()))
        .map(|g| g.as_str())
        .collect();
    if !missing.is_empty() {
        anyhow::bail!(
            "the input lacks {} of the model's {} genes (e.g. {}): give data with the same var_names",
            missing.len(),
            wanted.len(),
            missing
                .iter()
                .take(5)
                .cloned()
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

pub fn run(a: &EmbedArgs) -> anyhow::Result<()> {
    let saved = checkpoint::load_config(&a.model)?;
    let output = a.output.clone();
    OutputPlan::new()
        .file("--output", &output)
        .input("--input", &a.input)
        .input("--model file", &a.model.join(checkpoint::CONFIG))
        .input("--model file", &a.model.join(checkpoint::WEIGHTS))
        .check()?;
    h5ad::install_ctrlc_cleanup();
    let cfg = saved.run.model.clone();
    // The weights are checked against config.json before the (possibly large) input is read.
    crate::cli::limits::check_model_fits(
        &cfg,
        saved.run.train.batch_size,
        &format!("the model in {}", a.model.display()),
    )?;
    let backend = Cpu::new();
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let mut model = Scdreamer::new(&backend, cfg.clone(), &mut rng);
    checkpoint::load_weights(&a.model, &mut model.params)?;
    let mut adata = h5ad::read_h5ad(
        &a.input,
        &ReadOptions {
            layer: a.layer.clone(),
            allow_non_integer: a.allow_non_integer,
            progress: !a.quiet,
        },
    )?;
    if adata.n_obs() == 0 {
        anyhow::bail!("{} has no cells: nothing to embed", a.input.display());
    }
    check_ambiguous(
        &saved.genes,
        &saved.repeated_genes,
        &adata.var.repeated_names,
    )?;
    let genes = match_genes(&saved.genes, &adata.var.index)?;
    let batch = match_batches(&adata, &saved.batch_key, &saved.batch_categories)?;
    let n = adata.n_obs();
    let mut setup = Setup::new_taking_x(
        &mut adata,
        &saved.batch_key,
        batch,
        saved.batch_categories.clone(),
        genes,
        &cfg,
        Some(saved.constants.into()),
    )?;
    let data = crate::model::dataset::DeviceData::upload_taking(&backend, &mut setup.prep)?;
    let trained = Trained {
        model,
        data,
        run: saved.run.clone(),
        log: Vec::new(),
        train_seconds: 0.0,
    };
    let latent = trained.latent(&setup.prep, saved.run.train.seed);
    if latent.iter().any(|v| !v.is_finite()) {
        anyhow::bail!("the embedding has non-finite values; nothing was written");
    }
    // Sup: a model trained with labels predicts them for the new cells.
    let predicted = trained.predict_labels(&setup.prep);
    // X: the counts of the genes used, as held for the model (no second copy).
    let var = adata.var.select(&setup.genes);
    let uns = json!({
        "version": crate::VERSION,
        "model": a.model.display().to_string(),
        "model_scdreamer_version": saved.scdreamer_version,
        "batch_key": saved.batch_key,
        "batch_categories": saved.batch_categories,
        "labels_key": saved.labels_key,
        "label_categories": saved.label_categories,
    });
    let results = Results {
        obsm: vec![("X_scdreamer".into(), Dense::new(n, cfg.latent, latent)?)],
        layers: Vec::new(),
        obs: predicted
            .as_ref()
            .map(|p| p.obs_columns(&saved.label_categories))
            .unwrap_or_default(),
        uns: vec![("scdreamer".into(), uns)],
    };
    h5ad::write_h5ad_blocks(
        &output,
        trained.counts(&setup.prep),
        &adata.obs,
        &var,
        &results,
    )?;
    eprintln!(
        "wrote {} (obsm['X_scdreamer']{}, {} cells)",
        output.display(),
        if predicted.is_some() {
            ", obs['scdreamer_label'], obs['scdreamer_label_confidence']"
        } else {
            ""
        },
        n
    );
    Ok(())
}
