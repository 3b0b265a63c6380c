//! The decoder p(x | z, s) of scDREAMER.

use rand_chacha::ChaCha8Rng;

use super::{BatchFirstLayer, Hidden, NewParams, Pass, hidden_act};
use crate::model::config::ModelConfig;
use crate::nn::Linear;
use crate::ops::Backend;
use crate::tape::{Indices, Init, ParamId, Tape, Var};

/// Decoder p(x | z, s): softmax scale, dropout logits, and the sigmoid "reconstruction" x~ that
/// the discriminator sees. The dispersion is a per-gene parameter, shared across batches.
pub struct Decoder {
    first: BatchFirstLayer,
    hidden: Hidden,
    scale: Linear,
    dropout: Option<Linear>,
    xhat: Linear,
    pub log_theta: ParamId,
    /// Per-batch, per-gene offsets of the scale and dropout logits (`batch_gene_offsets`).
    batch_gene: Option<(ParamId, Option<ParamId>)>,
}

pub struct DecoderOut {
    /// Softmax over genes (rho), rows sum to 1.
    pub rho: Var,
    pub dropout_logit: Option<Var>,
    /// sigmoid reconstruction in (0, 1).
    pub xhat: Var,
}

impl Decoder {
    pub fn new<B: Backend>(at: NewParams<'_, B>, cfg: &ModelConfig) -> Self {
        let NewParams { params, group, rng } = at;
        let widths: Vec<usize> = cfg.hidden.iter().rev().copied().collect();
        let h0 = widths[0];
        let last = *widths.last().expect("at least one hidden layer");
        let dims = (cfg.latent, cfg.n_batches, h0);
        let first = BatchFirstLayer::new(params, group, "dec", dims, rng);
        let hidden = Hidden::new(params, group, "dec", &widths, rng);
        let scale = Linear::new(params, group, "dec_scale", last, cfg.n_genes, rng);
        let zinb = cfg.likelihood == crate::model::config::Likelihood::Zinb;
        let dropout =
            zinb.then(|| Linear::new(params, group, "dec_dropout", last, cfg.n_genes, rng));
        let xhat = Linear::new(params, group, "dec_xhat", last, cfg.n_genes, rng);
        // r ~ N(0, 1) per gene, theta = exp(r) (authors: dec_x_post_r).
        let log_theta = params.add(
            group,
            "dec_log_theta",
            1,
            cfg.n_genes,
            Init::Normal(1.0),
            rng,
        );
        // Created last and zero-initialised, so the other weights draw the same random numbers
        // with and without them.
        let batch_gene = cfg.batch_gene_offsets.then(|| {
            let g = cfg.n_genes;
            let s = params.add(group, "dec_scale_batch", cfg.n_batches, g, Init::Zeros, rng);
            let d = zinb.then(|| {
                params.add(
                    group,
                    "dec_dropout_batch",
                    cfg.n_batches,
                    g,
                    Init::Zeros,
                    rng,
                )
            });
            (s, d)
        });
        Decoder {
            first,
            hidden,
            scale,
            dropout,
            xhat,
            log_theta,
            batch_gene,
        }
    }

    /// The decoder is never frozen (`pass.frozen` is not read). `want_xhat`: also the sigmoid
    /// reconstruction (else `xhat` is `rho`).
    pub fn forward<B: Backend>(
        &self,
        tape: &mut Tape<B>,
        pass: Pass<'_, B>,
        z: Var,
        batch: Indices<'_, B>,
        want_xhat: bool,
        rng: &mut ChaCha8Rng,
    ) -> DecoderOut {
        let (params, cfg, train) = (pass.params, pass.cfg, pass.train);
        let wz = tape.param(params, self.first.w);
        let h = tape.matmul(z, wz);
        let wb = tape.param(params, self.first.w_batch);
        let h = tape.add_row_gather(h, wb, batch);
        let b = tape.param(params, self.first.b);
        let h = tape.add_bias(h, b);
        let h = hidden_act(tape, h, cfg, train, rng);
        let h = self.hidden.forward(tape, pass.frozen(false), h, rng);
        let mut s = self.scale.forward(tape, params, h);
        let mut dropout_logit = self.dropout.as_ref().map(|l| l.forward(tape, params, h));
        if let Some((ws, wd)) = self.batch_gene {
            let ws = tape.param(params, ws);
            s = tape.add_row_gather(s, ws, batch);
            if let (Some(wd), Some(d)) = (wd, dropout_logit) {
                let wd = tape.param(params, wd);
                dropout_logit = Some(tape.add_row_gather(d, wd, batch));
            }
        }
        let rho = tape.softmax_rows(s);
        let xhat = if want_xhat {
            let x = self.xhat.forward(tape, params, h);
            tape.sigmoid(x)
        } else {
            rho
        };
        DecoderOut {
            rho,
            dropout_logit,
            xhat,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::cpu::Cpu;
    use crate::tape::Params;
    use rand::SeedableRng;

    /// The per-batch, per-gene offsets act exactly as a batch-specific gene factor on rho
    /// (softmax of shifted logits) and as a shift of the dropout logits, and only for the
    /// cells of that batch.
    #[test]
    fn batch_gene_offsets_scale_one_gene_of_one_batch() {
        let (genes, batches) = (6, 2);
        let mut cfg = ModelConfig::default_preset(genes, batches, 0);
        cfg.batch_gene_offsets = true;
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let mut params = Params::new(Cpu::new());
        let g = params.group("decoder");
        let dec = Decoder::new(NewParams::new(&mut params, g, &mut rng), &cfg);
        let run = |params: &Params<Cpu>, rng: &mut ChaCha8Rng| {
            let mut tape = Tape::new(Cpu::new());
            let z = tape.input(2, cfg.latent, &[0.3; 20]);
            let out = dec.forward(
                &mut tape,
                Pass::eval(params, &cfg),
                z,
                (&[0, 1]).into(),
                false,
                rng,
            );
            let d = out.dropout_logit.expect("ZINB has dropout logits");
            (tape.to_host(out.rho), tape.to_host(d))
        };
        let (rho0, d0) = run(&params, &mut rng);
        let s = params.find("dec_scale_batch").unwrap();
        let d = params.find("dec_dropout_batch").unwrap();
        let mut table = vec![0.0f32; batches * genes];
        table[genes + 2] = 1.0; // batch 1, gene 2
        params.set_value(s, &table).unwrap();
        params.set_value(d, &table).unwrap();
        let (rho1, d1) = run(&params, &mut rng);
        assert_eq!(rho1[..genes], rho0[..genes], "batch 0 must not change");
        for j in 0..genes {
            let ratio = (rho1[genes + 2] / rho1[genes + j]) / (rho0[genes + 2] / rho0[genes + j]);
            let want = if j == 2 { 1.0 } else { std::f32::consts::E };
            assert!(
                (ratio - want).abs() < 1e-4,
                "gene {j}: ratio {ratio}, want {want}"
            );
            let shift = d1[genes + j] - d0[genes + j];
            let want = if j == 2 { 1.0 } else { 0.0 };
            assert!((shift - want).abs() < 1e-6, "dropout logit shift {shift}");
        }
    }
}
