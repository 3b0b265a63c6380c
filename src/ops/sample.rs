//! Gaussian reparameterised sampling z = mean + sqrt(var) * eps, eps ~ N(0, I).

use super::Backend;
use crate::tape::backward::gbuf;
use crate::tape::{Params, Saved, Tape, Var};
use rand::RngCore;
use rand_chacha::ChaCha8Rng;

impl<B: Backend> Tape<B> {
    /// One sample per element; `var` is a variance (> 0). The host rng draws one seed and
    /// the backend generates eps from it.
    pub fn sample_gaussian(&mut self, mean: Var, var: Var, rng: &mut ChaCha8Rng) -> Var {
        let (r, c) = self.shape(mean);
        assert_eq!(
            self.shape(var),
            (r, c),
            "sample_gaussian: mean and var shapes differ"
        );
        let mut eps = self.alloc(r * c);
        self.backend.normal(rng.next_u64(), &mut eps);
        let mut out = self.alloc(r * c);
        let cx = self.ctx();
        cx.b.reparam(&cx.val(mean), &cx.val(var), &eps, &mut out);
        let ng = self.needs_grad(mean) || self.needs_grad(var);
        let v = self.push_op(r, c, out, ng, Saved::of(&[mean, var]), |t, out, s, g, p| {
            t.sample_bwd(out, g, s.var(0), s.var(1), p)
        });
        self.node_mut(v).aux[0] = Some(eps);
        v
    }

    fn sample_bwd(&mut self, out: Var, g: &B::Buf, mean: Var, var: Var, p: &mut Params<B>) {
        let mut gm = self.grad_take(mean, p);
        let mut gv = self.grad_take(var, p);
        let cx = self.ctx();
        cx.b.reparam_bwd(&cx.val(var), cx.aux(out), g, gbuf(&mut gm), gbuf(&mut gv));
        self.grad_put(gm, p);
        self.grad_put(gv, p);
    }
}

#[cfg(test)]
mod tests {
    use crate::backend::cpu::Cpu;
    use crate::ops::gradcheck::{Case, check};
    use crate::tape::Tape;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn eps_of(seed: u64, n: usize) -> Vec<f64> {
        let mut t = Tape::new(Cpu::new());
        let m = t.constant(1, n, &vec![0.0; n]);
        let v = t.constant(1, n, &vec![1.0; n]);
        let z = t.sample_gaussian(m, v, &mut ChaCha8Rng::seed_from_u64(seed));
        t.to_host(z).into_iter().map(|v| v as f64).collect()
    }

    #[test]
    fn reparam_gradient_matches_reference() {
        for (s, &(n, c)) in [(1, 1), (1, 10), (8, 3)].iter().enumerate() {
            let eps = eps_of(s as u64, n * c);
            check(
                Case::new(s as u64)
                    .input(n, c, -2.0, 2.0)
                    .input(n, c, 0.1, 3.0),
                |t, v| t.sample_gaussian(v[0], v[1], &mut ChaCha8Rng::seed_from_u64(s as u64)),
                |x| {
                    (0..n * c)
                        .map(|i| x[0][i] + x[1][i].sqrt() * eps[i])
                        .collect()
                },
            );
        }
    }

    #[test]
    fn noise_is_standard_normal() {
        let e = eps_of(7, 200_000);
        let n = e.len() as f64;
        let mean = e.iter().sum::<f64>() / n;
        let var = e.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
        let kurt = e.iter().map(|v| (v - mean).powi(4)).sum::<f64>() / n / (var * var);
        assert!(
            mean.abs() < 0.01 && (var - 1.0).abs() < 0.01 && (kurt - 3.0).abs() < 0.05,
            "mean {mean} var {var} kurtosis {kurt}"
        );
    }
}
