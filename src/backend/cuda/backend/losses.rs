//! [`LossKernels`] on the GPU: the fused loss kernels (`kernels/zinb.cu`, `kernels/kl_ce.cu`).

use super::CudaBackend;
use crate::backend::cuda::ops::kl_ce::{self, Kl};
use crate::backend::cuda::ops::{elementwise as ew, loss};
use crate::backend::{Labelled, Likelihood, LikelihoodGrads, LossKernels};
use cudarc::driver::CudaSlice;

/// The cross-entropy launchers' inputs: the trait's [`Labelled`] on this backend.
pub(super) fn ce_inputs<'a>(l: &Labelled<'a, CudaBackend>) -> kl_ce::CeInputs<'a> {
    kl_ce::CeInputs {
        logits: l.logits,
        labels: l.labels,
        mask: l.mask,
        rows: l.rows,
        cols: l.cols,
        gce_q: l.gce_q,
    }
}

impl CudaBackend {
    /// The fused NB/ZINB kernel (overwrites `ll`, `dmu`, `dtheta` and, for the ZINB, `dlogit`).
    fn fused_likelihood(
        &self,
        a: &Likelihood<'_, CudaSlice<f32>>,
        g: &CudaSlice<f32>,
        ll: &mut CudaSlice<f32>,
        dmu: &mut CudaSlice<f32>,
        dtheta: &mut CudaSlice<f32>,
        dlogit: Option<&mut CudaSlice<f32>>,
    ) {
        let Likelihood {
            x,
            mu,
            theta,
            logit,
            rows,
            cols,
            eps,
        } = *a;
        let inputs = loss::ZinbInputs {
            x,
            mu,
            theta,
            logit,
            upstream: g,
            rows,
            cols,
            eps,
            // The CPU's zero test is x < eps.
            zero_threshold: eps,
        };
        let outputs = loss::ZinbOutputs {
            ll_rows: ll,
            dmu,
            dlogit,
            dtheta,
            accumulate_dtheta: false,
        };
        if cols == 0 {
            // No genes: every row's log-likelihood is 0 (the kernel returns early).
            self.ok(ew::fill(&self.rt, outputs.ll_rows, 0.0), "zinb");
            return;
        }
        self.ok(loss::zinb_fwd_bwd(&self.rt, &inputs, outputs), "zinb/nb");
    }
}

impl LossKernels for CudaBackend {
    fn likelihood(
        &self,
        a: &Likelihood<'_, CudaSlice<f32>>,
        ll: Option<&mut CudaSlice<f32>>,
        grads: Option<LikelihoodGrads<'_, CudaSlice<f32>>>,
    ) {
        let (rows, cols) = (a.rows, a.cols);
        let mut ll_scratch;
        let ll = match ll {
            Some(ll) => ll,
            None => {
                ll_scratch = self.scratch(rows);
                &mut ll_scratch
            }
        };
        let ones;
        let (mut dmu_s, mut dtheta_s, mut dlogit_s);
        let (upstream, dmu, dtheta, dlogit) = match grads {
            Some(g) => (g.upstream, g.dmu, g.dtheta, g.dlogit),
            None => {
                // The value alone: the fused kernel's gradients go to scratch.
                ones = self.ones(rows);
                dmu_s = self.scratch(rows * cols);
                dtheta_s = self.scratch(cols);
                dlogit_s = a.logit.map(|_| self.scratch(rows * cols));
                (&ones, &mut dmu_s, &mut dtheta_s, dlogit_s.as_mut())
            }
        };
        self.fused_likelihood(a, upstream, ll, dmu, dtheta, dlogit);
    }
    fn uniform_value(&self, g: &CudaSlice<f32>) -> Option<f32> {
        if g.is_empty() {
            return None;
        }
        let host = self.ok(
            self.rt.stream.clone_dtoh(g).map_err(Into::into),
            "uniform_value",
        );
        self.ok(self.rt.synchronize(), "uniform_value");
        let v = host[0];
        host.iter().all(|x| x.to_bits() == v.to_bits()).then_some(v)
    }
    fn kl_std_normal_fwd(
        &self,
        mean: &CudaSlice<f32>,
        var: &CudaSlice<f32>,
        cols: usize,
        kl: &mut CudaSlice<f32>,
    ) {
        let r = kl_ce::kl_fwd(&self.rt, Kl::StdNormal, [mean, var], cols, kl);
        self.ok(r, "kl_std_normal_fwd");
    }
    fn kl_std_normal_bwd(
        &self,
        mean: &CudaSlice<f32>,
        var: &CudaSlice<f32>,
        cols: usize,
        g: &CudaSlice<f32>,
        dmean: &mut CudaSlice<f32>,
        dvar: &mut CudaSlice<f32>,
    ) {
        let r = kl_ce::kl_bwd(&self.rt, Kl::StdNormal, [mean, var], cols, g, [dmean, dvar]);
        self.ok(r, "kl_std_normal_bwd");
    }
    fn kl_normal_fwd(&self, inputs: [&CudaSlice<f32>; 4], cols: usize, kl: &mut CudaSlice<f32>) {
        let r = kl_ce::kl_fwd(&self.rt, Kl::Normal, inputs, cols, kl);
        self.ok(r, "kl_normal_fwd");
    }
    fn kl_normal_bwd(
        &self,
        inputs: [&CudaSlice<f32>; 4],
        cols: usize,
        g: &CudaSlice<f32>,
        grads: [&mut CudaSlice<f32>; 4],
    ) {
        let r = kl_ce::kl_bwd(&self.rt, Kl::Normal, inputs, cols, g, grads);
        self.ok(r, "kl_normal_bwd");
    }
    fn cross_entropy_fwd(&self, l: &Labelled<'_, Self>, loss_out: &mut CudaSlice<f32>) {
        let inputs = ce_inputs(l);
        let (mut lr, mut sel) = (
            self.scratch_f64(l.rows.max(1)),
            self.scratch_f64(l.rows.max(1)),
        );
        let r = kl_ce::cross_entropy_fwd(&self.rt, &inputs, (&mut lr, &mut sel), loss_out);
        self.ok(r, "cross_entropy_fwd");
    }
    fn cross_entropy_bwd(
        &self,
        l: &Labelled<'_, Self>,
        g: &CudaSlice<f32>,
        dlogits: &mut CudaSlice<f32>,
    ) {
        let inputs = ce_inputs(l);
        let mut count = self.scratch_f64(1);
        let r = kl_ce::cross_entropy_bwd(&self.rt, &inputs, g, &mut count, dlogits);
        self.ok(r, "cross_entropy_bwd");
    }
}
