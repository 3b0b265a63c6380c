//! Elementwise binary ops, row scaling and column concatenation.

use super::Backend;
use crate::backend::Binary;
use crate::tape::backward::gbuf;
use crate::tape::{BackwardFn, Function, Params, Saved, Tape, Var};

impl<B: Backend> Tape<B> {
    fn binary(&mut self, a: Var, b: Var, f: Binary) -> Var {
        let (r, c) = self.shape(a);
        assert_eq!(
            self.shape(b),
            (r, c),
            "{f:?}: shapes {:?} and {:?} differ",
            (r, c),
            self.shape(b)
        );
        let mut out = self.alloc(r * c);
        let cx = self.ctx();
        cx.b.binary(f, &cx.val(a), &cx.val(b), &mut out);
        let ng = self.needs_grad(a) || self.needs_grad(b);
        let saved = Saved::of(&[a, b]).function(Function::Binary(f));
        self.push_op(r, c, out, ng, saved, |t, _, s, g, p| {
            let Function::Binary(f) = s.function else {
                unreachable!("binary saves its function")
            };
            t.binary_bwd(g, s.var(0), s.var(1), f, p)
        })
    }
    /// a + b (same shape).
    pub fn add(&mut self, a: Var, b: Var) -> Var {
        self.binary(a, b, Binary::Add)
    }
    /// a - b (same shape).
    pub fn sub(&mut self, a: Var, b: Var) -> Var {
        self.binary(a, b, Binary::Sub)
    }
    /// a * b elementwise (same shape).
    pub fn mul(&mut self, a: Var, b: Var) -> Var {
        self.binary(a, b, Binary::Mul)
    }

    /// x [n,m] with row i multiplied by c[i] (c is [n,1]).
    pub fn mul_rows(&mut self, x: Var, c: Var) -> Var {
        let n = self.shape(x).0;
        assert_eq!(self.shape(c), (n, 1), "mul_rows: scale must be {n}x1");
        self.broadcast_op(x, c, B::mul_rows, |t, _, s, g, p| {
            t.mul_rows_bwd(g, s.var(0), s.var(1), p)
        })
    }

    /// An op of x [n,c] and an operand `y` broadcast over it (a bias row, a row scale):
    /// `fwd(x, y, c, out)` forward, `bwd` backward with [x, y] saved.
    pub(super) fn broadcast_op(
        &mut self,
        x: Var,
        y: Var,
        fwd: fn(&B, &B::Buf, &B::Buf, usize, &mut B::Buf),
        bwd: BackwardFn<B>,
    ) -> Var {
        let (n, c) = self.shape(x);
        let mut out = self.alloc(n * c);
        let cx = self.ctx();
        fwd(cx.b, &cx.val(x), &cx.val(y), c, &mut out);
        let ng = self.needs_grad(x) || self.needs_grad(y);
        self.push_op(n, c, out, ng, Saved::of(&[x, y]), bwd)
    }

    /// [a | b] for a [n,ca], b [n,cb].
    pub fn concat_cols(&mut self, a: Var, b: Var) -> Var {
        let (n, ca) = self.shape(a);
        let (nb, cb) = self.shape(b);
        assert_eq!(n, nb, "concat_cols: {n} rows vs {nb} rows");
        let mut out = self.alloc(n * (ca + cb));
        let cx = self.ctx();
        cx.b.concat_cols(&cx.val(a), ca, &cx.val(b), cb, &mut out);
        let ng = self.needs_grad(a) || self.needs_grad(b);
        self.push_op(n, ca + cb, out, ng, Saved::of(&[a, b]), |t, _, s, g, p| {
            t.concat_cols_bwd(g, s.var(0), s.var(1), p)
        })
    }

    fn binary_bwd(&mut self, g: &B::Buf, a: Var, b: Var, f: Binary, p: &mut Params<B>) {
        let mut ga = self.grad_take(a, p);
        let mut gb = self.grad_take(b, p);
        let cx = self.ctx();
        cx.b.binary_bwd(f, &cx.val(a), &cx.val(b), g, gbuf(&mut ga), gbuf(&mut gb));
        self.grad_put(ga, p);
        self.grad_put(gb, p);
    }

    fn mul_rows_bwd(&mut self, g: &B::Buf, x: Var, c: Var, p: &mut Params<B>) {
        let (_, m) = self.shape(x);
        let mut gx = self.grad_take(x, p);
        let mut gc = self.grad_take(c, p);
        let cx = self.ctx();
        cx.b.mul_rows_bwd(&cx.val(x), &cx.val(c), g, m, gbuf(&mut gx), gbuf(&mut gc));
        self.grad_put(gx, p);
        self.grad_put(gc, p);
    }

    fn concat_cols_bwd(&mut self, g: &B::Buf, a: Var, b: Var, p: &mut Params<B>) {
        let (_, ca) = self.shape(a);
        let (_, cb) = self.shape(b);
        let mut ga = self.grad_take(a, p);
        let mut gb = self.grad_take(b, p);
        self.backend
            .concat_cols_bwd(g, ca, cb, gbuf(&mut ga), gbuf(&mut gb));
        self.grad_put(ga, p);
        self.grad_put(gb, p);
    }
}

#[cfg(test)]
mod tests {
    use crate::ops::gradcheck::{Case, check};

    #[test]
    fn add_sub_mul_match_reference() {
        for (s, &(r, c)) in [(1, 1), (1, 8), (7, 3)].iter().enumerate() {
            let case = || {
                Case::new(s as u64)
                    .input(r, c, -2.0, 2.0)
                    .input(r, c, -2.0, 2.0)
            };
            check(
                case(),
                |t, v| t.add(v[0], v[1]),
                |x| x[0].iter().zip(&x[1]).map(|(a, b)| a + b).collect(),
            );
            check(
                case(),
                |t, v| t.sub(v[0], v[1]),
                |x| x[0].iter().zip(&x[1]).map(|(a, b)| a - b).collect(),
            );
            check(
                case(),
                |t, v| t.mul(v[0], v[1]),
                |x| x[0].iter().zip(&x[1]).map(|(a, b)| a * b).collect(),
            );
        }
    }

    #[test]
    fn using_one_input_twice_accumulates() {
        check(
            Case::new(3).input(4, 5, -2.0, 2.0),
            |t, v| t.mul(v[0], v[0]),
            |x| x[0].iter().map(|a| a * a).collect(),
        );
    }

    #[test]
    fn mul_rows_matches_reference() {
        for (s, &(n, m)) in [(1, 1), (1, 6), (9, 4)].iter().enumerate() {
            check(
                Case::new(s as u64)
                    .input(n, m, -2.0, 2.0)
                    .input(n, 1, -2.0, 2.0),
                |t, v| t.mul_rows(v[0], v[1]),
                |x| {
                    x[0].iter()
                        .enumerate()
                        .map(|(i, a)| a * x[1][i / m])
                        .collect()
                },
            );
        }
    }

    #[test]
    fn concat_cols_matches_reference() {
        for (s, &(n, ca, cb)) in [(1, 1, 1), (5, 3, 7), (4, 1, 2)].iter().enumerate() {
            check(
                Case::new(s as u64)
                    .input(n, ca, -2.0, 2.0)
                    .input(n, cb, -2.0, 2.0),
                |t, v| t.concat_cols(v[0], v[1]),
                |x| {
                    (0..n)
                        .flat_map(|i| {
                            x[0][i * ca..(i + 1) * ca]
                                .iter()
                                .chain(&x[1][i * cb..(i + 1) * cb])
                                .copied()
                        })
                        .collect()
                },
            );
        }
    }
}
