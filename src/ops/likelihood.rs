//! Tape ops of the count likelihoods (ZINB, NB): the forward computes the value only (in
//! training it also stashes the unit-upstream gradients of the fused kernel); the backward
//! runs the fused value+gradient kernel with the upstream gradient, so per-gene reductions
//! (dtheta) are weighted per row exactly.

use super::Backend;
use crate::backend::{Likelihood, LikelihoodGrads};
use crate::tape::backward::GradOut;
use crate::tape::{Params, Saved, Tape, Var};

/// eps inside the ZINB logs and its zero test (scDREAMER, spec section 3).
pub const ZINB_EPS: f32 = 1e-4;
/// eps inside the NB logs (scVI's `log_nb_positive`).
pub const NB_EPS: f32 = 1e-8;

impl<B: Backend> Tape<B> {
    /// Per-cell ZINB log-likelihood [n,1] of counts x [n,G] given mean mu [n,G], inverse
    /// dispersion theta [1,G] and dropout logits [n,G]. Gradients flow to mu, theta, logit.
    pub fn zinb_loglik(&mut self, x: Var, mu: Var, theta: Var, logit: Var) -> Var {
        self.zinb_loglik_eps(x, mu, theta, logit, ZINB_EPS)
    }

    pub fn zinb_loglik_eps(&mut self, x: Var, mu: Var, theta: Var, logit: Var, eps: f32) -> Var {
        let (n, g) = self.shape(x);
        assert_eq!(
            self.shape(logit),
            (n, g),
            "zinb_loglik: logit must be {n}x{g}"
        );
        self.count_loglik("zinb_loglik", [x, mu, theta], Some(logit), eps)
    }

    /// Per-cell NB log-likelihood [n,1] (x, mu [n,G], theta [1,G]).
    pub fn nb_loglik(&mut self, x: Var, mu: Var, theta: Var) -> Var {
        self.nb_loglik_eps(x, mu, theta, NB_EPS)
    }

    pub fn nb_loglik_eps(&mut self, x: Var, mu: Var, theta: Var, eps: f32) -> Var {
        self.count_loglik("nb_loglik", [x, mu, theta], None, eps)
    }

    /// The ZINB (`logit` given) or NB log-likelihood of counts x given mu and theta.
    fn count_loglik(&mut self, op: &str, xmt: [Var; 3], logit: Option<Var>, eps: f32) -> Var {
        let [x, mu, theta] = xmt;
        let (n, g) = self.shape(x);
        assert_eq!(self.shape(mu), (n, g), "{op}: mu must be {n}x{g}");
        assert_eq!(self.shape(theta), (1, g), "{op}: theta must be 1x{g}");
        let ng = self.needs_grad(mu)
            || self.needs_grad(theta)
            || logit.is_some_and(|l| self.needs_grad(l));
        let mut out = self.alloc(n);
        // Stash only where buffers are host memory: checking that the upstream is uniform costs
        // a device round trip elsewhere, so a device backend recomputes in the backward.
        let mut stash = if ng && self.backend.host_memory() {
            // One fused pass with a unit upstream; the backward reuses these gradients when
            // its upstream is uniform (the usual mean over cells).
            let mut ones = self.alloc(n);
            self.backend.fill(&mut ones, 1.0);
            let (dm, dt) = (self.alloc(n * g), self.alloc(g));
            let dl = logit.map(|_| self.alloc(n * g));
            Some((ones, dm, dt, dl))
        } else {
            None
        };
        let grads = stash.as_mut().map(|(ones, dm, dt, dl)| LikelihoodGrads {
            upstream: &*ones,
            dmu: dm,
            dtheta: dt,
            dlogit: dl.as_mut(),
        });
        self.run_likelihood(xmt, logit, eps, Some(&mut out), grads);
        let aux = match stash {
            Some((ones, dm, dt, dl)) => {
                self.pool.give(&self.backend, ones);
                [Some(dm), Some(dt), dl]
            }
            None => [None, None, None],
        };
        // Inputs x, mu, theta and the logits when flag 0 is set; eps the first constant.
        let saved = match logit {
            Some(l) => Saved::of(&[x, mu, theta, l]).flags(1),
            None => Saved::of(&[x, mu, theta]),
        }
        .scalars([eps, 0.0]);
        let v = self.push_op(n, 1, out, ng, saved, |t, out, s, g, p| {
            t.likelihood_bwd(out, g, s, p)
        });
        self.node_mut(v).aux = aux;
        v
    }

