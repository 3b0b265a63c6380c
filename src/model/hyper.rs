//! The user's hyper-parameters (every `integrate` flag that shapes the model or its training),
//! resolved against a preset into [`ModelConfig`] and [`TrainConfig`]. One place for the CLI
//! and the Python module, so the same settings give the same model.

use crate::data::hvg::GeneSelection;
use crate::model::config::{
    AdversaryInput, LabelLoss, Likelihood, LrSchedule, ModelConfig, TrainConfig,
};
use crate::model::presets::{CPU_BATCH_SIZE, default_epochs, gpu_batch_size, many_batches};

/// Hyper-parameter preset.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Preset {
    /// The method with measured fixes of the authors' code (see README).
    #[default]
    Default,
    /// Reproduces the authors' TensorFlow code.
    Authors,
}

impl Preset {
    /// The name written into outputs ("default" or "authors").
    pub fn name(self) -> &'static str {
        match self {
            Preset::Default => "default",
            Preset::Authors => "authors",
        }
    }
}

/// HVG method.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HvgFlavor {
    SeuratV3,
    Seurat,
}

/// Every override of the preset; `None` keeps the preset's value.
#[derive(Clone, Debug)]
pub struct HyperParams {
    pub preset: Preset,
    pub latent: Option<usize>,
    pub hidden: Option<Vec<usize>>,
    pub batch_adv_weight: Option<f32>,
    pub adversary_input: Option<AdversaryInput>,
    pub encode_batch: Option<bool>,
    pub batch_gene_offsets: Option<bool>,
    pub disc_weight: Option<f32>,
    pub kl_weight: Option<f32>,
    pub likelihood: Likelihood,
    pub epochs: Option<usize>,
    pub batch_size: Option<usize>,
    pub lr_schedule: Option<LrSchedule>,
    pub lr: Option<f32>,
    pub label_balance: Option<f32>,
    /// scDREAMER-Sup's label loss.
    pub label_loss: Option<LabelLoss>,
    pub seed: u64,
}

/// The default preset with no override (ZINB, seed 0): what a caller changes field by field.
impl Default for HyperParams {
    fn default() -> Self {
        HyperParams {
            preset: Preset::Default,
            latent: None,
            hidden: None,
            batch_adv_weight: None,
            adversary_input: None,
            encode_batch: None,
            batch_gene_offsets: None,
            disc_weight: None,
            kl_weight: None,
            likelihood: Likelihood::Zinb,
            epochs: None,
            batch_size: None,
            lr_schedule: None,
            lr: None,
            label_balance: None,
            label_loss: None,
            seed: 0,
        }
    }
}

impl HyperParams {
    /// On a GPU, the default preset's minibatch grows with the data ([`gpu_batch_size`]) unless
    /// the batch size was given; the epoch budget (in steps) follows it in [`Self::configs`].
    pub fn on_device(mut self, gpu: bool, n_cells: usize) -> Self {
        if gpu && self.batch_size.is_none() && self.preset == Preset::Default {
            let b = gpu_batch_size(n_cells);
            if b != CPU_BATCH_SIZE {
                self.batch_size = Some(b);
            }
        }
        self
    }

