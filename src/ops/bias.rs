//! Bias add: out[i,:] = x[i,:] + b[0,:].

use super::Backend;
use crate::tape::{Params, Tape, Var};

impl<B: Backend> Tape<B> {
    /// x [n,c] plus bias b [1,c] on every row.
    pub fn add_bias(&mut self, x: Var, b: Var) -> Var {
        let c = self.shape(x).1;
        assert_eq!(self.shape(b), (1, c), "add_bias: bias must be 1x{c}");
        self.broadcast_op(x, b, B::add_bias, |t, _, s, g, p| {
            t.add_bias_bwd(g, s.var(0), s.var(1), p)
        })
    }

    fn add_bias_bwd(&mut self, g: &B::Buf, x: Var, b: Var, p: &mut Params<B>) {
        let (_, c) = self.shape(x);
        let mut gx = self.grad_take(x, p);
        let mut gb = self.grad_take(b, p);
        if let Some(gx) = gx.as_mut() {
            self.backend.axpy(1.0, g, gx.buf());
        }
        if let Some(gb) = gb.as_mut() {
            self.backend.col_sum_acc(g, c, gb.buf());
        }
        self.grad_put(gx, p);
        self.grad_put(gb, p);
    }
}

/// Plain reference.
pub fn reference(x: &[f64], b: &[f64]) -> Vec<f64> {
    let c = b.len();
    x.iter().enumerate().map(|(i, &v)| v + b[i % c]).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::gradcheck::{Case, check};

    #[test]
    fn bias_add_matches_reference() {
        for (seed, &(n, c)) in [(1, 1), (1, 9), (13, 1), (6, 7)].iter().enumerate() {
            check(
                Case::new(seed as u64)
                    .input(n, c, -1.0, 1.0)
                    .input(1, c, -1.0, 1.0),
                |t, v| t.add_bias(v[0], v[1]),
                |x| reference(&x[0], &x[1]),
            );
        }
    }
}