    /// The backend's fused likelihood kernel on the tape's values of x, mu, theta (and the
    /// logits): the value into `out` and/or the gradients into `grads`, as each is given.
    fn run_likelihood(
        &mut self,
        xmt: [Var; 3],
        logit: Option<Var>,
        eps: f32,
        out: Option<&mut B::Buf>,
        grads: Option<LikelihoodGrads<'_, B::Buf>>,
    ) {
        let [x, mu, theta] = xmt;
        let (rows, cols) = self.shape(x);
        let cx = self.ctx();
        let (xv, mv, tv) = (cx.val(x), cx.val(mu), cx.val(theta));
        let lv = logit.map(|l| cx.val(l));
        let a = Likelihood {
            x: &*xv,
            mu: &*mv,
            theta: &*tv,
            logit: lv.as_deref(),
            rows,
            cols,
            eps,
        };
        cx.b.likelihood(&a, out, grads);
    }

    /// When the forward stashed unit-upstream gradients and the upstream `g` is the same
    /// for every row, add `g[0] * stash` into the input gradients and return true;
    /// otherwise (or without a stash) return false and let the caller recompute.
    fn apply_stash(&mut self, out: Var, g: &B::Buf, grads: [&mut Option<GradOut<B>>; 3]) -> bool {
        if self.ctx().aux_k(out, 0).is_none() {
            return false;
        }
        let Some(c) = self.backend.uniform_value(g) else {
            return false;
        };
        let cx = self.ctx();
        for (k, go) in grads.into_iter().enumerate() {
            if let (Some(go), Some(st)) = (go.as_mut(), cx.aux_k(out, k)) {
                cx.b.axpy(c, st, go.buf());
            }
        }
        true
    }

    fn likelihood_bwd(&mut self, out: Var, g: &B::Buf, s: &Saved, p: &mut Params<B>) {
        let (x, mu, theta) = (s.var(0), s.var(1), s.var(2));
        let logit = s.flag(0).then(|| s.var(3));
        let eps = s.scalars[0];
        let (n, c) = self.shape(x);
        let mut gm = self.grad_take(mu, p);
        let mut gt = self.grad_take(theta, p);
        let mut gl = match logit {
            Some(l) => self.grad_take(l, p),
            None => None,
        };
        if !self.apply_stash(out, g, [&mut gm, &mut gt, &mut gl]) {
            let mut tm = self.overwrite_target(&mut gm, n * c);
            let mut tt = self.overwrite_target(&mut gt, c);
            let mut tl = logit.map(|_| self.overwrite_target(&mut gl, n * c));
            let grads = LikelihoodGrads {
                upstream: g,
                dmu: &mut tm,
                dtheta: &mut tt,
                dlogit: tl.as_mut(),
            };
            self.run_likelihood([x, mu, theta], logit, eps, None, Some(grads));
            self.overwrite_finish(&mut gm, tm);
            self.overwrite_finish(&mut gt, tt);
            if let Some(tl) = tl {
                self.overwrite_finish(&mut gl, tl);
            }
        }
        self.grad_put(gm, p);
        self.grad_put(gt, p);
        self.grad_put(gl, p);
    }
}

#[cfg(test)]
mod tests {
    use crate::backend::cpu::special::lgamma;
    use crate::ops::gradcheck::{Case, check};
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    fn sp(z: f64) -> f64 {
        z.max(0.0) + (-z.abs()).exp().ln_1p()
    }

