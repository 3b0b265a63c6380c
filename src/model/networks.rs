//! The networks of scDREAMER (spec section 2): encoder, decoder, discriminator D2 and the
//! adversarial batch classifier. Every hidden layer is Dense -> LeakyReLU(0.2) -> inverted
//! dropout; there is no batch or layer norm (is_bn=False in the authors' code).

use rand_chacha::ChaCha8Rng;

use crate::backend::Backend;
use crate::model::config::{ModelConfig, VarianceHead};
use crate::nn::Linear;
use crate::tape::{CsrData, GroupId, Indices, Init, InputTransform, ParamId, Params, Tape, Var};

/// Glorot-uniform with explicit fans: the batch one-hot columns share the fan-in of the layer
/// they are concatenated into in the authors' code (concat[x, onehot(s)] -> Dense).
fn glorot(fan_in: usize, fan_out: usize) -> Init {
    let l = (6.0 / (fan_in + fan_out) as f32).sqrt();
    Init::Uniform(-l, l)
}

/// A parameter on the tape; `frozen` detaches it so that no gradient is computed for it (the
/// adversaries inside the autoencoder's loss, which the AE optimiser does not move).
fn param<B: Backend>(tape: &mut Tape<B>, params: &Params<B>, id: ParamId, frozen: bool) -> Var {
    let v = tape.param(params, id);
    if frozen { tape.detach(v) } else { v }
}

/// `x W + b`, with the parameters optionally frozen.
fn linear<B: Backend>(
    tape: &mut Tape<B>,
    params: &Params<B>,
    l: &Linear,
    x: Var,
    frozen: bool,
) -> Var {
    let w = param(tape, params, l.w, frozen);
    let b = param(tape, params, l.b, frozen);
    let h = tape.matmul(x, w);
    tape.add_bias(h, b)
}

/// Dense -> LeakyReLU -> dropout (training only).
pub fn hidden_act<B: Backend>(
    tape: &mut Tape<B>,
    h: Var,
    cfg: &ModelConfig,
    train: bool,
    rng: &mut ChaCha8Rng,
) -> Var {
    let h = tape.leaky_relu(h, cfg.leak);
    if train && cfg.keep_prob < 1.0 {
        tape.dropout(h, cfg.keep_prob, rng)
    } else {
        h
    }
}

/// A variance head: the authors' unbounded `exp`, or `exp(clamp(h)) + 1e-4`.
pub fn variance<B: Backend>(tape: &mut Tape<B>, h: Var, head: VarianceHead) -> Var {
    match head {
        VarianceHead::Exp => tape.exp(h),
        VarianceHead::SafeExp => {
            let c = tape.clamp(h, -15.0, 15.0);
            let e = tape.exp(c);
            tape.add_scalar(e, 1e-4)
        }
    }
}

/// Where the first layer of the encoder and the discriminator read the cells from.
pub struct SparseInput<'a, B: Backend> {
    pub data: &'a CsrData<B>,
    pub transform: InputTransform,
    /// Multiplies the first layer's output: folds a global scale of the input (1/max) into it.
    pub scale: f32,
}

/// First layer applied to sparse input: `scale * T(X[rows]) W`.
fn sparse_first_layer<B: Backend>(
    tape: &mut Tape<B>,
    input: &SparseInput<B>,
    rows: Indices<'_, B>,
    w: Var,
) -> Var {
    let h = tape.csr_matmul(input.data, rows, input.transform, w);
    if input.scale != 1.0 {
        tape.scale(h, input.scale)
    } else {
        h
    }
}

/// Stack of hidden layers after the first one.
pub struct Hidden {
    layers: Vec<Linear>,
}

impl Hidden {
    fn new<B: Backend>(
        params: &mut Params<B>,
        group: GroupId,
        prefix: &str,
        widths: &[usize],
        rng: &mut ChaCha8Rng,
    ) -> Self {
        let layers = widths
            .windows(2)
            .enumerate()
            .map(|(i, w)| {
                Linear::new(
                    params,
                    group,
                    &format!("{prefix}_h{}", i + 2),
                    w[0],
                    w[1],
                    rng,
                )
            })
            .collect();
        Hidden { layers }
    }

    #[allow(clippy::too_many_arguments)]
    fn forward<B: Backend>(
        &self,
        tape: &mut Tape<B>,
        params: &Params<B>,
        mut h: Var,
        cfg: &ModelConfig,
        train: bool,
        frozen: bool,
        rng: &mut ChaCha8Rng,
    ) -> Var {
        for l in &self.layers {
            h = linear(tape, params, l, h, frozen);
            h = hidden_act(tape, h, cfg, train, rng);
        }
        h
    }
}

