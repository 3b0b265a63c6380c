//! `integrate`'s gene selection and model/training configuration from the preset and flags.

use crate::cli::args::{
    AdversaryInputArg, HvgFlavor, IntegrateArgs, Likelihood as LikelihoodArg, LrScheduleArg, Preset,
};
use crate::cli::integrate_checks::check_weights;
use crate::model::config::{
    AdversaryInput, Likelihood, LrSchedule, ModelConfig, TrainConfig, default_epochs, many_batches,
};
use crate::pipeline::GeneSelection;

pub(crate) fn gene_selection(
    a: &IntegrateArgs,
    var: &crate::data::Frame,
) -> anyhow::Result<GeneSelection> {
    let var_names = &var.index;
    if a.genes.all_genes {
        return Ok(GeneSelection::All);
    }
    if let Some(f) = &a.genes.genes {
        let genes = crate::data::preprocess::genes_from_file(f, var_names)?;
        // A bare name the input repeats stands for several columns: say so instead of
        // silently taking the first.
        if let Some(name) = genes
            .iter()
            .map(|&j| &var_names[j])
            .find(|n| var.repeated_names.contains(n))
        {
            anyhow::bail!(
                "--genes {} lists '{name}', which names more than one gene of the input \
                 (var_names repeat it; they were made unique as '{name}', '{name}-1', ...): \
                 list the unique name of each column you mean",
                f.display()
            );
        }
        return Ok(GeneSelection::Given(genes));
    }
    let flavor = a.genes.hvg_flavor.unwrap_or(match a.preset {
        Preset::Authors => HvgFlavor::Seurat,
        Preset::Default => HvgFlavor::SeuratV3,
    });
    Ok(match flavor {
        HvgFlavor::SeuratV3 => GeneSelection::SeuratV3(a.genes.n_top_genes),
        HvgFlavor::Seurat => GeneSelection::Seurat(a.genes.n_top_genes),
    })
}

/// Model and training configuration from the preset and the flags. `n_labels` > 0 selects
/// scDREAMER-Sup, whose preset differs (e.g. its KL weight).
pub fn configs(
    a: &IntegrateArgs,
    n_genes: usize,
    n_batches: usize,
    n_labels: usize,
    n_cells: usize,
) -> anyhow::Result<(ModelConfig, TrainConfig)> {
    let (mut m, mut t) = match a.preset {
        Preset::Default => (
            ModelConfig::default_preset(n_genes, n_batches, n_labels),
            TrainConfig::default_preset(n_cells, n_batches, n_labels, a.seed),
        ),
        Preset::Authors => (
            ModelConfig::authors_preset(n_genes, n_batches, n_labels),
            TrainConfig::authors_preset(a.seed),
        ),
    };
    if let Some(l) = a.latent {
        m.latent = l;
    }
    if let Some(h) = &a.hidden {
        if h.is_empty() || h.contains(&0) {
            anyhow::bail!("--hidden needs one or more positive widths, e.g. 512 or 512,256");
        }
        m.hidden = h.clone();
    }
    if let Some(w) = a.batch_adv_weight {
        m.batch_adv_weight = w;
    }
    if let Some(i) = a.adversary_input {
        m.adversary_input = match i {
            AdversaryInputArg::Sample => AdversaryInput::Sample,
            AdversaryInputArg::Mean => AdversaryInput::Mean,
        };
    }
    if let Some(e) = a.encode_batch {
        m.encode_batch = e;
    }
    if let Some(o) = a.batch_gene_offsets {
        m.batch_gene_offsets = o;
    }
    if let Some(w) = a.disc_weight {
        m.disc_weight = w;
    }
    if let Some(w) = a.kl_weight {
        m.kl_weight = w;
    }
    m.likelihood = match a.likelihood {
        LikelihoodArg::Zinb => Likelihood::Zinb,
        LikelihoodArg::Nb => Likelihood::Nb,
    };
    if let Some(e) = a.epochs {
        t.epochs = e;
    }
    if let Some(b) = a.batch_size {
        t.batch_size = b;
        // The default epoch budget is in steps: follow the batch size the user chose.
        if a.epochs.is_none() && a.preset == Preset::Default {
            t.epochs = default_epochs(n_cells, b, many_batches(n_batches, n_labels));
        }
    }
    if let Some(sch) = a.lr_schedule {
        t.lr_schedule = match sch {
            LrScheduleArg::Constant => LrSchedule::Constant,
            LrScheduleArg::Cosine => LrSchedule::Cosine,
        };
    }
    if let Some(lr) = a.lr {
        // Keep the adversaries' learning rates in the preset's ratio to the AE's.
        let r = lr / t.lr_ae;
        t.lr_ae = lr;
        t.lr_dis *= r;
        t.lr_bc *= r;
    }
    if m.latent == 0 || t.epochs == 0 || t.batch_size < 2 {
        anyhow::bail!(
            "--latent and --epochs must be at least 1 and --batch-size at least 2 (got {}, {}, {})",
            m.latent,
            t.epochs,
            t.batch_size
        );
    }
    if !(t.lr_ae > 0.0 && t.lr_ae.is_finite()) {
        anyhow::bail!("--lr must be a positive number (got {})", t.lr_ae);
    }
    check_weights(a)?;
    // Training never uses more cells per minibatch than there are.
    let minibatch = t.batch_size.min(n_cells.max(2));
    crate::cli::limits::check_model_fits(
        &m,
        minibatch,
        &format!(
            "--hidden {} with --latent {} and --batch-size {}",
            m.hidden
                .iter()
                .map(|w| w.to_string())
                .collect::<Vec<_>>()
                .join(","),
            m.latent,
            t.batch_size
        ),
    )?;
    Ok((m, t))
}
