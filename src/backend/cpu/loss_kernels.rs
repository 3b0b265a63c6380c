//! The CPU's [`LossKernels`]: the fused value-and-gradient kernels of [`super::losses`], with
//! spare buffers for the half a caller does not ask for.

use super::{Cpu, losses};
use crate::backend::{Labelled, Likelihood, LikelihoodGrads, LossKernels};

/// The fused value-and-gradient pass of [`LossKernels::likelihood`] on the CPU.
fn fused_likelihood(
    a: &Likelihood<'_, Vec<f32>>,
    ll: &mut [f32],
    g: LikelihoodGrads<'_, Vec<f32>>,
) {
    let Likelihood {
        x,
        mu,
        theta,
        rows,
        cols,
        eps,
        ..
    } = *a;
    let LikelihoodGrads {
        upstream,
        dmu,
        dtheta,
        dlogit,
    } = g;
    match a.logit {
        Some(logit) => {
            let dlogit = dlogit.expect("the ZINB's gradients include dlogit");
            losses::zinb_fwd_bwd(
                x, mu, theta, logit, rows, cols, eps, upstream, ll, dmu, dtheta, dlogit,
            )
        }
        None => losses::nb_fwd_bwd(x, mu, theta, rows, cols, eps, upstream, ll, dmu, dtheta),
    }
}

impl LossKernels for Cpu {
    fn likelihood(
        &self,
        a: &Likelihood<'_, Vec<f32>>,
        ll: Option<&mut Vec<f32>>,
        grads: Option<LikelihoodGrads<'_, Vec<f32>>>,
    ) {
        let Some(grads) = grads else {
            if let Some(ll) = ll {
                let Likelihood {
                    x,
                    mu,
                    theta,
                    rows,
                    cols,
                    eps,
                    ..
                } = *a;
                match a.logit {
                    Some(logit) => losses::zinb_fwd(x, mu, theta, logit, rows, cols, eps, ll),
                    None => losses::nb_fwd(x, mu, theta, rows, cols, eps, ll),
                }
            }
            return;
        };
        match ll {
            Some(ll) => fused_likelihood(a, ll, grads),
            // The value is a by-product nobody reads: a spare buffer takes it.
            None => self.with_spare(&[a.rows], |s| fused_likelihood(a, &mut s[0], grads)),
        }
    }
    fn uniform_value(&self, g: &Vec<f32>) -> Option<f32> {
        let v = *g.first()?;
        g.iter().all(|&x| x.to_bits() == v.to_bits()).then_some(v)
    }
    fn kl_std_normal_fwd(&self, mean: &Vec<f32>, var: &Vec<f32>, cols: usize, kl: &mut Vec<f32>) {
        let (n, rows) = (mean.len(), kl.len());
        self.with_spare(&[rows, n, n], |s| {
            let [up, dm, dv] = s else { unreachable!() };
            losses::kl_std_normal_fwd_bwd(mean, var, rows, cols, up, kl, dm, dv);
        });
    }
    fn kl_std_normal_bwd(
        &self,
        mean: &Vec<f32>,
        var: &Vec<f32>,
        cols: usize,
        g: &Vec<f32>,
        dmean: &mut Vec<f32>,
        dvar: &mut Vec<f32>,
    ) {
        let rows = g.len();
        self.with_spare(&[rows], |s| {
            losses::kl_std_normal_fwd_bwd(mean, var, rows, cols, g, &mut s[0], dmean, dvar);
        });
    }
    fn kl_normal_fwd(&self, inputs: [&Vec<f32>; 4], cols: usize, kl: &mut Vec<f32>) {
        let [m1, v1, m2, v2] = inputs;
        let (n, rows) = (m1.len(), kl.len());
        self.with_spare(&[rows, n, n, n, n], |s| {
            let [up, a, b, c, d] = s else { unreachable!() };
            losses::kl_normal_fwd_bwd(m1, v1, m2, v2, rows, cols, up, kl, a, b, c, d);
        });
    }
    fn kl_normal_bwd(
        &self,
        inputs: [&Vec<f32>; 4],
        cols: usize,
        g: &Vec<f32>,
        grads: [&mut Vec<f32>; 4],
    ) {
        let [m1, v1, m2, v2] = inputs;
        let rows = g.len();
        let [a, b, c, d] = grads;
        self.with_spare(&[rows], |s| {
            losses::kl_normal_fwd_bwd(m1, v1, m2, v2, rows, cols, g, &mut s[0], a, b, c, d);
        });
    }
    fn cross_entropy_fwd(&self, l: &Labelled<'_, Self>, loss: &mut Vec<f32>) {
        let Labelled {
            logits,
            labels,
            mask,
            rows,
            cols,
        } = *l;
        let m = mask.map(|m| m.as_slice());
        self.with_spare(&[logits.len()], |s| {
            loss[0] =
                losses::cross_entropy_masked_fwd_bwd(logits, labels, m, rows, cols, &mut s[0]);
        });
    }
    fn cross_entropy_bwd(&self, l: &Labelled<'_, Self>, g: &Vec<f32>, dlogits: &mut Vec<f32>) {
        let Labelled {
            logits,
            labels,
            mask,
            rows,
            cols,
        } = *l;
        let m = mask.map(|m| m.as_slice());
        losses::cross_entropy_masked_fwd_bwd(logits, labels, m, rows, cols, dlogits);
        dlogits.iter_mut().for_each(|v| *v *= g[0]);
    }
}
