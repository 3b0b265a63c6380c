//! Sums and means.

use super::Backend;
use crate::tape::{Params, Saved, Tape, Var};

impl<B: Backend> Tape<B> {
    fn sum_scaled(&mut self, x: Var, scale: f32) -> Var {
        let mut out = self.alloc(1);
        let cx = self.ctx();
        cx.b.sum_all(&cx.val(x), &mut out);
        if scale != 1.0 {
            let mut s = self.alloc(1);
            self.backend
                .unary(crate::backend::Unary::Scale(scale), &out, &mut s);
            self.pool.give(&self.backend, out);
            out = s;
        }
        let ng = self.needs_grad(x);
        self.push_op(
            1,
            1,
            out,
            ng,
            Saved::of(&[x]).scalars([scale, 0.0]),
            |t, _, s, g, p| t.sum_bwd(g, s.var(0), s.scalars[0], p),
        )
    }
    /// Sum of all elements -> [1,1].
    pub fn sum(&mut self, x: Var) -> Var {
        self.sum_scaled(x, 1.0)
    }
    /// Mean of all elements -> [1,1].
    pub fn mean(&mut self, x: Var) -> Var {
        let (r, c) = self.shape(x);
        self.sum_scaled(x, 1.0 / (r * c).max(1) as f32)
    }
    /// Row sums [n,c] -> [n,1].
    pub fn sum_rows(&mut self, x: Var) -> Var {
        let (n, c) = self.shape(x);
        let mut out = self.alloc(n);
        let cx = self.ctx();
        cx.b.sum_rows(&cx.val(x), c, &mut out);
        let ng = self.needs_grad(x);
        self.push_op(n, 1, out, ng, Saved::of(&[x]), |t, _, s, g, p| {
            t.sum_rows_bwd(g, s.var(0), p)
        })
    }

    fn sum_bwd(&mut self, g: &B::Buf, x: Var, scale: f32, p: &mut Params<B>) {
        let mut gx = self.grad_take(x, p);
        if let Some(gx) = gx.as_mut() {
            self.backend.broadcast_acc(g, scale, gx.buf());
        }
        self.grad_put(gx, p);
    }

    fn sum_rows_bwd(&mut self, g: &B::Buf, x: Var, p: &mut Params<B>) {
        let (_, c) = self.shape(x);
        let mut gx = self.grad_take(x, p);
        if let Some(gx) = gx.as_mut() {
            self.backend.sum_rows_bwd(g, c, gx.buf());
        }
        self.grad_put(gx, p);
    }
}

#[cfg(test)]
mod tests {
    use crate::ops::gradcheck::{Case, check};

    #[test]
    fn sums_and_means_match_reference() {
        for (s, &(n, c)) in [(1, 1), (1, 9), (7, 3), (150, 300)].iter().enumerate() {
            let case = || Case::new(s as u64).input(n, c, -2.0, 2.0).samples(30);
            check(case(), |t, v| t.sum(v[0]), |x| vec![x[0].iter().sum()]);
            check(
                case(),
                |t, v| t.mean(v[0]),
                |x| vec![x[0].iter().sum::<f64>() / (n * c) as f64],
            );
            check(
                case(),
                |t, v| t.sum_rows(v[0]),
                |x| x[0].chunks(c).map(|r| r.iter().sum()).collect(),
            );
        }
    }
}
