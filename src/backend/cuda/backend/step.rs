//! [`StepKernels`] on the GPU: the step's gathers and accumulators, clipping and the
//! multi-tensor Adam update.

use super::CudaBackend;
use crate::backend::cuda::ops::{multi_tensor as mt, step};
use crate::backend::{AdamStep, AdamTensor, Labelled, StepKernels};
use cudarc::driver::CudaSlice;

impl StepKernels for CudaBackend {
    fn gather_idx(
        &self,
        table: &CudaSlice<u32>,
        idx: &CudaSlice<u32>,
        n: usize,
        out: &mut CudaSlice<u32>,
    ) {
        let r = step::gather(&self.rt, "gather_u32", table, idx, n, out);
        self.ok(r, "gather_idx");
    }
    fn gather_values(
        &self,
        table: &CudaSlice<f32>,
        idx: &CudaSlice<u32>,
        n: usize,
        out: &mut CudaSlice<f32>,
    ) {
        let r = step::gather(&self.rt, "gather_f32", table, idx, n, out);
        self.ok(r, "gather_values");
    }
    fn gather_labels(
        &self,
        codes: &CudaSlice<u32>,
        weights: &CudaSlice<f32>,
        idx: &CudaSlice<u32>,
        n: usize,
        labels: &mut CudaSlice<u32>,
        mask: &mut CudaSlice<f32>,
    ) {
        let r = step::gather_labels(&self.rt, codes, weights, idx, n, labels, mask);
        self.ok(r, "gather_labels");
    }
    fn acc_values(&self, acc: &mut CudaSlice<f64>, values: &[(usize, &CudaSlice<f32>)]) {
        self.ok(step::acc_values(&self.rt, acc, values), "acc_values");
    }
    fn acc_greater_frac(
        &self,
        acc: &mut CudaSlice<f64>,
        slot: usize,
        a: &CudaSlice<f32>,
        b: &CudaSlice<f32>,
    ) {
        let r = step::acc_greater_frac(&self.rt, acc, slot, a, b);
        self.ok(r, "acc_greater_frac");
    }
    fn acc_argmax_hits(&self, acc: &mut CudaSlice<f64>, slot: usize, l: &Labelled<'_, Self>) {
        let r = step::acc_argmax_hits(&self.rt, acc, slot, &super::losses::ce_inputs(l));
        self.ok(r, "acc_argmax_hits");
    }
    fn sq_norm_queue(&self, table: &mut mt::TensorTable, x: &CudaSlice<f32>) {
        mt::push_sq_norm(&self.rt, table, x);
    }
    unsafe fn sq_norm_flush(
        &self,
        table: &mut mt::TensorTable,
        acc: &mut CudaSlice<f64>,
        slot: usize,
    ) {
        self.ok(
            mt::flush_sq_norm(&self.rt, table, acc, slot),
            "sq_norm_flush",
        );
    }
    fn clip_scale(&self, acc: &CudaSlice<f64>, slot: usize, clip: f32, out: &mut CudaSlice<f32>) {
        self.ok(
            step::clip_scale(&self.rt, acc, slot, clip, out),
            "clip_scale",
        );
    }

    fn adam_queue(
        &self,
        table: &mut mt::TensorTable,
        _s: AdamStep,
        t: AdamTensor<'_, CudaSlice<f32>>,
        _grad_scale: Option<&CudaSlice<f32>>,
    ) {
        let r = mt::push_adam(&self.rt, table, t.param, t.grad, t.m, t.v);
        self.ok(r, "adam_queue");
    }
    unsafe fn adam_flush(
        &self,
        table: &mut mt::TensorTable,
        s: AdamStep,
        grad_scale: Option<&CudaSlice<f32>>,
    ) {
        self.ok(mt::flush_adam(&self.rt, table, s, grad_scale), "adam_flush");
    }
}
