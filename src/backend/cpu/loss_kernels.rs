//! The CPU's [`LossKernels`]: the fused value-and-gradient kernels of [`super::losses`], with
//! spare buffers for the half a caller does not ask for.

use super::Cpu;
use super::losses::{self, PerRow};
use crate::backend::{Labelled, Likelihood, LikelihoodGrads, LossKernels};

/// The CPU kernels' view of the likelihood's inputs.
fn counts<'a>(a: &Likelihood<'a, Vec<f32>>) -> losses::Counts<'a, f32> {
    losses::Counts {
        x: a.x,
        mu: a.mu,
        theta: a.theta,
        logit: a.logit.map(|l| l.as_slice()),
        rows: a.rows,
        cols: a.cols,
        eps: a.eps,
    }
}

/// The fused value-and-gradient pass of [`LossKernels::likelihood`] on the CPU.
fn fused_likelihood(
    a: &Likelihood<'_, Vec<f32>>,
    ll: &mut [f32],
    g: LikelihoodGrads<'_, Vec<f32>>,
) {
    let grads = losses::CountGrads {
        upstream: g.upstream,
        dmu: g.dmu,
        dtheta: g.dtheta,
        dlogit: g.dlogit.map(|d| d.as_mut_slice()),
    };
    losses::likelihood_fwd_bwd(&counts(a), ll, grads);
}

/// The masked cross-entropy of `l`, its gradient (unit upstream) into `dlogits`.
fn cross_entropy(l: &Labelled<'_, Cpu>, dlogits: &mut [f32]) -> f32 {
    let mask = l.mask.map(|m| m.as_slice());
    let q = l.gce_q as f64;
    losses::label_loss_masked_fwd_bwd(l.logits, l.labels, mask, l.rows, l.cols, q, dlogits)
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
                losses::likelihood_fwd(&counts(a), ll);
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
            losses::kl_std_normal_fwd_bwd(mean, var, PerRow::new(cols, up, kl), dm, dv);
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
        self.with_spare(&[g.len()], |s| {
            let kl = PerRow::new(cols, g, &mut s[0]);
            losses::kl_std_normal_fwd_bwd(mean, var, kl, dmean, dvar);
        });
    }
    fn kl_normal_fwd(&self, inputs: [&Vec<f32>; 4], cols: usize, kl: &mut Vec<f32>) {
        let [m1, v1, m2, v2] = inputs;
        let (n, rows) = (m1.len(), kl.len());
        self.with_spare(&[rows, n, n, n, n], |s| {
            let [up, a, b, c, d] = s else { unreachable!() };
            let kl = PerRow::new(cols, up, kl);
            losses::kl_normal_fwd_bwd(m1, v1, m2, v2, kl, a, b, c, d);
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
        let [a, b, c, d] = grads;
        self.with_spare(&[g.len()], |s| {
            let kl = PerRow::new(cols, g, &mut s[0]);
            losses::kl_normal_fwd_bwd(m1, v1, m2, v2, kl, a, b, c, d);
        });
    }
    fn cross_entropy_fwd(&self, l: &Labelled<'_, Self>, loss: &mut Vec<f32>) {
        self.with_spare(&[l.logits.len()], |s| loss[0] = cross_entropy(l, &mut s[0]));
    }
    fn cross_entropy_bwd(&self, l: &Labelled<'_, Self>, g: &Vec<f32>, dlogits: &mut Vec<f32>) {
        cross_entropy(l, dlogits);
        dlogits.iter_mut().for_each(|v| *v *= g[0]);
    }
}
