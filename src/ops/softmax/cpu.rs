//! The softmax kernels on the CPU: rows in fixed chunks (bit-identical for any thread count).

use super::SoftmaxKernels;
use crate::backend::cpu::Cpu;
use crate::backend::cpu::par::{self, chunks_mut};

impl SoftmaxKernels for Cpu {
    fn softmax_rows(&self, x: &Vec<f32>, cols: usize, y: &mut Vec<f32>) {
        if cols > 0 {
            softmax_rows(x, cols, y);
        }
    }
    fn softmax_rows_bwd(&self, y: &Vec<f32>, dy: &Vec<f32>, cols: usize, dx: &mut Vec<f32>) {
        if cols > 0 {
            softmax_rows_bwd(y, dy, cols, dx);
        }
    }
}

fn softmax_rows(x: &[f32], cols: usize, y: &mut [f32]) {
    assert_eq!(x.len(), y.len());
    chunks_mut(y, par::row_chunk(cols), |off, o| {
        for (k, yr) in o.chunks_mut(cols.max(1)).enumerate() {
            let xr = &x[off + k * cols..off + (k + 1) * cols];
            let m = xr.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
            let mut s = 0.0f32;
            for (o, &v) in yr.iter_mut().zip(xr) {
                *o = (v - m).exp();
                s += *o;
            }
            let inv = 1.0 / s;
            yr.iter_mut().for_each(|o| *o *= inv);
        }
    });
}

fn softmax_rows_bwd(y: &[f32], dy: &[f32], cols: usize, dx: &mut [f32]) {
    chunks_mut(dx, par::row_chunk(cols), |off, o| {
        for (k, dr) in o.chunks_mut(cols.max(1)).enumerate() {
            let s0 = off + k * cols;
            let (yr, gr) = (&y[s0..s0 + cols], &dy[s0..s0 + cols]);
            let dot: f32 = yr.iter().zip(gr).map(|(a, b)| a * b).sum();
            for ((d, &yv), &g) in dr.iter_mut().zip(yr).zip(gr) {
                *d += yv * (g - dot);
            }
        }
    });
}
