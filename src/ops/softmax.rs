//! Row-wise softmax.

use crate::backend::Backend;
use crate::tape::{Op, Params, Tape, Var};

impl<B: Backend> Tape<B> {
    /// softmax over each row of x [n,c].
    pub fn softmax_rows(&mut self, x: Var) -> Var {
        let (n, c) = self.shape(x);
        let mut out = self.alloc(n * c);
        let cx = self.ctx();
        cx.b.softmax_rows(&cx.val(x), c, &mut out);
        let ng = self.needs_grad(x);
        self.push(n, c, out, Op::Softmax { x }, ng)
    }

    pub(crate) fn softmax_bwd(&mut self, out: Var, g: &B::Buf, x: Var, p: &mut Params<B>) {
        let (_, c) = self.shape(x);
        let mut gx = self.grad_take(x, p);
        if let Some(gx) = gx.as_mut() {
            let cx = self.ctx();
            cx.b.softmax_rows_bwd(&cx.val(out), g, c, gx.buf());
        }
        self.grad_put(gx, p);
    }
}

/// Plain f64 reference.
pub fn reference(x: &[f64], cols: usize) -> Vec<f64> {
    x.chunks(cols)
        .flat_map(|r| {
            let s: f64 = r.iter().map(|v| v.exp()).sum();
            r.iter().map(move |v| v.exp() / s)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::gradcheck::{Case, check};

    #[test]
    fn softmax_matches_reference() {
        for (s, &(n, c)) in [(1, 1), (1, 7), (6, 5), (3, 40)].iter().enumerate() {
            check(
                Case::new(s as u64).input(n, c, -3.0, 3.0),
                |t, v| t.softmax_rows(v[0]),
                |x| reference(&x[0], c),
            );
        }
    }
}
