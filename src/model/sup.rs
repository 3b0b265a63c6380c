//! scDREAMER-Sup (spec section 6): the cell-type classifier on z and the hierarchical y-VAE that
//! turns the N(0, I) prior of z into N(f(y, pi_c)) with y ~ N(0, I). Labels are optional per
//! cell: the label loss is masked to the labelled ones, and every cell gets a prediction.
//!
//! The hooks in `scdreamer.rs` call [`SupNets::forward`] from the AE graph; nothing here runs
//! when the model is unsupervised (`n_labels == 0`).

use rand_chacha::ChaCha8Rng;

use crate::backend::cpu::step::argmax;
use crate::data::anndata::Column;
use crate::model::config::ModelConfig;
use crate::model::networks::{NewParams, dense_stack, hidden_act, variance};
use crate::nn::Linear;
use crate::ops::Backend;
use crate::tape::{Indices, Params, Tape, Var};

/// Hidden width of DecoderY (hard-coded 8 in the authors' code, S/model.py:516).
const DECODER_Y_HIDDEN: usize = 8;

/// The Sup networks: label classifier z -> C, EncoderY concat[z, pi] -> y and
/// DecoderY concat[y, pi] -> (zc_m, zc_v), the mean and variance of the prior of z.
pub struct SupNets {
    label: Linear,
    enc_y: Vec<Linear>,
    y_mean: Linear,
    y_var: Linear,
    dec_y: Linear,
    zc_mean: Linear,
    zc_var: Linear,
}

/// The Sup part of one minibatch's AE graph.
pub struct SupGraph {
    /// KL(q(z|x,s) || N(zc_m, zc_v)) per cell [n,1].
    pub kl_z: Var,
    /// KL(q(y|z,pi) || N(0, I)) per cell [n,1].
    pub kl_y: Var,
    /// Mean cross-entropy over the labelled cells of the minibatch (0 when none) [1,1].
    pub label_ce: Var,
    pub logits: Var,
}

impl SupNets {
    /// Parameters in `group` (the AE optimiser moves it: the authors train the classifier and
    /// the y-VAE with the AE loss).
    pub fn new<B: Backend>(at: NewParams<'_, B>, cfg: &ModelConfig) -> Self {
        let NewParams { params, group, rng } = at;
        let (z, c, y) = (cfg.latent, cfg.n_labels, cfg.y_dim);
        let label = Linear::new(params, group, "sup_label", z, c, rng);
        let mut widths = vec![z + c];
        widths.extend(&cfg.hidden);
        let enc_y = dense_stack(params, group, ("sup_ey", 1), &widths, rng);
        let last = *cfg.hidden.last().expect("at least one hidden layer");
        SupNets {
            label,
            enc_y,
            y_mean: Linear::new(params, group, "sup_ey_mean", last, y, rng),
            y_var: Linear::new(params, group, "sup_ey_var", last, y, rng),
            dec_y: Linear::new(params, group, "sup_dy_h1", y + c, DECODER_Y_HIDDEN, rng),
            zc_mean: Linear::new(params, group, "sup_dy_mean", DECODER_Y_HIDDEN, z, rng),
            zc_var: Linear::new(params, group, "sup_dy_var", DECODER_Y_HIDDEN, z, rng),
        }
    }

    /// Label logits `Dense(z)`.
    pub fn logits<B: Backend>(&self, tape: &mut Tape<B>, params: &Params<B>, z: Var) -> Var {
        self.label.forward(tape, params, z)
    }

    /// Training forward on the sampled z of the minibatch `rows` (q(z|x,s) = N(z_mean, z_var)).
    #[allow(clippy::too_many_arguments)]
    pub fn forward<B: Backend>(
        &self,
        tape: &mut Tape<B>,
        params: &Params<B>,
        cfg: &ModelConfig,
        gce_q: f32,
        (labels, mask): (Indices<'_, B>, &B::Buf),
        (z, z_mean, z_var): (Var, Var, Var),
        rng: &mut ChaCha8Rng,
    ) -> SupGraph {
        let logits = self.logits(tape, params, z);
        let label_ce = tape.cross_entropy_device_mask(logits, labels, mask, gce_q);
        // The predicted pi_c feeds the y-VAE for every cell, labelled or not, as in the authors'
        // code. Feeding the true one-hot of labelled cells instead (the paper's figure) measured
        // no better (BENCHMARKS.md, "The presets' measured defaults"), so the faithful version
        // is the only one.
        let pi = tape.softmax_rows(logits);

        // EncoderY: q(y | z, pi).
        let mut h = tape.concat_cols(z, pi);
        for l in &self.enc_y {
            h = l.forward(tape, params, h);
            h = hidden_act(tape, h, cfg, true, rng);
        }
        let y_mean = self.y_mean.forward(tape, params, h);
        let yv = self.y_var.forward(tape, params, h);
        let y_var = variance(tape, yv, cfg.variance_head);
        let y = tape.sample_gaussian(y_mean, y_var, rng);

        // DecoderY: the prior of z, N(zc_m, zc_v) = f(y, pi).
        let h = tape.concat_cols(y, pi);
        let h = self.dec_y.forward(tape, params, h);
        let h = hidden_act(tape, h, cfg, true, rng);
        let zc_mean = self.zc_mean.forward(tape, params, h);
        let zv = self.zc_var.forward(tape, params, h);
        let zc_var = variance(tape, zv, cfg.variance_head);

        SupGraph {
            kl_z: tape.kl_normal(z_mean, z_var, zc_mean, zc_var),
            kl_y: tape.kl_std_normal(y_mean, y_var),
            label_ce,
            logits,
        }
    }
}

/// Predicted cell type of every cell: argmax of softmax(Dense(z_mean)) and its probability.
#[derive(Clone, Debug, PartialEq)]
pub struct LabelPrediction {
    /// Code into the label categories.
    pub codes: Vec<u32>,
    /// Probability of the predicted type.
    pub confidence: Vec<f32>,
}

impl LabelPrediction {
    /// From row-major probabilities [n, C].
    pub fn from_probs(probs: &[f32], n_labels: usize) -> Self {
        let k = n_labels.max(1);
        let (codes, confidence) = probs
            .chunks(k)
            .map(|row| {
                let j = argmax(row);
                (j as u32, row[j])
            })
            .unzip();
        LabelPrediction { codes, confidence }
    }

    /// The obs columns `scdreamer_label` (categorical over `categories`) and
    /// `scdreamer_label_confidence` (float32).
    pub fn obs_columns(&self, categories: &[String]) -> Vec<(String, Column)> {
        vec![
            ("scdreamer_label".into(), self.label_column(categories)),
            (
                "scdreamer_label_confidence".into(),
                Column::F32(self.confidence.clone()),
            ),
        ]
    }

    /// The predicted types as a categorical column over `categories`.
    pub fn label_column(&self, categories: &[String]) -> Column {
        Column::Categorical {
            codes: self.codes.iter().map(|&c| c as i32).collect(),
            categories: categories.to_vec(),
            ordered: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prediction_takes_argmax_and_its_probability() {
        let p = LabelPrediction::from_probs(&[0.2, 0.7, 0.1, 0.6, 0.3, 0.1], 3);
        assert_eq!(p.codes, vec![1, 0]);
        assert_eq!(p.confidence, vec![0.7, 0.6]);
    }
}
