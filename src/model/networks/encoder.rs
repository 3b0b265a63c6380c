//! The encoder q(z | x, s) of scDREAMER.

use rand_chacha::ChaCha8Rng;

use super::{
    BatchFirstLayer, Hidden, NewParams, Pass, SparseInput, hidden_act, sparse_first_layer, variance,
};
use crate::model::config::ModelConfig;
use crate::nn::Linear;
use crate::ops::Backend;
use crate::tape::{Indices, Tape, Var};

/// Encoder q(z | x, s) (and q(l | x, s) for the authors' latent library size).
pub struct Encoder {
    first: BatchFirstLayer,
    hidden: Hidden,
    z_mean: Linear,
    z_var: Linear,
    /// Library branch: ReLU(Dense(h -> latent)) -> mean, variance (authors' target only).
    lib: Option<(Linear, Linear, Linear)>,
}

pub struct EncoderOut {
    pub z_mean: Var,
    pub z_var: Var,
    pub lib: Option<(Var, Var)>,
}

impl Encoder {
    /// `latent_library`: also q(l | x, s) (the authors' target).
    pub fn new<B: Backend>(at: NewParams<'_, B>, cfg: &ModelConfig, latent_library: bool) -> Self {
        let NewParams { params, group, rng } = at;
        let h0 = cfg.hidden[0];
        let last = *cfg.hidden.last().expect("at least one hidden layer");
        let dims = (cfg.n_genes, cfg.n_batches, h0);
        let first = BatchFirstLayer::new(params, group, "enc", dims, rng);
        let hidden = Hidden::new(params, group, "enc", &cfg.hidden, rng);
        let z_mean = Linear::new(params, group, "enc_z_mean", last, cfg.latent, rng);
        let z_var = Linear::new(params, group, "enc_z_var", last, cfg.latent, rng);
        let lib = latent_library.then(|| {
            (
                Linear::new(params, group, "enc_l_h", last, cfg.latent, rng),
                Linear::new(params, group, "enc_l_mean", cfg.latent, 1, rng),
                Linear::new(params, group, "enc_l_var", cfg.latent, 1, rng),
            )
        });
        Encoder {
            first,
            hidden,
            z_mean,
            z_var,
            lib,
        }
    }

    /// `gene_mask`: a [genes, 1] constant of 0/1 that drops gene columns (masked-input branch).
    /// The encoder is never frozen (`pass.frozen` is not read).
    pub fn forward<B: Backend>(
        &self,
        tape: &mut Tape<B>,
        pass: Pass<'_, B>,
        input: &SparseInput<B>,
        (rows, batch): (Indices<'_, B>, Indices<'_, B>),
        gene_mask: Option<Var>,
        rng: &mut ChaCha8Rng,
    ) -> EncoderOut {
        let (params, cfg, train) = (pass.params, pass.cfg, pass.train);
        let mut w = tape.param(params, self.first.w);
        if let Some(m) = gene_mask {
            w = tape.mul_rows(w, m);
        }
        let h = sparse_first_layer(tape, input, rows, w);
        // Without `encode_batch` the batch weights stay in the model, unused (zero gradient, so
        // Adam leaves them at their initial values): the initialisation stream and the saved
        // weights keep one layout whichever way the flag is set.
        let h = if cfg.encode_batch {
            let wb = tape.param(params, self.first.w_batch);
            tape.add_row_gather(h, wb, batch)
        } else {
            h
        };
        let b = tape.param(params, self.first.b);
        let h = tape.add_bias(h, b);
        let h = hidden_act(tape, h, cfg, train, rng);
        let h = self.hidden.forward(tape, pass.frozen(false), h, rng);
        let z_mean = self.z_mean.forward(tape, params, h);
        let zv = self.z_var.forward(tape, params, h);
        let z_var = variance(tape, zv, cfg.variance_head);
        let lib = self.lib.as_ref().map(|(lh, lm, lv)| {
            let hl = lh.forward(tape, params, h);
            let hl = tape.relu(hl);
            let m = lm.forward(tape, params, hl);
            let v = lv.forward(tape, params, hl);
            (m, variance(tape, v, cfg.variance_head))
        });
        EncoderOut { z_mean, z_var, lib }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::cpu::Cpu;
    use crate::data::Csr;
    use crate::tape::{CsrData, InputTransform, Params};
    use rand::SeedableRng;

    /// With `encode_batch` off, z depends on the counts only: the same cells labelled with
    /// other batches get the same posterior; with it on (the authors' E(x, s)) they do not.
    #[test]
    fn encode_batch_off_makes_z_independent_of_the_batch() {
        let (genes, batches) = (5, 3);
        let counts = Csr {
            n_rows: 2,
            n_cols: genes,
            indptr: vec![0, 2, 5],
            indices: vec![0, 3, 1, 2, 4],
            data: vec![3.0, 1.0, 2.0, 7.0, 1.0],
        };
        let backend = Cpu::new();
        let data = CsrData::upload(&backend, &counts, Some(&[1.0, 0.5])).unwrap();
        let input = SparseInput {
            data: &data,
            transform: InputTransform::Log1pScaled,
            scale: 0.5,
            dense: None,
        };
        for encode_batch in [false, true] {
            let mut cfg = ModelConfig::default_preset(genes, batches, 0);
            cfg.encode_batch = encode_batch;
            let mut rng = ChaCha8Rng::seed_from_u64(5);
            let mut params = Params::new(backend.clone());
            let g = params.group("encoder");
            let enc = Encoder::new(NewParams::new(&mut params, g, &mut rng), &cfg, false);
            let run = |batch: &[u32], rng: &mut ChaCha8Rng| {
                let mut tape = Tape::new(backend.clone());
                let out = enc.forward(
                    &mut tape,
                    Pass::eval(&params, &cfg),
                    &input,
                    ((&[0, 1]).into(), batch.into()),
                    None,
                    rng,
                );
                (tape.to_host(out.z_mean), tape.to_host(out.z_var))
            };
            let a = run(&[0, 1], &mut rng);
            let b = run(&[2, 0], &mut rng);
            assert!(a.0.iter().chain(&a.1).all(|v| v.is_finite()));
            if encode_batch {
                assert_ne!(a.0, b.0, "E(x, s) must read the batch");
            } else {
                assert_eq!(a, b, "E(x) must not read the batch");
            }
        }
    }
}
