//! Dense matmul with optional transposes: C = op(A) op(B).

use super::Backend;
use crate::backend::GemmSpec;
use crate::tape::{Params, Saved, Tape, Var};

impl<B: Backend> Tape<B> {
    /// a [m,k] x b [k,n] -> [m,n].
    pub fn matmul(&mut self, a: Var, b: Var) -> Var {
        self.matmul_t(a, b, false, false)
    }

    /// op(a) x op(b), where op transposes when the flag is set.
    pub fn matmul_t(&mut self, a: Var, b: Var, trans_a: bool, trans_b: bool) -> Var {
        let (m, k, n) = self.matmul_dims(a, b, trans_a, trans_b);
        let mut out = self.alloc(m * n);
        let spec = GemmSpec::product(m, n, k, trans_a, trans_b);
        let cx = self.ctx();
        cx.b.gemm(spec, &cx.val(a), &cx.val(b), &mut out);
        let ng = self.needs_grad(a) || self.needs_grad(b);
        let saved = Saved::of(&[a, b]).flags(trans_a as u32 | (trans_b as u32) << 1);
        self.push_op(m, n, out, ng, saved, |t, _, s, g, p| {
            t.matmul_bwd(g, s.var(0), s.var(1), s.flag(0), s.flag(1), p)
        })
    }

    fn matmul_dims(&self, a: Var, b: Var, ta: bool, tb: bool) -> (usize, usize, usize) {
        let (ar, ac) = self.shape(a);
        let (br, bc) = self.shape(b);
        let (m, k) = if ta { (ac, ar) } else { (ar, ac) };
        let (k2, n) = if tb { (bc, br) } else { (br, bc) };
        assert_eq!(
            k,
            k2,
            "matmul: inner dims differ ({ar}x{ac}{} times {br}x{bc}{})",
            if ta { "^T" } else { "" },
            if tb { "^T" } else { "" }
        );
        (m, k, n)
    }

    fn matmul_bwd(&mut self, g: &B::Buf, a: Var, b: Var, ta: bool, tb: bool, p: &mut Params<B>) {
        let (m, k, n) = self.matmul_dims(a, b, ta, tb);
        let mut ga = self.grad_take(a, p);
        let mut gb = self.grad_take(b, p);
        let cx = self.ctx();
        if let Some(ga) = ga.as_mut() {
            let vb = cx.val(b);
            if !ta {
                // dA [m,k] = G op(B)^T.
                let s = GemmSpec::accumulate(m, k, n, false, !tb);
                cx.b.gemm(s, g, &vb, ga.buf());
            } else {
                // dA stored [k,m] = op(B) G^T.
                let s = GemmSpec::accumulate(k, m, n, tb, true);
                cx.b.gemm(s, &vb, g, ga.buf());
            }
        }
        if let Some(gb) = gb.as_mut() {
            let va = cx.val(a);
            if !tb {
                // dB [k,n] = op(A)^T G.
                let s = GemmSpec::accumulate(k, n, m, !ta, false);
                cx.b.gemm(s, &va, g, gb.buf());
            } else {
                // dB stored [n,k] = G^T op(A).
                let s = GemmSpec::accumulate(n, k, m, true, ta);
                cx.b.gemm(s, g, &va, gb.buf());
            }
        }
        self.grad_put(ga, p);
        self.grad_put(gb, p);
    }
}

/// Plain f64 reference of op(a) op(b).
#[allow(clippy::too_many_arguments)]
pub fn reference(
    a: &[f64],
    ar: usize,
    ac: usize,
    b: &[f64],
    br: usize,
    bc: usize,
    ta: bool,
    tb: bool,
) -> Vec<f64> {
    let (m, k) = if ta { (ac, ar) } else { (ar, ac) };
    let n = if tb { br } else { bc };
    let at = |i: usize, l: usize| if ta { a[l * ac + i] } else { a[i * ac + l] };
    let bt = |l: usize, j: usize| if tb { b[j * bc + l] } else { b[l * bc + j] };
    let mut c = vec![0.0; m * n];
    for i in 0..m {
        for j in 0..n {
            c[i * n + j] = (0..k).map(|l| at(i, l) * bt(l, j)).sum();
        }
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::gradcheck::{Case, check};

    #[test]
    fn matmul_all_transposes_match_reference_and_gradients() {
        for (seed, &(m, k, n)) in [(1, 1, 1), (1, 7, 3), (5, 1, 4), (9, 13, 1), (6, 5, 11)]
            .iter()
            .enumerate()
        {
            for ta in [false, true] {
                for tb in [false, true] {
                    let sa = if ta { (k, m) } else { (m, k) };
                    let sb = if tb { (n, k) } else { (k, n) };
                    check(
                        Case::new(seed as u64 * 4 + ta as u64 * 2 + tb as u64)
                            .input(sa.0, sa.1, -1.0, 1.0)
                            .input(sb.0, sb.1, -1.0, 1.0),
                        |t, v| t.matmul_t(v[0], v[1], ta, tb),
                        |x| reference(&x[0], sa.0, sa.1, &x[1], sb.0, sb.1, ta, tb),
                    );
                }
            }
        }
    }

    #[test]
    fn large_matmul_parallel_path_matches_reference() {
        // Big enough for the rayon path of the gemm crate.
        check(
            Case::new(3)
                .input(70, 90, -1.0, 1.0)
                .input(90, 65, -1.0, 1.0)
                .samples(20),
            |t, v| t.matmul(v[0], v[1]),
            |x| reference(&x[0], 70, 90, &x[1], 90, 65, false, false),
        );
    }
}
