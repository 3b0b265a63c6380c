//! The Bhattacharyya term of the discriminator (spec section 3): the tape API, its backward, the
//! kernel contract [`BhattacharyyaKernels`] (CPU in `cpu.rs`, CUDA in `cuda.rs` launching
//! `bhattacharyya.cu`) and the op's tests.

mod cpu;
#[cfg(feature = "cuda")]
mod cuda;

pub use cpu::{BC_CLIP, bhattacharyya_fwd_bwd};

use super::Backend;
use crate::backend::Memory;
use crate::tape::{Params, Saved, Tape, Var};

/// The fused Bhattacharyya kernels; a, b are [n, 1].
pub trait BhattacharyyaKernels: Memory {
    /// loss[0] = ln(clip(BC(a, b), 1e-4, 1e4)).
    fn bhattacharyya_fwd(&self, a: &Self::Buf, b: &Self::Buf, loss: &mut Self::Buf);
    /// da, db = g[0] * d loss / d(a, b): OVERWRITES them (a fused loss).
    fn bhattacharyya_bwd(
        &self,
        a: &Self::Buf,
        b: &Self::Buf,
        g: &Self::Buf,
        da: &mut Self::Buf,
        db: &mut Self::Buf,
    );
}

impl<B: Backend> Tape<B> {
    /// ln(clip(BC, 1e-4, 1e4)) with p = a / sum(a), q = b / sum(b), BC = sum sqrt(|p q|);
    /// a, b [n,1] -> [1,1].
    pub fn bhattacharyya_loss(&mut self, a: Var, b: Var) -> Var {
        let (n, c) = self.shape(a);
        assert!(
            c == 1 && self.shape(b) == (n, 1),
            "bhattacharyya_loss: a and b must be {n}x1"
        );
        let mut out = self.alloc(1);
        let cx = self.ctx();
        cx.b.bhattacharyya_fwd(&cx.val(a), &cx.val(b), &mut out);
        let ng = self.needs_grad(a) || self.needs_grad(b);
        self.push_op(1, 1, out, ng, Saved::of(&[a, b]), |t, _, s, g, p| {
            t.bhattacharyya_bwd(g, s.var(0), s.var(1), p)
        })
    }

    fn bhattacharyya_bwd(&mut self, g: &B::Buf, a: Var, b: Var, p: &mut Params<B>) {
        let (n, _) = self.shape(a);
        let mut ga = self.grad_take(a, p);
        let mut gb = self.grad_take(b, p);
        let mut ta = self.overwrite_target(&mut ga, n);
        let mut tb = self.overwrite_target(&mut gb, n);
        let cx = self.ctx();
        cx.b.bhattacharyya_bwd(&cx.val(a), &cx.val(b), g, &mut ta, &mut tb);
        self.overwrite_finish(&mut ga, ta);
        self.overwrite_finish(&mut gb, tb);
        self.grad_put(ga, p);
        self.grad_put(gb, p);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::gradcheck::{Case, check};
    use crate::ops::parity::{self, download, uniform, upload};

    #[test]
    fn bhattacharyya_matches_reference() {
        // Mixed signs: D2 outputs are raw linear scores.
        for (s, &n) in [1usize, 2, 9, 33].iter().enumerate() {
            check(
                Case::new(s as u64)
                    .input(n, 1, 0.2, 2.0)
                    .input(n, 1, -0.3, 2.0),
                |t, v| t.bhattacharyya_loss(v[0], v[1]),
                |p| {
                    let (sa, sb): (f64, f64) = (p[0].iter().sum(), p[1].iter().sum());
                    let bc: f64 = (0..n)
                        .map(|i| (p[0][i] / sa * p[1][i] / sb).abs().sqrt())
                        .sum();
                    vec![bc.clamp(1e-4, 1e4).ln()]
                },
            );
        }
    }

    /// An ordinary case, the upper clip (sum b = 0 exactly: BC = inf) and W = 0 (disjoint
    /// supports: the lower clip), below and above one block (256 threads).
    struct Bhattacharyya;
    impl parity::Kernels for Bhattacharyya {
        fn run<B: Backend>(&self, b: &B) -> Vec<(String, Vec<f32>)> {
            let mut out = Vec::new();
            for n in [7usize, 64, 1000] {
                let alternating = |i: usize| if i.is_multiple_of(2) { 1.0 } else { -1.0 };
                let mut b_upper: Vec<f32> = (0..n).map(alternating).collect();
                if !n.is_multiple_of(2) {
                    b_upper[n - 1] = 0.0;
                }
                let cases = [
                    (
                        "mixed",
                        uniform(n as u64, n, -0.5, 2.0),
                        uniform(n as u64 + 1, n, -0.3, 2.0),
                    ),
                    ("upper_clip", uniform(n as u64 + 2, n, 0.1, 2.0), b_upper),
                    (
                        "w_zero",
                        (0..n).map(|i| (i % 2) as f32).collect(),
                        (0..n).map(|i| ((i + 1) % 2) as f32).collect(),
                    ),
                ];
                for (name, av, bv) in cases {
                    let (ba, bb) = (upload(b, &av), upload(b, &bv));
                    let mut l = b.alloc(1);
                    b.bhattacharyya_fwd(&ba, &bb, &mut l);
                    let (mut da, mut db) = (b.alloc(n), b.alloc(n));
                    b.bhattacharyya_bwd(&ba, &bb, &upload(b, &[0.7]), &mut da, &mut db);
                    out.push((format!("fwd {name} n={n}"), download(b, &l)));
                    out.push((format!("bwd a {name} n={n}"), download(b, &da)));
                    out.push((format!("bwd b {name} n={n}"), download(b, &db)));
                }
            }
            out
        }
    }

    #[test]
    fn cuda_kernels_match_the_cpu() {
        parity::check("ops::bhattacharyya", &Bhattacharyya, 1e-5, 1e-6);
    }
}
