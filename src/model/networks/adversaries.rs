//! The adversaries of scDREAMER: the discriminator D2 on real and reconstructed cells, and
//! the batch classifier on z.

use rand_chacha::ChaCha8Rng;

use super::{Hidden, Pass, SparseInput, hidden_act, linear, param, sparse_first_layer};
use crate::model::config::ModelConfig;
use crate::nn::Linear;
use crate::ops::Backend;
use crate::tape::{GroupId, Indices, Init, ParamId, Params, Tape, Var};

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

    fn tail<B: Backend>(
        &self,
        tape: &mut Tape<B>,
        pass: Pass<'_, B>,
        h: Var,
        rng: &mut ChaCha8Rng,
    ) -> Var {
        let b = param(tape, pass, self.b_in);
        let h = tape.add_bias(h, b);
        let h = hidden_act(tape, h, pass.cfg, pass.train, rng);
        let h = self.hidden.forward(tape, pass, h, rng);
        linear(tape, pass, &self.out, h)
    }

    /// D2 on real cells, read sparsely.
    pub fn forward_real<B: Backend>(
        &self,
        tape: &mut Tape<B>,
        pass: Pass<'_, B>,
        input: &SparseInput<B>,
        rows: Indices<'_, B>,
        rng: &mut ChaCha8Rng,
    ) -> Var {
        let w = param(tape, pass, self.w_in);
        let h = sparse_first_layer(tape, input, rows, w);
        self.tail(tape, pass, h, rng)
    }

    /// D2 on reconstructions (dense).
    pub fn forward_dense<B: Backend>(
        &self,
        tape: &mut Tape<B>,
        pass: Pass<'_, B>,
        x: Var,
        rng: &mut ChaCha8Rng,
    ) -> Var {
        let w = param(tape, pass, self.w_in);
        let h = tape.matmul(x, w);
        self.tail(tape, pass, h, rng)
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

    pub fn forward<B: Backend>(
        &self,
        tape: &mut Tape<B>,
        pass: Pass<'_, B>,
        x: Var,
        rng: &mut ChaCha8Rng,
    ) -> Var {
        let h = linear(tape, pass, &self.first, x);
        let h = hidden_act(tape, h, pass.cfg, pass.train, rng);
        let h = self.hidden.forward(tape, pass, h, rng);
        linear(tape, pass, &self.out, h)
    }
}
