//! scDREAMER-Sup (spec section 6): the cell-type classifier on z and the hierarchical y-VAE that
//! turns the N(0, I) prior of z into N(f(y, pi_c)) with y ~ N(0, I). Labels are optional per
//! cell: the label loss is masked to the labelled ones, and every cell gets a prediction.
//!
//! The hooks in `scdreamer.rs` call [`SupNets::forward`] from the AE graph; nothing here runs
//! when the model is unsupervised (`n_labels == 0`).

use rand_chacha::ChaCha8Rng;

use crate::backend::Backend;
use crate::backend::cpu::step::argmax;
use crate::data::anndata::{Column, Frame};
use crate::data::validate::column_levels;
use crate::model::config::ModelConfig;
use crate::model::dataset::{DeviceData, PreparedData};
use crate::model::networks::{hidden_act, variance};
use crate::model::scdreamer::Scdreamer;
use crate::nn::Linear;
use crate::tape::{GroupId, Indices, Params, Tape, Var};

/// Hidden width of DecoderY (hard-coded 8 in the authors' code, S/model.py:516).
const DECODER_Y_HIDDEN: usize = 8;
/// Below this many labelled cells a type gets a warning.
const MIN_LABELLED_PER_TYPE: usize = 3;

/// The cell-type labels of a dataset: a code per cell (None = unlabelled) and the type names.
#[derive(Clone, Debug, PartialEq)]
pub struct CellLabels {
    /// Code into `categories`; None for unlabelled cells (the unlabelled category or missing).
    pub codes: Vec<Option<u32>>,
    /// Cell types, in the column's category order, without the unlabelled category.
    pub categories: Vec<String>,
}

impl CellLabels {
    /// Number of labelled cells.
    pub fn n_labelled(&self) -> usize {
        self.codes.iter().filter(|c| c.is_some()).count()
    }

    /// Codes and 0/1 mask of `rows`. Unlabelled cells get the dummy code 0, masked out (the
    /// authors give them the first type's one-hot, S/utils.py:133-138).
    pub fn gather(&self, rows: &[u32]) -> (Vec<u32>, Vec<f32>) {
        rows.iter()
            .map(|&r| match self.codes.get(r as usize).copied().flatten() {
                Some(c) => (c, 1.0),
                None => (0, 0.0),
            })
            .unzip()
    }
}

/// Reads the labels column `key` of `obs`. Cells whose value is `unlabeled` or missing (code -1
/// in a categorical, NaN in numbers) are unlabelled. Returns the labels and warnings for the
/// user (a type with fewer than 3 labelled cells, a single type).
///
/// Errors: the key is missing (the message lists the obs keys) or no cell is labelled.
pub fn cell_labels(
    obs: &Frame,
    key: &str,
    unlabeled: &str,
) -> anyhow::Result<(CellLabels, Vec<String>)> {
    let col = obs
        .require(key, "obs")
        .map_err(|e| anyhow::anyhow!("labels {e} (choose one with --labels-key)"))?;
    let (levels, names) = column_levels(col);
    let skip = names.iter().position(|n| n == unlabeled);
    let categories: Vec<String> = names.iter().filter(|n| *n != unlabeled).cloned().collect();
    let codes: Vec<Option<u32>> = levels
        .iter()
        .map(|l| match (*l, skip) {
            (Some(c), Some(s)) if c as usize == s => None,
            (Some(c), Some(s)) if c as usize > s => Some(c - 1),
            (l, _) => l,
        })
        .collect();
    let labels = CellLabels { codes, categories };
    if labels.n_labelled() == 0 {
        anyhow::bail!(
            "obs['{key}'] labels none of the {} cells (all are '{unlabeled}' or missing): \
             run without --labels-key for the unsupervised model",
            levels.len()
        );
    }
    let mut counts = vec![0usize; labels.categories.len()];
    for c in labels.codes.iter().flatten() {
        counts[*c as usize] += 1;
    }
    let mut warnings = Vec::new();
    let rare: Vec<(&String, usize)> = labels
        .categories
        .iter()
        .zip(counts.iter().copied())
        .filter(|&(_, k)| k < MIN_LABELLED_PER_TYPE)
        .collect();
    if let [(name, k)] = rare.as_slice() {
        warnings.push(format!(
            "cell type '{name}' in obs['{key}'] has only {k} labelled cell(s): \
             too few to learn it, its predictions will be unreliable"
        ));
    } else if !rare.is_empty() {
        // One line, however many: a numeric column (one value per cell) is not a label column.
        let shown: Vec<String> = rare
            .iter()
            .take(3)
            .map(|(n, k)| format!("'{n}' ({k})"))
            .collect();
        warnings.push(format!(
            "{} of the {} cell types in obs['{key}'] have fewer than {MIN_LABELLED_PER_TYPE} \
             labelled cells (e.g. {}): too few to learn them, their predictions will be \
             unreliable{}",
            rare.len(),
            labels.categories.len(),
            shown.join(", "),
            if rare.len() * 2 > labels.categories.len() {
                "; is this a label column?"
            } else {
                ""
            }
        ));
    }
    if labels.categories.len() == 1 {
        warnings.push(format!(
            "obs['{key}'] has a single labelled type ('{}'): every cell will be predicted as it",
            labels.categories[0]
        ));
    }
    Ok((labels, warnings))
}

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
    pub fn new<B: Backend>(
        params: &mut Params<B>,
        group: GroupId,
        cfg: &ModelConfig,
        rng: &mut ChaCha8Rng,
    ) -> Self {
        let (z, c, y) = (cfg.latent, cfg.n_labels, cfg.y_dim);
        let label = Linear::new(params, group, "sup_label", z, c, rng);
        let mut widths = vec![z + c];
        widths.extend(&cfg.hidden);
        let enc_y = widths
            .windows(2)
            .enumerate()
            .map(|(i, w)| {
                Linear::new(
                    params,
                    group,
                    &format!("sup_ey_h{}", i + 1),
                    w[0],
                    w[1],
                    rng,
                )
            })
            .collect();
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
        (labels, mask): (Indices<'_, B>, &B::Buf),
        (z, z_mean, z_var): (Var, Var, Var),
        rng: &mut ChaCha8Rng,
    ) -> SupGraph {
        let logits = self.logits(tape, params, z);
        let label_ce = tape.cross_entropy_device_mask(logits, labels, mask);
        // The predicted pi_c feeds the y-VAE for every cell, labelled or not, as in the authors'
        // code. Feeding the true one-hot of labelled cells instead (the paper's figure) measured
        // no better (kang_pbmc, 2 of 5 donors unlabelled: hidden-cell accuracy 0.9949 vs
        // 0.9952, 15-NN purity 0.9970 vs 0.9968), so the faithful version is the only one.
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
            (
                "scdreamer_label".into(),
                Column::Categorical {
                    codes: self.codes.iter().map(|&c| c as i32).collect(),
                    categories: categories.to_vec(),
                    ordered: false,
                },
            ),
            (
                "scdreamer_label_confidence".into(),
                Column::F32(self.confidence.clone()),
            ),
        ]
    }
}

