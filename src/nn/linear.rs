//! Dense layers.

use crate::ops::Backend;
use crate::tape::{GroupId, Init, ParamId, Params, Tape, Var};
use rand_chacha::ChaCha8Rng;

/// y = x W + b with W [in, out] (Glorot-uniform) and b [1, out] (zeros).
#[derive(Clone, Copy, Debug)]
pub struct Linear {
    pub w: ParamId,
    pub b: ParamId,
    pub d_in: usize,
    pub d_out: usize,
}

impl Linear {
    /// Parameters `{name}_w` and `{name}_b` in `group`.
    pub fn new<B: Backend>(
        params: &mut Params<B>,
        group: GroupId,
        name: &str,
        d_in: usize,
        d_out: usize,
        rng: &mut ChaCha8Rng,
    ) -> Self {
        let w = params.add(
            group,
            &format!("{name}_w"),
            d_in,
            d_out,
            Init::GlorotUniform,
            rng,
        );
        let b = params.add(group, &format!("{name}_b"), 1, d_out, Init::Zeros, rng);
        Linear { w, b, d_in, d_out }
    }

    pub fn forward<B: Backend>(&self, tape: &mut Tape<B>, params: &Params<B>, x: Var) -> Var {
        let w = tape.param(params, self.w);
        let b = tape.param(params, self.b);
        let h = tape.matmul(x, w);
        tape.add_bias(h, b)
    }
}
