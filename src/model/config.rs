//! Model and training configuration: what a run is made of. The two presets that fill it in
//! (spec section 12) are in `presets`.

use serde::{Deserialize, Serialize};

/// Count likelihood of the decoder.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Likelihood {
    Zinb,
    Nb,
}

/// What the likelihood is evaluated on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    /// Raw counts with the observed library size as the NB/ZINB mean scale (scVI style).
    Counts,
    /// The authors' double-log, max-scaled values in [0, 1] with a latent library size.
    AuthorsScaled,
}

/// Which latent vector is written as the embedding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Embed {
    /// Posterior mean z_m (deterministic).
    Mean,
    /// A sample of q(z|x,s), as the authors' code writes.
    Sample,
}

/// The masked-input consistency branch (spec section 3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mask {
    /// A random 10% of gene columns, redrawn every minibatch (package U).
    Random10pct,
    /// The first 100 gene columns (paper code R).
    First100,
    Off,
}

/// What the encoder does against the batch classifier.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BatchAdversary {
    /// Maximise the classifier's cross-entropy (authors: `L_AE = ... - L_C`). Unbounded: the
    /// encoder can win by making the classifier confidently wrong, which keeps batches apart.
    MaxCrossEntropy,
    /// Minimise the cross-entropy between the classifier's output and the uniform distribution
    /// over batches: bounded, and optimal exactly when z tells nothing about the batch.
    Uniform,
}

/// Which latent vector the adversarial batch classifier sees.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AdversaryInput {
    /// A sample of q(z|x,s) (authors). Batch offsets smaller than the posterior's standard
    /// deviation are hidden from the classifier by the sampling noise, yet remain in the mean.
    #[default]
    Sample,
    /// The posterior mean z_m: the vector the default preset writes as the embedding, so the
    /// adversary removes batch signal from exactly what the user gets.
    Mean,
}

/// scDREAMER-Sup's label loss on the labelled cells.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LabelLoss {
    /// `-ln p` of the given label (authors).
    #[default]
    CrossEntropy,
    /// The generalized cross-entropy `(1 - p^q) / q` at q = [`GCE_Q`] (Zhang & Sabuncu 2018):
    /// its gradient is the cross-entropy's times p^q, so a label the model finds unlikely, as
    /// a wrong one is once the types have formed, pulls the encoder and classifier less.
    Generalized,
}

/// q of [`LabelLoss::Generalized`]: the value its authors recommend, and the one measured
/// (BENCHMARKS.md, "Wrong labels: a generalized cross-entropy").
pub const GCE_Q: f32 = 0.7;

/// [`LabelLoss::Generalized`] is the cross-entropy for this share of the run's steps first: its
/// damped gradient cannot start a type the classifier does not yet predict (from scratch, one
/// cell line of cellbench_5cl was never learnt), and in the first steps the classifier has not
/// yet learnt the wrong labels (BENCHMARKS.md, "Wrong labels: a generalized cross-entropy").
pub const GCE_WARMUP: f64 = 0.1;

impl LabelLoss {
    /// The q the cross-entropy kernels take after the warm-up (0 = the cross-entropy).
    pub fn q(self) -> f32 {
        match self {
            LabelLoss::CrossEntropy => 0.0,
            LabelLoss::Generalized => GCE_Q,
        }
    }

    /// The q the cross-entropy kernels take at `step` of `total` (0 = the cross-entropy).
    pub fn q_at(self, step: usize, total: usize) -> f32 {
        if (step as f64) < GCE_WARMUP * total as f64 {
            0.0
        } else {
            self.q()
        }
    }
}

/// How variances are produced by the Gaussian heads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VarianceHead {
    /// `exp(h)`, unbounded (authors).
    Exp,
    /// `exp(h) + 1e-4` with h clamped to [-15, 15] so neither underflow nor overflow is possible.
    SafeExp,
}

