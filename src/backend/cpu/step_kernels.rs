//! The CPU's [`StepKernels`]: minibatch gathers, the log's accumulators, clipping and Adam.

use super::{Cpu, MultiTensorQueue, adam, reduce, step};
use crate::backend::{AdamStep, AdamTensor, Labelled, StepKernels};

impl StepKernels for Cpu {
    fn gather_idx(&self, table: &Vec<u32>, idx: &Vec<u32>, n: usize, out: &mut Vec<u32>) {
        step::gather(table, &idx[..n], &mut out[..n]);
    }
    fn gather_values(&self, table: &Vec<f32>, idx: &Vec<u32>, n: usize, out: &mut Vec<f32>) {
        step::gather(table, &idx[..n], &mut out[..n]);
    }
    fn gather_labels(
        &self,
        codes: &Vec<u32>,
        weights: &Vec<f32>,
        idx: &Vec<u32>,
        n: usize,
        labels: &mut Vec<u32>,
        mask: &mut Vec<f32>,
    ) {
        step::gather_labels(codes, weights, &idx[..n], &mut labels[..n], &mut mask[..n]);
    }
    fn acc_values(&self, acc: &mut Vec<f64>, values: &[(usize, &Vec<f32>)]) {
        for &(slot, x) in values {
            acc[slot] += x[0] as f64;
        }
    }
    fn acc_greater_frac(&self, acc: &mut Vec<f64>, slot: usize, a: &Vec<f32>, b: &Vec<f32>) {
        acc[slot] += step::greater_frac(a, b);
    }
    fn acc_argmax_hits(&self, acc: &mut Vec<f64>, slot: usize, l: &Labelled<'_, Self>) {
        let (rows, cols) = (l.rows, l.cols);
        let mask = l.mask.map(|m| &m[..rows]);
        if let Some(f) =
            step::argmax_hit_frac(&l.logits[..rows * cols], &l.labels[..rows], mask, cols)
        {
            acc[slot] += f;
        }
    }
    fn sq_norm_queue(&self, table: &mut MultiTensorQueue, x: &Vec<f32>) {
        table.norm += reduce::sq_norm(x);
    }
    unsafe fn sq_norm_flush(&self, table: &mut MultiTensorQueue, acc: &mut Vec<f64>, slot: usize) {
        acc[slot] += std::mem::take(&mut table.norm);
    }
    fn clip_scale(&self, acc: &Vec<f64>, slot: usize, clip: f32, out: &mut Vec<f32>) {
        out[0] = step::clip_scale(acc[slot], clip);
    }

    fn adam_queue(
        &self,
        _table: &mut MultiTensorQueue,
        s: AdamStep,
        t: AdamTensor<'_, Vec<f32>>,
        grad_scale: Option<&Vec<f32>>,
    ) {
        let s = AdamStep {
            grad_scale: grad_scale.map_or(s.grad_scale, |b| b[0]),
            ..s
        };
        adam::adam(s, t.param, t.grad, t.m, t.v);
    }
    unsafe fn adam_flush(
        &self,
        _table: &mut MultiTensorQueue,
        _s: AdamStep,
        _grad_scale: Option<&Vec<f32>>,
    ) {
    }
}
