//! Inverted dropout with a seeded, counter-based mask.

use super::Backend;
use crate::backend::Binary;
use crate::tape::{Params, Saved, Tape, Var};
use rand::RngCore;
use rand_chacha::ChaCha8Rng;

impl<B: Backend> Tape<B> {
    /// Keep each element with probability `keep` and scale kept ones by 1/keep. `keep >= 1`
    /// (inference) returns `x` itself. The host rng only draws one seed; the backend makes
    /// the mask from it, so CPU and GPU runs with the same seed drop the same elements.
    pub fn dropout(&mut self, x: Var, keep: f32, rng: &mut ChaCha8Rng) -> Var {
        assert!(
            keep > 0.0,
            "dropout: keep probability must be > 0, got {keep}"
        );
        if keep >= 1.0 {
            return x;
        }
        let (r, c) = self.shape(x);
        let mut mask = self.alloc(r * c);
        self.backend.dropout_mask(rng.next_u64(), keep, &mut mask);
        let mut out = self.alloc(r * c);
        let cx = self.ctx();
        cx.b.binary(Binary::Mul, &cx.val(x), &mask, &mut out);
        let ng = self.needs_grad(x);
        let v = self.push_op(r, c, out, ng, Saved::of(&[x]), |t, out, s, g, p| {
            t.dropout_bwd(out, g, s.var(0), p)
        });
        self.node_mut(v).aux[0] = Some(mask);
        v
    }

    fn dropout_bwd(&mut self, out: Var, g: &B::Buf, x: Var, p: &mut Params<B>) {
        let mut gx = self.grad_take(x, p);
        if let Some(gx) = gx.as_mut() {
            let cx = self.ctx();
            let mask = cx.aux(out);
            cx.b.binary_bwd(Binary::Mul, mask, mask, g, Some(gx.buf()), None);
        }
        self.grad_put(gx, p);
    }
}

#[cfg(test)]
mod tests {
    use crate::backend::cpu::Cpu;
    use crate::ops::gradcheck::{Case, check};
    use crate::tape::Tape;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    /// The mask a seed produces, recovered from a forward pass on ones.
    fn mask_of(seed: u64, n: usize, c: usize, keep: f32) -> Vec<f64> {
        let mut t = Tape::new(Cpu::new());
        let ones = t.constant(n, c, &vec![1.0; n * c]);
        let d = t.dropout(ones, keep, &mut ChaCha8Rng::seed_from_u64(seed));
        t.to_host(d).into_iter().map(|v| v as f64).collect()
    }

    #[test]
    fn dropout_gradient_uses_the_same_mask() {
        for (s, &(n, c)) in [(1, 1), (1, 13), (9, 7)].iter().enumerate() {
            let mask = mask_of(s as u64, n, c, 0.7);
            check(
                Case::new(s as u64).input(n, c, -2.0, 2.0),
                |t, v| t.dropout(v[0], 0.7, &mut ChaCha8Rng::seed_from_u64(s as u64)),
                |x| x[0].iter().zip(&mask).map(|(a, m)| a * m).collect(),
            );
        }
    }

    #[test]
    fn dropout_keeps_the_right_fraction_and_scale() {
        let m = mask_of(42, 200, 500, 0.9);
        let kept = m.iter().filter(|&&v| v != 0.0).count() as f64 / m.len() as f64;
        assert!((kept - 0.9).abs() < 0.005, "kept fraction {kept}");
        assert!(
            m.iter()
                .all(|&v| v == 0.0 || (v - 1.0 / 0.9f32 as f64).abs() < 1e-6)
        );
        // Same seed -> same mask; different seed -> different mask.
        assert_eq!(m, mask_of(42, 200, 500, 0.9));
        assert_ne!(m, mask_of(43, 200, 500, 0.9));
    }
}
