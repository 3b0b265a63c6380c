//! `scdreamer embed --model DIR --input new.h5ad --output out.h5ad`: a saved model embeds new
//! cells of known batches without retraining, on the backend `--device` chose. Genes are
//! matched by name (any order; missing ones are an error) and batches by category name (an
//! unknown batch is an error).

use crate::backend::cpu::{Cpu, par};
use crate::backend::device::{self, Device};
use crate::cli::args::EmbedArgs;
use crate::data::h5ad;
use crate::io::results::{Embedded, write_embedding};
use crate::ops::Backend;
use crate::pipeline::{self, Inference, Resident};
pub use crate::saved_model::{match_batches, match_genes};

pub fn run(a: &EmbedArgs) -> anyhow::Result<()> {
    a.files.output_plan().check()?;
    h5ad::install_ctrlc_cleanup();
    let device = device::resolve(a.device.into())?;
    eprintln!("{}", device.describe());
    match device {
        Device::Cpu { .. } => par::on_a_worker(|| embed_on(&Cpu::new(), a)),
        #[cfg(feature = "cuda")]
        Device::Cuda(rt) => embed_on(&device::cuda_backend(rt)?, a),
    }
}

/// Loads the model on `backend`, embeds the input's cells and writes the output.
fn embed_on<B: Backend>(backend: &B, a: &EmbedArgs) -> anyhow::Result<()> {
    // The model (checked to fit in memory, its weights against config.json) before the
    // (possibly large) input is read.
    let (saved, model) = pipeline::load(&a.files.model, backend)?;
    let mut adata = a.files.read_input()?;
    if adata.n_obs() == 0 {
        anyhow::bail!("{} has no cells: nothing to embed", a.files.input.display());
    }
    crate::saved_model::check_ambiguous(
        &saved.genes,
        &saved.repeated_genes,
        &adata.var.repeated_names,
    )?;
    let n = adata.n_obs();
    let mut setup =
        crate::saved_model::setup_for(&mut adata, &saved, &a.files.input.display().to_string())?;
    let held = pipeline::upload(backend, &mut setup)?;
    let cells = Resident {
        prep: &setup.prep,
        data: &held,
        train_rows: &setup.train_rows,
    };
    // Sup: a model trained with labels predicts them for the new cells.
    let inferred = pipeline::infer(
        &model,
        &cells,
        &Inference {
            latent: true,
            seed: saved.run.train.seed,
            labels: true,
            normalized: None,
            progress: !a.files.quiet,
        },
    )?;
    let labelled = inferred.predicted.is_some();
    // X: the counts of the genes used, as held for the model (no second copy).
    write_embedding(
        Embedded {
            output: &a.files.output,
            model_dir: &a.files.model,
            saved: &saved,
            device: backend.name(),
            latent: inferred.latent,
            predicted: inferred.predicted,
        },
        held.host_counts(&setup.prep),
        &adata.obs,
        &adata.var.select(&setup.genes),
    )?;
    eprintln!(
        "wrote {} (obsm['X_scdreamer']{}, {} cells)",
        a.files.output.display(),
        if labelled {
            ", obs['scdreamer_label'], obs['scdreamer_label_confidence']"
        } else {
            ""
        },
        n
    );
    Ok(())
}
