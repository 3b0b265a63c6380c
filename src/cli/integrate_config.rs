//! `integrate`'s gene selection and model/training configuration from the preset and flags.

use crate::cli::args::{
    AdversaryInputArg, HvgFlavor, IntegrateArgs, LabelLossArg, Likelihood as LikelihoodArg,
    LrScheduleArg, Preset,
};
use crate::model::config::{
    AdversaryInput, LabelLoss, Likelihood, LrSchedule, ModelConfig, TrainConfig,
};
use crate::model::hyper::{self, HyperParams};
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
    let flavor = a.genes.hvg_flavor.map(|f| match f {
        HvgFlavor::SeuratV3 => hyper::HvgFlavor::SeuratV3,
        HvgFlavor::Seurat => hyper::HvgFlavor::Seurat,
    });
    Ok(hyper::hvg_selection(
        hyper_preset(a.preset),
        flavor,
        a.genes.n_top_genes,
    ))
}

fn hyper_preset(p: Preset) -> hyper::Preset {
    match p {
        Preset::Default => hyper::Preset::Default,
        Preset::Authors => hyper::Preset::Authors,
    }
}

/// The hyper-parameter flags (the Python package takes the same as keyword arguments).
pub fn hyper_params(a: &IntegrateArgs) -> HyperParams {
    HyperParams {
        preset: hyper_preset(a.preset),
        latent: a.latent,
        hidden: a.hidden.clone(),
        batch_adv_weight: a.batch_adv_weight,
        adversary_input: a.adversary_input.map(|i| match i {
            AdversaryInputArg::Sample => AdversaryInput::Sample,
            AdversaryInputArg::Mean => AdversaryInput::Mean,
        }),
        encode_batch: a.encode_batch,
        batch_gene_offsets: a.batch_gene_offsets,
        disc_weight: a.disc_weight,
        kl_weight: a.kl_weight,
        likelihood: match a.likelihood {
            LikelihoodArg::Zinb => Likelihood::Zinb,
            LikelihoodArg::Nb => Likelihood::Nb,
        },
        epochs: a.epochs,
        batch_size: a.batch_size,
        lr_schedule: a.lr_schedule.map(|s| match s {
            LrScheduleArg::Constant => LrSchedule::Constant,
            LrScheduleArg::Cosine => LrSchedule::Cosine,
        }),
        lr: a.lr,
        label_balance: a.label_balance,
        label_loss: a.label_loss.map(|l| match l {
            LabelLossArg::Ce => LabelLoss::CrossEntropy,
            LabelLossArg::Gce => LabelLoss::Generalized,
        }),
        seed: a.seed,
    }
}

/// The model, its gradients and one minibatch's activations fit in memory, or an error naming
/// the flags that size them.
pub(crate) fn check_fits(m: &ModelConfig, t: &TrainConfig, n_cells: usize) -> anyhow::Result<()> {
    if !(t.lr_ae > 0.0 && t.lr_ae.is_finite()) {
        anyhow::bail!("--lr must be a positive number (got {})", t.lr_ae);
    }
    // Training never uses more cells per minibatch than there are.
    let minibatch = t.batch_size.min(n_cells.max(2));
    crate::pipeline::limits::check_model_fits(
        m,
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
    )
}
