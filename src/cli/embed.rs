//! `scdreamer embed --model DIR --input new.h5ad --output out.h5ad`: a saved model embeds new
//! cells of known batches without retraining. Genes are matched by name (any order; missing ones
//! are an error) and batches by category name (an unknown batch is an error).

use serde_json::json;

use crate::backend::cpu::Cpu;
use crate::cli::args::EmbedArgs;
use crate::data::dense::Dense;
use crate::data::h5ad::{self, ReadOptions, Results};
use crate::io::checkpoint;
use crate::io::outputs::OutputPlan;
use crate::pipeline::Trained;
pub use crate::saved_model::{match_batches, match_genes};

pub fn run(a: &EmbedArgs) -> anyhow::Result<()> {
    let output = a.output.clone();
    OutputPlan::new()
        .file("--output", &output)
        .input("--input", &a.input)
        .input("--model file", &a.model.join(checkpoint::CONFIG))
        .input("--model file", &a.model.join(checkpoint::WEIGHTS))
        .check()?;
    h5ad::install_ctrlc_cleanup();
    // The model must fit in memory before it is built (a tampered width would abort), and the
    // weights are checked against config.json before the (possibly large) input is read.
    let config = checkpoint::load_config(&a.model)?;
    crate::cli::limits::check_model_fits(
        &config.run.model,
        config.run.train.batch_size,
        &format!("the model in {}", a.model.display()),
    )?;
    let backend = Cpu::new();
    let (saved, model) = crate::saved_model::load_model(&a.model, &backend)?;
    let cfg = saved.run.model.clone();
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
    crate::saved_model::check_ambiguous(
        &saved.genes,
        &saved.repeated_genes,
        &adata.var.repeated_names,
    )?;
    let n = adata.n_obs();
    let mut setup =
        crate::saved_model::setup_for(&mut adata, &saved, &a.input.display().to_string())?;
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
