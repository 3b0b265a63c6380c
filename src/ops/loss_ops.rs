//! Tape wrappers of the fused loss kernels (`crate::ops::losses` via the backend): the
//! forward computes the value only; the backward runs the fused value+gradient kernel with
//! the upstream gradient, so per-gene reductions (dtheta) are weighted per row exactly.

use crate::backend::Backend;
use crate::tape::backward::GradOut;
use crate::tape::{Indices, Op, Params, Tape, Var};

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
        assert_eq!(self.shape(mu), (n, g), "zinb_loglik: mu must be {n}x{g}");
        assert_eq!(
            self.shape(logit),
            (n, g),
            "zinb_loglik: logit must be {n}x{g}"
        );
        assert_eq!(
            self.shape(theta),
            (1, g),
            "zinb_loglik: theta must be 1x{g}"
        );
        let ng = self.needs_grad(mu) || self.needs_grad(theta) || self.needs_grad(logit);
        let mut out = self.alloc(n);
        // Stash only where buffers are host memory: checking that the upstream is uniform costs
        // a device round trip elsewhere, so a device backend recomputes in the backward.
        let stash = if ng && self.backend.host_memory() {
            // One fused pass with a unit upstream; the backward reuses these gradients when
            // its upstream is uniform (the usual mean over cells).
            let mut ones = self.alloc(n);
            self.backend.fill(&mut ones, 1.0);
            let (mut dm, mut dt, mut dl) = (self.alloc(n * g), self.alloc(g), self.alloc(n * g));
            let cx = self.ctx();
            cx.b.zinb_fwd_bwd(
                &cx.val(x),
                &cx.val(mu),
                &cx.val(theta),
                &cx.val(logit),
                n,
                g,
                eps,
                &ones,
                &mut out,
                &mut dm,
                &mut dt,
                &mut dl,
            );
            self.pool.give(&self.backend, ones);
            [Some(dm), Some(dt), Some(dl)]
        } else {
            let cx = self.ctx();
            cx.b.zinb_fwd(
                &cx.val(x),
                &cx.val(mu),
                &cx.val(theta),
                &cx.val(logit),
                n,
                g,
                eps,
                &mut out,
            );
            [None, None, None]
        };
        let v = self.push(
            n,
            1,
            out,
            Op::Zinb {
                x,
                mu,
                theta,
                logit,
                eps,
            },
            ng,
        );
        self.node_mut(v).aux = stash;
        v
    }

    /// Per-cell NB log-likelihood [n,1] (x, mu [n,G], theta [1,G]).
    pub fn nb_loglik(&mut self, x: Var, mu: Var, theta: Var) -> Var {
        self.nb_loglik_eps(x, mu, theta, NB_EPS)
    }

    pub fn nb_loglik_eps(&mut self, x: Var, mu: Var, theta: Var, eps: f32) -> Var {
        let (n, g) = self.shape(x);
        assert_eq!(self.shape(mu), (n, g), "nb_loglik: mu must be {n}x{g}");
        assert_eq!(self.shape(theta), (1, g), "nb_loglik: theta must be 1x{g}");
        let ng = self.needs_grad(mu) || self.needs_grad(theta);
        let mut out = self.alloc(n);
        let stash = if ng && self.backend.host_memory() {
            let mut ones = self.alloc(n);
            self.backend.fill(&mut ones, 1.0);
            let (mut dm, mut dt) = (self.alloc(n * g), self.alloc(g));
            let cx = self.ctx();
            cx.b.nb_fwd_bwd(
                &cx.val(x),
                &cx.val(mu),
                &cx.val(theta),
                n,
                g,
                eps,
                &ones,
                &mut out,
                &mut dm,
                &mut dt,
            );
            self.pool.give(&self.backend, ones);
            [Some(dm), Some(dt), None]
        } else {
            let cx = self.ctx();
            cx.b.nb_fwd(&cx.val(x), &cx.val(mu), &cx.val(theta), n, g, eps, &mut out);
            [None, None, None]
        };
        let v = self.push(n, 1, out, Op::Nb { x, mu, theta, eps }, ng);
        self.node_mut(v).aux = stash;
        v
    }

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
        self.push(1, 1, out, Op::Bhattacharyya { a, b }, ng)
    }

    /// [n,1]: 0.5 sum_k(-ln clip(var, 1e-4, 1e4) + var + mean^2 - 1).
    pub fn kl_std_normal(&mut self, mean: Var, var: Var) -> Var {
        let (n, k) = self.shape(mean);
        assert_eq!(
            self.shape(var),
            (n, k),
            "kl_std_normal: mean and var shapes differ"
        );
        let mut out = self.alloc(n);
        let cx = self.ctx();
        cx.b.kl_std_normal_fwd(&cx.val(mean), &cx.val(var), k, &mut out);
        let ng = self.needs_grad(mean) || self.needs_grad(var);
        self.push(n, 1, out, Op::KlStd { mean, var }, ng)
    }

    /// [n,1]: KL(N(m1, v1) || N(m2, v2)) summed over columns (v are variances).
    pub fn kl_normal(&mut self, m1: Var, v1: Var, m2: Var, v2: Var) -> Var {
        let (n, k) = self.shape(m1);
        for v in [v1, m2, v2] {
            assert_eq!(
                self.shape(v),
                (n, k),
                "kl_normal: all inputs must be {n}x{k}"
            );
        }
        let mut out = self.alloc(n);
        let cx = self.ctx();
        cx.b.kl_normal_fwd(
            &cx.val(m1),
            &cx.val(v1),
            &cx.val(m2),
            &cx.val(v2),
            k,
            &mut out,
        );
        let ng = [m1, v1, m2, v2].iter().any(|&v| self.needs_grad(v));
        self.push(n, 1, out, Op::KlNormal { m1, v1, m2, v2 }, ng)
    }

    /// Mean softmax cross-entropy over rows whose mask is non-zero (all rows when None);
    /// 0 when no row is used. logits [n,C], labels < C.
    pub fn cross_entropy<'i>(
        &mut self,
        logits: Var,
        labels: impl Into<Indices<'i, B>>,
        mask: Option<&[f32]>,
    ) -> Var {
        let n = self.shape(logits).0;
        let mbuf = mask.map(|m| {
            assert_eq!(
                m.len(),
                n,
                "cross_entropy: mask has {} entries for {n} rows",
                m.len()
            );
            let mut b = self.alloc(n);
            self.backend.upload(m, &mut b);
            b
        });
        self.cross_entropy_with(logits, labels.into(), mbuf)
    }

    /// [`Tape::cross_entropy`] with the mask [n] already on the device (gathered there: copied,
    /// not uploaded).
    pub fn cross_entropy_device_mask<'i>(
        &mut self,
        logits: Var,
        labels: impl Into<Indices<'i, B>>,
        mask: &B::Buf,
    ) -> Var {
        let n = self.shape(logits).0;
        assert_eq!(
            self.backend.len(mask),
            n,
            "cross_entropy: mask has {} entries for {n} rows",
            self.backend.len(mask)
        );
        let mut b = self.alloc(n);
        self.backend.copy(mask, &mut b);
        self.cross_entropy_with(logits, labels.into(), Some(b))
    }

    fn cross_entropy_with(
        &mut self,
        logits: Var,
        labels: Indices<'_, B>,
        mbuf: Option<B::Buf>,
    ) -> Var {
        let (n, c) = self.shape(logits);
        assert_eq!(
            labels.len(),
            n,
            "cross_entropy: {} labels for {n} rows",
            labels.len()
        );
        if let Some(l) = labels.first_at_or_above(c) {
            panic!("cross_entropy: label {l} >= {c} classes");
        }
        let idx = self.node_idx(labels);
        let mut out = self.alloc(1);
        let cx = self.ctx();
        cx.b.cross_entropy_fwd(&cx.val(logits), idx.buf(), mbuf.as_ref(), n, c, &mut out);
        let ng = self.needs_grad(logits);
        let v = self.push(
            1,
            1,
            out,
            Op::CrossEntropy {
                logits,
                masked: mbuf.is_some(),
            },
            ng,
        );
        let node = self.node_mut(v);
        node.idx = Some(idx);
        node.idx_len = n;
        node.aux[0] = mbuf;
        v
    }

    // ---- backward ------------------------------------------------------------------------

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

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn zinb_bwd(
        &mut self,
        out: Var,
        g: &B::Buf,
        x: Var,
        mu: Var,
        theta: Var,
        logit: Var,
        eps: f32,
        p: &mut Params<B>,
    ) {
        let (n, c) = self.shape(x);
        let mut gm = self.grad_take(mu, p);
        let mut gt = self.grad_take(theta, p);
        let mut gl = self.grad_take(logit, p);
        if self.apply_stash(out, g, [&mut gm, &mut gt, &mut gl]) {
            self.grad_put(gm, p);
            self.grad_put(gt, p);
            self.grad_put(gl, p);
            return;
        }
        let mut tm = self.overwrite_target(&mut gm, n * c);
        let mut tt = self.overwrite_target(&mut gt, c);
        let mut tl = self.overwrite_target(&mut gl, n * c);
        let cx = self.ctx();
        cx.b.zinb_bwd(
            &cx.val(x),
            &cx.val(mu),
            &cx.val(theta),
            &cx.val(logit),
            n,
            c,
            eps,
            g,
            &mut tm,
            &mut tt,
            &mut tl,
        );
        self.overwrite_finish(&mut gm, tm);
        self.overwrite_finish(&mut gt, tt);
        self.overwrite_finish(&mut gl, tl);
        self.grad_put(gm, p);
        self.grad_put(gt, p);
        self.grad_put(gl, p);
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn nb_bwd(
        &mut self,
        out: Var,
        g: &B::Buf,
        x: Var,
        mu: Var,
        theta: Var,
        eps: f32,
        p: &mut Params<B>,
    ) {
        let (n, c) = self.shape(x);
        let mut gm = self.grad_take(mu, p);
        let mut gt = self.grad_take(theta, p);
        let mut none = None;
        if self.apply_stash(out, g, [&mut gm, &mut gt, &mut none]) {
            self.grad_put(gm, p);
            self.grad_put(gt, p);
            return;
        }
        let mut tm = self.overwrite_target(&mut gm, n * c);
        let mut tt = self.overwrite_target(&mut gt, c);
        let cx = self.ctx();
        cx.b.nb_bwd(
            &cx.val(x),
            &cx.val(mu),
            &cx.val(theta),
            n,
            c,
            eps,
            g,
            &mut tm,
            &mut tt,
        );
        self.overwrite_finish(&mut gm, tm);
        self.overwrite_finish(&mut gt, tt);
        self.grad_put(gm, p);
        self.grad_put(gt, p);
    }

    pub(crate) fn bhattacharyya_bwd(&mut self, g: &B::Buf, a: Var, b: Var, p: &mut Params<B>) {
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

    pub(crate) fn kl_std_bwd(&mut self, g: &B::Buf, mean: Var, var: Var, p: &mut Params<B>) {
        let (n, k) = self.shape(mean);
        let mut gm = self.grad_take(mean, p);
        let mut gv = self.grad_take(var, p);
        let mut tm = self.overwrite_target(&mut gm, n * k);
        let mut tv = self.overwrite_target(&mut gv, n * k);
        let cx = self.ctx();
        cx.b.kl_std_normal_bwd(&cx.val(mean), &cx.val(var), k, g, &mut tm, &mut tv);
        self.overwrite_finish(&mut gm, tm);
        self.overwrite_finish(&mut gv, tv);
        self.grad_put(gm, p);
        self.grad_put(gv, p);
    }

    pub(crate) fn kl_normal_bwd(&mut self, g: &B::Buf, v: [Var; 4], p: &mut Params<B>) {
        let (n, k) = self.shape(v[0]);
        let mut gs = v.map(|x| self.grad_take(x, p));
        let [g0, g1, g2, g3] = &mut gs;
        let mut t0 = self.overwrite_target(g0, n * k);
        let mut t1 = self.overwrite_target(g1, n * k);
        let mut t2 = self.overwrite_target(g2, n * k);
        let mut t3 = self.overwrite_target(g3, n * k);
        let cx = self.ctx();
        cx.b.kl_normal_bwd(
            &cx.val(v[0]),
            &cx.val(v[1]),
            &cx.val(v[2]),
            &cx.val(v[3]),
            k,
            g,
            [&mut t0, &mut t1, &mut t2, &mut t3],
        );
        self.overwrite_finish(g0, t0);
        self.overwrite_finish(g1, t1);
        self.overwrite_finish(g2, t2);
        self.overwrite_finish(g3, t3);
        for x in gs {
            self.grad_put(x, p);
        }
    }

    pub(crate) fn cross_entropy_bwd(
        &mut self,
        out: Var,
        g: &B::Buf,
        logits: Var,
        masked: bool,
        p: &mut Params<B>,
    ) {
        let (n, c) = self.shape(logits);
        let mut gl = self.grad_take(logits, p);
        let mut tl = self.overwrite_target(&mut gl, n * c);
        let cx = self.ctx();
        let mask = if masked { Some(cx.aux(out)) } else { None };
        cx.b.cross_entropy_bwd(&cx.val(logits), cx.idx(out), mask, n, c, g, &mut tl);
        self.overwrite_finish(&mut gl, tl);
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

    #[test]
    fn kl_terms_match_reference() {
        for (s, &(n, k)) in [(1, 1), (1, 10), (6, 3)].iter().enumerate() {
            check(
                Case::new(s as u64)
                    .input(n, k, -2.0, 2.0)
                    .input(n, k, 0.05, 3.0),
                |t, v| t.kl_std_normal(v[0], v[1]),
                |p| {
                    (0..n)
                        .map(|r| {
                            (r * k..(r + 1) * k)
                                .map(|i| {
                                    0.5 * (-p[1][i].clamp(1e-4, 1e4).ln()
                                        + p[1][i]
                                        + p[0][i].powi(2)
                                        - 1.0)
                                })
                                .sum()
                        })
                        .collect()
                },
            );
            check(
                Case::new(s as u64)
                    .input(n, k, -2.0, 2.0)
                    .input(n, k, 0.1, 3.0)
                    .input(n, k, -2.0, 2.0)
                    .input(n, k, 0.1, 3.0),
                |t, v| t.kl_normal(v[0], v[1], v[2], v[3]),
                |p| {
                    (0..n)
                        .map(|r| {
                            (r * k..(r + 1) * k)
                                .map(|i| {
                                    let d = p[0][i] - p[2][i];
                                    0.5 * (p[3][i].ln() - p[1][i].ln()
                                        + (p[1][i] + d * d) / p[3][i]
                                        - 1.0)
                                })
                                .sum()
                        })
                        .collect()
                },
            );
        }
    }

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

    #[test]
    fn cross_entropy_matches_reference_with_mask() {
        for (s, &(n, c)) in [(1, 1), (1, 4), (8, 3), (5, 6)].iter().enumerate() {
            let labels: Vec<u32> = (0..n).map(|i| ((i * 7 + s) % c) as u32).collect();
            let mask: Vec<f32> = (0..n).map(|i| if i % 3 == 1 { 0.0 } else { 1.0 }).collect();
            let ce = |p: &[Vec<f64>], m: &[f32]| {
                let used = m.iter().filter(|&&v| v != 0.0).count();
                let mut tot = 0.0;
                for r in 0..n {
                    if m[r] == 0.0 {
                        continue;
                    }
                    let row = &p[0][r * c..(r + 1) * c];
                    let lse = row.iter().map(|v| v.exp()).sum::<f64>().ln();
                    tot += lse - row[labels[r] as usize];
                }
                vec![if used > 0 { tot / used as f64 } else { 0.0 }]
            };
            check(
                Case::new(s as u64).input(n, c, -3.0, 3.0),
                |t, v| t.cross_entropy(v[0], &labels, Some(&mask)),
                |p| ce(p, &mask),
            );
            check(
                Case::new(s as u64).input(n, c, -3.0, 3.0),
                |t, v| t.cross_entropy(v[0], &labels, None),
                |p| ce(p, &vec![1.0; n]),
            );
        }
    }

    #[test]
    fn cross_entropy_with_no_used_row_is_zero() {
        let zeros = vec![0.0f32; 3];
        check(
            Case::new(1).input(3, 4, -3.0, 3.0),
            |t, v| t.cross_entropy(v[0], &[0, 1, 2], Some(&zeros)),
            |_| vec![0.0],
        );
    }
}