/// Encoder q(z | x, s) (and q(l | x, s) for the authors' latent library size).
pub struct Encoder {
    w_in: ParamId,
    w_batch: ParamId,
    b_in: ParamId,
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
    pub fn new<B: Backend>(
        params: &mut Params<B>,
        group: GroupId,
        cfg: &ModelConfig,
        latent_library: bool,
        rng: &mut ChaCha8Rng,
    ) -> Self {
        let h0 = cfg.hidden[0];
        let last = *cfg.hidden.last().expect("at least one hidden layer");
        // The one-hot batch columns are rows of the same Glorot-initialised weight matrix as the
        // genes in the authors' code (concat[x, onehot(s)] -> Dense), so they share its fan-in.
        let fan_in = cfg.n_genes + cfg.n_batches;
        let w_in = params.add(group, "enc_h1_w", cfg.n_genes, h0, glorot(fan_in, h0), rng);
        let w_batch = params.add(
            group,
            "enc_h1_wbatch",
            cfg.n_batches,
            h0,
            glorot(fan_in, h0),
            rng,
        );
        let b_in = params.add(group, "enc_h1_b", 1, h0, Init::Zeros, rng);
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
            w_in,
            w_batch,
            b_in,
            hidden,
            z_mean,
            z_var,
            lib,
        }
    }

    /// `gene_mask`: a [genes, 1] constant of 0/1 that drops gene columns (masked-input branch).
    #[allow(clippy::too_many_arguments)]
    pub fn forward<B: Backend>(
        &self,
        tape: &mut Tape<B>,
        params: &Params<B>,
        input: &SparseInput<B>,
        rows: Indices<'_, B>,
        batch: Indices<'_, B>,
        gene_mask: Option<Var>,
        cfg: &ModelConfig,
        train: bool,
        rng: &mut ChaCha8Rng,
    ) -> EncoderOut {
        let mut w = tape.param(params, self.w_in);
        if let Some(m) = gene_mask {
            w = tape.mul_rows(w, m);
        }
        let h = sparse_first_layer(tape, input, rows, w);
        // Without `encode_batch` the batch weights stay in the model, unused (zero gradient, so
        // Adam leaves them at their initial values): the initialisation stream and the saved
        // weights keep one layout whichever way the flag is set.
        let h = if cfg.encode_batch {
            let wb = tape.param(params, self.w_batch);
            tape.add_row_gather(h, wb, batch)
        } else {
            h
        };
        let b = tape.param(params, self.b_in);
        let h = tape.add_bias(h, b);
        let h = hidden_act(tape, h, cfg, train, rng);
        let h = self.hidden.forward(tape, params, h, cfg, train, false, rng);
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

/// Decoder p(x | z, s): softmax scale, dropout logits, and the sigmoid "reconstruction" x~ that
/// the discriminator sees. The dispersion is a per-gene parameter, shared across batches.
pub struct Decoder {
    w_z: ParamId,
    w_batch: ParamId,
    b: ParamId,
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
    pub fn new<B: Backend>(
        params: &mut Params<B>,
        group: GroupId,
        cfg: &ModelConfig,
        rng: &mut ChaCha8Rng,
    ) -> Self {
        let widths: Vec<usize> = cfg.hidden.iter().rev().copied().collect();
        let h0 = widths[0];
        let last = *widths.last().expect("at least one hidden layer");
        let fan_in = cfg.latent + cfg.n_batches;
        let w_z = params.add(group, "dec_h1_w", cfg.latent, h0, glorot(fan_in, h0), rng);
        let w_batch = params.add(
            group,
            "dec_h1_wbatch",
            cfg.n_batches,
            h0,
            glorot(fan_in, h0),
            rng,
        );
        let b = params.add(group, "dec_h1_b", 1, h0, Init::Zeros, rng);
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
            w_z,
            w_batch,
            b,
            hidden,
            scale,
            dropout,
            xhat,
            log_theta,
            batch_gene,
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub fn forward<B: Backend>(
        &self,
        tape: &mut Tape<B>,
        params: &Params<B>,
        z: Var,
        batch: Indices<'_, B>,
        cfg: &ModelConfig,
        train: bool,
        want_xhat: bool,
        rng: &mut ChaCha8Rng,
    ) -> DecoderOut {
        let wz = tape.param(params, self.w_z);
        let h = tape.matmul(z, wz);
        let wb = tape.param(params, self.w_batch);
        let h = tape.add_row_gather(h, wb, batch);
        let b = tape.param(params, self.b);
        let h = tape.add_bias(h, b);
        let h = hidden_act(tape, h, cfg, train, rng);
        let h = self.hidden.forward(tape, params, h, cfg, train, false, rng);
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

/// D2: x (genes) -> hidden -> a linear scalar (no sigmoid). One network for real and x~.
pub struct Discriminator {
    w_in: ParamId,
    b_in: ParamId,
    hidden: Hidden,
    out: Linear,
}

impl Discriminator {
    pub fn new<B: Backend>(
        params: &mut Params<B>,
        group: GroupId,
        cfg: &ModelConfig,
        rng: &mut ChaCha8Rng,
    ) -> Self {
        let h0 = cfg.hidden[0];
        let last = *cfg.hidden.last().expect("hidden");
        let w_in = params.add(
            group,
            "dis2_h1_w",
            cfg.n_genes,
            h0,
            Init::GlorotUniform,
            rng,
        );
        let b_in = params.add(group, "dis2_h1_b", 1, h0, Init::Zeros, rng);
        let hidden = Hidden::new(params, group, "dis2", &cfg.hidden, rng);
        let out = Linear::new(params, group, "dis2_out", last, 1, rng);
        Discriminator {
            w_in,
            b_in,
            hidden,
            out,
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn tail<B: Backend>(
        &self,
        tape: &mut Tape<B>,
        params: &Params<B>,
        h: Var,
        cfg: &ModelConfig,
        train: bool,
        frozen: bool,
        rng: &mut ChaCha8Rng,
    ) -> Var {
        let b = param(tape, params, self.b_in, frozen);
        let h = tape.add_bias(h, b);
        let h = hidden_act(tape, h, cfg, train, rng);
        let h = self
            .hidden
            .forward(tape, params, h, cfg, train, frozen, rng);
        linear(tape, params, &self.out, h, frozen)
    }

    /// D2 on real cells, read sparsely. `frozen`: no gradients for D's own weights.
    #[allow(clippy::too_many_arguments)]
    pub fn forward_real<B: Backend>(
        &self,
        tape: &mut Tape<B>,
        params: &Params<B>,
        input: &SparseInput<B>,
        rows: Indices<'_, B>,
        cfg: &ModelConfig,
        train: bool,
        frozen: bool,
        rng: &mut ChaCha8Rng,
    ) -> Var {
        let w = param(tape, params, self.w_in, frozen);
        let h = sparse_first_layer(tape, input, rows, w);
        self.tail(tape, params, h, cfg, train, frozen, rng)
    }

    /// D2 on reconstructions (dense).
    #[allow(clippy::too_many_arguments)]
    pub fn forward_dense<B: Backend>(
        &self,
        tape: &mut Tape<B>,
        params: &Params<B>,
        x: Var,
        cfg: &ModelConfig,
        train: bool,
        frozen: bool,
        rng: &mut ChaCha8Rng,
    ) -> Var {
        let w = param(tape, params, self.w_in, frozen);
        let h = tape.matmul(x, w);
        self.tail(tape, params, h, cfg, train, frozen, rng)
    }
}

/// A plain MLP classifier: input -> hidden (LReLU, dropout) -> logits. Used for the adversarial
/// batch classifier on z.
pub struct Classifier {
    first: Linear,
    hidden: Hidden,
    out: Linear,
}

impl Classifier {
    pub fn new<B: Backend>(
        params: &mut Params<B>,
        group: GroupId,
        prefix: &str,
        n_in: usize,
        n_out: usize,
        cfg: &ModelConfig,
        rng: &mut ChaCha8Rng,
    ) -> Self {
        let widths: Vec<usize> = cfg.hidden.iter().rev().copied().collect();
        let first = Linear::new(params, group, &format!("{prefix}_h1"), n_in, widths[0], rng);
        let hidden = Hidden::new(params, group, prefix, &widths, rng);
        let out = Linear::new(
            params,
            group,
            &format!("{prefix}_out"),
            *widths.last().unwrap(),
            n_out,
            rng,
        );
        Classifier { first, hidden, out }
    }

    /// `frozen`: no gradients for the classifier's own weights.
    #[allow(clippy::too_many_arguments)]
    pub fn forward<B: Backend>(
        &self,
        tape: &mut Tape<B>,
        params: &Params<B>,
        x: Var,
        cfg: &ModelConfig,
        train: bool,
        frozen: bool,
        rng: &mut ChaCha8Rng,
    ) -> Var {
        let h = linear(tape, params, &self.first, x, frozen);
        let h = hidden_act(tape, h, cfg, train, rng);
        let h = self
            .hidden
            .forward(tape, params, h, cfg, train, frozen, rng);
        linear(tape, params, &self.out, h, frozen)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::cpu::Cpu;
    use crate::data::Csr;
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
        let dec = Decoder::new(&mut params, g, &cfg, &mut rng);
        let run = |params: &Params<Cpu>, rng: &mut ChaCha8Rng| {
            let mut tape = Tape::new(Cpu::new());
            let z = tape.input(2, cfg.latent, &[0.3; 20]);
            let out = dec.forward(
                &mut tape,
                params,
                z,
                (&[0, 1]).into(),
                &cfg,
                false,
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
        };
        for encode_batch in [false, true] {
            let mut cfg = ModelConfig::default_preset(genes, batches, 0);
            cfg.encode_batch = encode_batch;
            let mut rng = ChaCha8Rng::seed_from_u64(5);
            let mut params = Params::new(backend.clone());
            let g = params.group("encoder");
            let enc = Encoder::new(&mut params, g, &cfg, false, &mut rng);
            let run = |batch: &[u32], rng: &mut ChaCha8Rng| {
                let mut tape = Tape::new(backend.clone());
                let out = enc.forward(
                    &mut tape,
                    &params,
                    &input,
                    (&[0, 1]).into(),
                    batch.into(),
                    None,
                    &cfg,
                    false,
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