    /// Spec section 3 ZINB (zero_inflated) or scVI NB, one element, plain f64.
    fn lik(x: f64, mu: f64, th: f64, lg: f64, eps: f64, zi: bool) -> f64 {
        let ltm = (th + mu + eps).ln();
        let t_log = th * ((th + eps).ln() - ltm);
        if zi && x < eps {
            return -sp(-lg) + sp(-lg + t_log);
        }
        let base =
            t_log - x * ltm + x * (mu + eps).ln() - lgamma(x + 1.0) + lgamma(x + th) - lgamma(th);
        if zi { base - sp(-lg) - lg } else { base }
    }

    /// Counts in [0, 1] with about a third exact zeros (the scDREAMER target range).
    fn counts(n: usize, g: usize, seed: u64) -> Vec<f32> {
        let mut r = ChaCha8Rng::seed_from_u64(seed);
        (0..n * g)
            .map(|_| {
                if r.gen_bool(0.35) {
                    0.0
                } else {
                    r.gen_range(0.0..1.0)
                }
            })
            .collect()
    }

    #[test]
    fn zinb_and_nb_match_reference_with_per_row_upstream() {
        // gradcheck's random projection makes the upstream gradient differ per row, so
        // dtheta must weight each row's contribution.
        for (s, &(n, g)) in [(1, 1), (1, 9), (7, 5), (13, 3)].iter().enumerate() {
            let x = counts(n, g, s as u64);
            let x64: Vec<f64> = x.iter().map(|&v| v as f64).collect();
            let case = || {
                Case::new(s as u64)
                    .input(n, g, 0.05, 4.0)
                    .input(1, g, 0.2, 5.0)
                    .input(n, g, -2.0, 2.0)
            };
            check(
                case(),
                |t, v| {
                    let xc = t.constant(n, g, &x);
                    t.zinb_loglik(xc, v[0], v[1], v[2])
                },
                |p| {
                    (0..n)
                        .map(|r| {
                            (0..g)
                                .map(|j| {
                                    let i = r * g + j;
                                    lik(x64[i], p[0][i], p[1][j], p[2][i], 1e-4, true)
                                })
                                .sum()
                        })
                        .collect()
                },
            );
            check(
                case(),
                |t, v| {
                    let xc = t.constant(n, g, &x);
                    t.nb_loglik(xc, v[0], v[1])
                },
                |p| {
                    (0..n)
                        .map(|r| {
                            (0..g)
                                .map(|j| {
                                    lik(x64[r * g + j], p[0][r * g + j], p[1][j], 0.0, 1e-8, false)
                                })
                                .sum()
                        })
                        .collect()
                },
            );
        }
    }

    #[test]
    fn zinb_and_nb_stashed_gradients_under_a_mean() {
        // A mean over cells gives a uniform upstream: the backward reuses the gradients
        // stashed by the forward instead of recomputing.
        let (n, g) = (9, 7);
        let x = counts(n, g, 3);
        let x64: Vec<f64> = x.iter().map(|&v| v as f64).collect();
        let case = || {
            Case::new(4)
                .input(n, g, 0.05, 4.0)
                .input(1, g, 0.2, 5.0)
                .input(n, g, -2.0, 2.0)
        };
        let total = |p: &[Vec<f64>], zi: bool| {
            let mut s = 0.0;
            for r in 0..n {
                for j in 0..g {
                    let i = r * g + j;
                    s += lik(
                        x64[i],
                        p[0][i],
                        p[1][j],
                        p[2][i],
                        if zi { 1e-4 } else { 1e-8 },
                        zi,
                    );
                }
            }
            vec![s / n as f64]
        };
        check(
            case(),
            |t, v| {
                let xc = t.constant(n, g, &x);
                let ll = t.zinb_loglik(xc, v[0], v[1], v[2]);
                t.mean(ll)
            },
            |p| total(p, true),
        );
        check(
            case(),
            |t, v| {
                let xc = t.constant(n, g, &x);
                let ll = t.nb_loglik(xc, v[0], v[1]);
                // logit (v[2]) unused by NB: its gradient must stay zero.
                let z = t.scale(v[2], 0.0);
                let z = t.sum_rows(z);
                let ll = t.add(ll, z);
                t.mean(ll)
            },
            |p| total(p, false),
        );
    }
}