/// Architecture and loss weights.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    pub n_genes: usize,
    pub n_batches: usize,
    /// Number of cell types (0 = unsupervised scDREAMER; > 0 = scDREAMER-Sup).
    pub n_labels: usize,
    pub latent: usize,
    /// Hidden widths of the encoder (the decoder, discriminator and classifier use them too).
    pub hidden: Vec<usize>,
    pub likelihood: Likelihood,
    pub target: Target,
    pub embed: Embed,
    pub mask: Mask,
    pub variance_head: VarianceHead,
    pub leak: f32,
    /// Dropout keep probability in every hidden layer during training.
    pub keep_prob: f32,
    /// Weight of every KL term (authors: 0.001).
    pub kl_weight: f32,
    /// Weight of the masked-input consistency term (authors: 0.001).
    pub consistency_weight: f32,
    /// Weight of the adversarial batch-classifier term in the autoencoder loss.
    pub batch_adv_weight: f32,
    pub batch_adversary: BatchAdversary,
    /// Input of the batch classifier (older saved models: the sample).
    #[serde(default)]
    pub adversary_input: AdversaryInput,
    /// The decoder adds a learned per-batch, per-gene offset to its scale and dropout logits:
    /// gene-wise multiplicative batch effects and platform-specific dropout are then explained
    /// by the batch, not by z (older saved models: off).
    #[serde(default)]
    pub batch_gene_offsets: bool,
    /// The encoder reads the batch one-hot beside x (authors: E(x, s)); without it z is
    /// inferred from x alone, as in scVI's default (older saved models: on).
    #[serde(default = "yes")]
    pub encode_batch: bool,
    /// Weight of the Bhattacharyya term in the autoencoder loss.
    pub disc_weight: f32,
    /// ZINB/NB epsilon inside the logs.
    pub eps: f32,
    /// The authors' AE optimiser moves every weight, the adversaries' included.
    pub ae_updates_adversaries: bool,
    /// Each sub-step (AE, discriminator, classifier) runs its own forward pass with fresh noise
    /// (authors); otherwise the adversaries train on the AE step's detached outputs.
    pub separate_adversary_forward: bool,
    /// Library prior `ln(sum + 1)` (true) or `ln(sum)`.
    pub library_prior_plus1: bool,
    /// Scale of the Sup label cross-entropy (authors: 10).
    pub label_weight: f32,
    /// The Sup label loss (older saved models: the cross-entropy).
    #[serde(default)]
    pub label_loss: LabelLoss,
    /// Sup y dimension (authors: 6).
    pub y_dim: usize,
}

/// Learning-rate schedule of all three optimisers over the whole run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LrSchedule {
    /// The same rate throughout (authors).
    #[default]
    Constant,
    /// Half a cosine from the full rate down to 0 at the last minibatch step: the adversarial
    /// game slows down at the end, so the written embedding is a settled state rather than a
    /// snapshot of an oscillation.
    Cosine,
}

impl LrSchedule {
    /// Multiplier of the learning rate at minibatch step `step` of `total` (0-based).
    pub fn factor(self, step: usize, total: usize) -> f32 {
        match self {
            LrSchedule::Constant => 1.0,
            LrSchedule::Cosine => {
                let t = step as f64 / total.max(1) as f64;
                (0.5 * (1.0 + (std::f64::consts::PI * t).cos())) as f32
            }
        }
    }
}

/// Optimisation and schedule.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    pub epochs: usize,
    pub batch_size: usize,
    pub lr_ae: f32,
    pub lr_dis: f32,
    pub lr_bc: f32,
    pub seed: u64,
    /// Gradient clipping by global norm for the AE optimiser (None = off).
    pub clip_norm: Option<f32>,
    /// Learning-rate schedule (older saved models: constant).
    #[serde(default)]
    pub lr_schedule: LrSchedule,
    /// Sup: the power of the cell-type balance of the label loss (0: every labelled cell weighs
    /// the same; 1: every type does; see `CellLabels::balanced_weights`; older saved models: 0).
    #[serde(default)]
    pub label_balance: f32,
}

impl TrainConfig {
    /// Sup's per-cell label-loss weights for `labels` at this label balance
    /// (`CellLabels::balanced_weights`; balance 0 gives exactly 1 per labelled cell, 0 per
    /// unlabelled one).
    pub fn label_weights(&self, labels: &crate::data::labels::CellLabels) -> Vec<f32> {
        labels.balanced_weights(self.label_balance)
    }
}

fn yes() -> bool {
    true
}

/// Everything that defines a run, written into `uns["scdreamer"]` and the saved model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunConfig {
    pub preset: String,
    pub model: ModelConfig,
    pub train: TrainConfig,
}

impl RunConfig {
    pub fn new(preset: &str, model: ModelConfig, train: TrainConfig) -> Self {
        RunConfig {
            preset: preset.to_string(),
            model,
            train,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_generalized_label_loss_starts_as_the_cross_entropy() {
        let total = 1000;
        let warm = (GCE_WARMUP * total as f64) as usize;
        for step in [0, 1, warm - 1, warm, total - 1] {
            assert_eq!(LabelLoss::CrossEntropy.q_at(step, total), 0.0);
            let want = if step < warm { 0.0 } else { GCE_Q };
            assert_eq!(
                LabelLoss::Generalized.q_at(step, total),
                want,
                "step {step}"
            );
        }
        assert_eq!(LabelLoss::Generalized.q(), GCE_Q);
        assert_eq!(LabelLoss::CrossEntropy.q(), 0.0);
    }
}