    /// Model and training configuration from the preset and the overrides. `n_labels` > 0
    /// selects scDREAMER-Sup, whose preset differs (e.g. its KL weight).
    pub fn configs(
        &self,
        n_genes: usize,
        n_batches: usize,
        n_labels: usize,
        n_cells: usize,
    ) -> anyhow::Result<(ModelConfig, TrainConfig)> {
        let (mut m, mut t) = match self.preset {
            Preset::Default => (
                ModelConfig::default_preset(n_genes, n_batches, n_labels),
                TrainConfig::default_preset(n_cells, n_batches, n_labels, self.seed),
            ),
            Preset::Authors => (
                ModelConfig::authors_preset(n_genes, n_batches, n_labels),
                TrainConfig::authors_preset(self.seed),
            ),
        };
        override_with(&mut m.latent, self.latent);
        if let Some(h) = &self.hidden {
            if h.is_empty() || h.contains(&0) {
                anyhow::bail!("--hidden needs one or more positive widths, e.g. 512 or 512,256");
            }
            m.hidden = h.clone();
        }
        override_with(&mut m.batch_adv_weight, self.batch_adv_weight);
        override_with(&mut m.adversary_input, self.adversary_input);
        override_with(&mut m.encode_batch, self.encode_batch);
        override_with(&mut m.batch_gene_offsets, self.batch_gene_offsets);
        override_with(&mut m.disc_weight, self.disc_weight);
        override_with(&mut m.kl_weight, self.kl_weight);
        override_with(&mut m.label_loss, self.label_loss);
        m.likelihood = self.likelihood;
        override_with(&mut t.epochs, self.epochs);
        if let Some(b) = self.batch_size {
            t.batch_size = b;
            // The default epoch budget is in steps: follow the batch size the user chose.
            if self.epochs.is_none() && self.preset == Preset::Default {
                t.epochs = default_epochs(n_cells, b, many_batches(n_batches, n_labels));
            }
        }
        override_with(&mut t.lr_schedule, self.lr_schedule);
        override_with(&mut t.label_balance, self.label_balance);
        if let Some(lr) = self.lr {
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
        if !(t.label_balance >= 0.0 && t.label_balance.is_finite()) {
            anyhow::bail!(
                "--label-balance must be a number >= 0 (got {})",
                t.label_balance
            );
        }
        Ok((m, t))
    }
}

/// `slot` takes `value` when the user gave one.
fn override_with<T>(slot: &mut T, value: Option<T>) {
    if let Some(v) = value {
        *slot = v;
    }
}

/// HVG selection of `n_top` genes with `flavor`, or the preset's flavour (seurat_v3 in the
/// default preset, seurat in the authors').
pub fn hvg_selection(preset: Preset, flavor: Option<HvgFlavor>, n_top: usize) -> GeneSelection {
    let flavor = flavor.unwrap_or(match preset {
        Preset::Authors => HvgFlavor::Seurat,
        Preset::Default => HvgFlavor::SeuratV3,
    });
    match flavor {
        HvgFlavor::SeuratV3 => GeneSelection::SeuratV3(n_top),
        HvgFlavor::Seurat => GeneSelection::Seurat(n_top),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gpu_grows_the_default_minibatch_and_keeps_the_step_budget() {
        let n = 1_000_000;
        let (_, cpu) = HyperParams::default()
            .on_device(false, n)
            .configs(2000, 4, 0, n)
            .unwrap();
        let (_, gpu) = HyperParams::default()
            .on_device(true, n)
            .configs(2000, 4, 0, n)
            .unwrap();
        assert_eq!(cpu.batch_size, 128);
        assert_eq!(gpu.batch_size, 1024);
        assert_eq!(gpu.epochs, default_epochs(n, 1024, false));
        assert_eq!(gpu.epochs, 4);
        // Small data keeps the CPU's configuration on a GPU.
        let (_, small) = HyperParams::default()
            .on_device(true, 8_684)
            .configs(2000, 4, 0, 8_684)
            .unwrap();
        let (_, small_cpu) = HyperParams::default().configs(2000, 4, 0, 8_684).unwrap();
        assert_eq!(
            (small.batch_size, small.epochs),
            (small_cpu.batch_size, small_cpu.epochs)
        );
        // A batch size the user gave, or the authors' preset, is left alone.
        let given = HyperParams {
            batch_size: Some(64),
            ..HyperParams::default()
        };
        let (_, t) = given.on_device(true, n).configs(2000, 4, 0, n).unwrap();
        assert_eq!(t.batch_size, 64);
        let authors = HyperParams {
            preset: Preset::Authors,
            ..HyperParams::default()
        };
        let (_, t) = authors.on_device(true, n).configs(2000, 4, 0, n).unwrap();
        assert_eq!(t.batch_size, 128);
    }
}