impl<B: Backend> Scdreamer<B> {
    /// Label probabilities softmax(Dense(z_mean)) of cells `rows` (inference, no dropout),
    /// row-major [rows, C]; None for an unsupervised model.
    pub fn label_probs_rows(
        &self,
        tape: &mut Tape<B>,
        data: &DeviceData<B>,
        prep: &PreparedData,
        rows: &[u32],
        batch: &[u32],
        rng: &mut ChaCha8Rng,
    ) -> Option<Vec<f32>> {
        let sup = self.sup.as_ref()?;
        let enc = self.encode_eval(tape, data, prep, rows, batch, rng);
        let logits = sup.logits(tape, &self.params, enc.z_mean);
        let probs = tape.softmax_rows(logits);
        Some(tape.to_host(probs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(col: Column) -> Frame {
        Frame {
            repeated_names: Vec::new(),
            index: (0..col.len()).map(|i| format!("c{i}")).collect(),
            index_name: "_index".into(),
            columns: vec![("cell_type".into(), col)],
        }
    }

    #[test]
    fn unlabelled_category_and_missing_values_are_unlabelled() {
        let col = Column::Categorical {
            codes: vec![0, 1, 2, -1, 2, 0, 0, 2],
            categories: vec!["B".into(), "Unknown".into(), "T".into()],
            ordered: false,
        };
        let (l, w) = cell_labels(&frame(col), "cell_type", "Unknown").unwrap();
        assert_eq!(l.categories, vec!["B", "T"]);
        assert_eq!(
            l.codes,
            vec![
                Some(0),
                None,
                Some(1),
                None,
                Some(1),
                Some(0),
                Some(0),
                Some(1)
            ]
        );
        assert!(w.is_empty(), "{w:?}");
        let (codes, mask) = l.gather(&[1, 2, 0]);
        assert_eq!(codes, vec![0, 1, 0]);
        assert_eq!(mask, vec![0.0, 1.0, 1.0]);
    }

    #[test]
    fn rare_type_warns_and_all_unlabelled_errors() {
        let col = Column::Str(
            ["a", "a", "a", "rare", "?", "?"]
                .iter()
                .map(|s| s.to_string())
                .collect(),
        );
        let (l, w) = cell_labels(&frame(col), "cell_type", "?").unwrap();
        assert_eq!(l.categories, vec!["a", "rare"]);
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].contains("'rare'") && w[0].contains("only 1"), "{w:?}");

        let col = Column::F64(vec![f64::NAN, f64::NAN]);
        let e = cell_labels(&frame(col), "cell_type", "Unknown")
            .unwrap_err()
            .to_string();
        assert!(e.contains("without --labels-key"), "{e}");
        let e = cell_labels(&frame(Column::I32(vec![1])), "celltype", "Unknown")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("'celltype' not found") && e.contains("cell_type"),
            "{e}"
        );
    }

    #[test]
    fn prediction_takes_argmax_and_its_probability() {
        let p = LabelPrediction::from_probs(&[0.2, 0.7, 0.1, 0.6, 0.3, 0.1], 3);
        assert_eq!(p.codes, vec![1, 0]);
        assert_eq!(p.confidence, vec![0.7, 0.6]);
    }
}
