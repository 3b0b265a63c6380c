//! The adversaries of scDREAMER: the discriminator D2 on real and reconstructed cells, and
//! the batch classifier on z.

use rand_chacha::ChaCha8Rng;

use super::{Hidden, NewParams, Pass, SparseInput, hidden_act, linear, param, sparse_first_layer};
use crate::model::config::ModelConfig;
use crate::nn::Linear;
use crate::ops::Backend;
use crate::tape::{Indices, Tape, Var};

/// D2: x (genes) -> hidden -> a linear scalar (no sigmoid). One network for real and x~.
pub struct Discriminator {
    first: Linear,
    hidden: Hidden,
    out: Linear,
}

impl Discriminator {
    pub fn new<B: Backend>(at: NewParams<'_, B>, cfg: &ModelConfig) -> Self {
        let NewParams { params, group, rng } = at;
        let h0 = cfg.hidden[0];
        let last = *cfg.hidden.last().expect("hidden");
        let first = Linear::new(params, group, "dis2_h1", cfg.n_genes, h0, rng);
        let hidden = Hidden::new(params, group, "dis2", &cfg.hidden, rng);
        let out = Linear::new(params, group, "dis2_out", last, 1, rng);
        Discriminator { first, hidden, out }
    }

    /// D2's score of each cell of `x`.
    pub fn forward<B: Backend>(
        &self,
        tape: &mut Tape<B>,
        pass: Pass<'_, B>,
        x: DiscInput<'_, B>,
        rng: &mut ChaCha8Rng,
    ) -> Var {
        // The first layer by hand: real cells are read sparsely.
        let w = param(tape, pass, self.first.w);
        let h = match x {
            DiscInput::Real { input, rows } => sparse_first_layer(tape, input, rows, w),
            DiscInput::Reconstructed(x) => tape.matmul(x, w),
        };
        let b = param(tape, pass, self.first.b);
        let h = tape.add_bias(h, b);
        let h = hidden_act(tape, h, pass.cfg, pass.train, rng);
        let h = self.hidden.forward(tape, pass, h, rng);
        linear(tape, pass, &self.out, h)
    }
}

/// What D2 reads: real cells (read sparsely) or reconstructions (dense).
pub enum DiscInput<'a, B: Backend> {
    Real {
        input: &'a SparseInput<'a, B>,
        rows: Indices<'a, B>,
    },
    Reconstructed(Var),
}

/// A plain MLP classifier: input -> hidden (LReLU, dropout) -> logits. Used for the adversarial
/// batch classifier on z.
pub struct Classifier {
    first: Linear,
    hidden: Hidden,
    out: Linear,
}

impl Classifier {
    /// `prefix`: the parameters' names; `dims`: the input and output widths.
    pub fn new<B: Backend>(
        at: NewParams<'_, B>,
        prefix: &str,
        (n_in, n_out): (usize, usize),
        cfg: &ModelConfig,
    ) -> Self {
        let NewParams { params, group, rng } = at;
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
