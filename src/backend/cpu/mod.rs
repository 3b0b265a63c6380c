//! CPU backend: rayon-parallel kernels over `Vec<f32>` buffers.
//!
//! Determinism: every kernel splits work by shape only (fixed chunks) and reduces in a fixed
//! order, so results are bit-identical across runs for a given thread count.

pub mod adam;
pub mod csr;
mod dense_kernels;
pub mod elementwise;
pub mod gemm;
mod loss_kernels;
pub mod losses;
pub mod par;
pub mod random;
pub mod reduce;
pub mod special;
pub mod step;
mod step_kernels;

use super::Memory;
use crate::csr::Csr;
use csr::{CpuCsr, CscScratch};
use std::sync::{Arc, Mutex};

/// The CPU backend handle (cheap to clone). Uses rayon's global pool.
#[derive(Clone, Default)]
pub struct Cpu {
    scratch: Arc<Mutex<CscScratch>>,
    /// Reusable host vectors for kernel outputs nobody reads (e.g. the gradients a
    /// fused value+gradient kernel writes during a forward-only call).
    spare: Arc<Mutex<Vec<Vec<f32>>>>,
}

impl Cpu {
    pub fn new() -> Self {
        Self::default()
    }
}

impl Memory for Cpu {
    type Buf = Vec<f32>;
    type IdxBuf = Vec<u32>;
    type CsrBuf = CpuCsr;
    type AccBuf = Vec<f64>;
    type TensorTable = MultiTensorQueue;

    fn alloc(&self, len: usize) -> Vec<f32> {
        vec![0.0; len]
    }
    fn alloc_idx(&self, len: usize) -> Vec<u32> {
        vec![0; len]
    }
    fn len(&self, buf: &Vec<f32>) -> usize {
        buf.len()
    }
    fn upload(&self, src: &[f32], dst: &mut Vec<f32>) {
        dst.copy_from_slice(src);
    }
    fn upload_idx(&self, src: &[u32], dst: &mut Vec<u32>) {
        dst.copy_from_slice(src);
    }
    fn host_memory(&self) -> bool {
        true
    }
    fn idx_len(&self, buf: &Vec<u32>) -> usize {
        buf.len()
    }
    fn alloc_acc(&self, len: usize) -> Vec<f64> {
        vec![0.0; len]
    }
    fn zero_acc(&self, acc: &mut Vec<f64>) {
        acc.fill(0.0);
    }
    fn download_acc(&self, acc: &Vec<f64>, dst: &mut [f64]) {
        dst.copy_from_slice(acc);
    }
    fn download(&self, src: &Vec<f32>, dst: &mut [f32]) {
        dst.copy_from_slice(src);
    }
    fn upload_csr(&self, csr: &Csr, row_scale: Option<&[f32]>) -> anyhow::Result<CpuCsr> {
        CpuCsr::new(csr, row_scale)
    }
    fn upload_csr_owned(
        &self,
        csr: Csr,
        row_scale: Option<&[f32]>,
    ) -> anyhow::Result<(CpuCsr, Option<Csr>)> {
        Ok((CpuCsr::from_owned(csr, row_scale)?, None))
    }
    fn host_csr(csr: &CpuCsr) -> Option<&Csr> {
        Some(&csr.csr)
    }
    fn csr_shape(&self, csr: &CpuCsr) -> (usize, usize, usize) {
        (csr.n_rows, csr.n_cols, csr.data.len())
    }

    fn fill(&self, dst: &mut Vec<f32>, value: f32) {
        dst.fill(value);
    }
    fn copy(&self, src: &Vec<f32>, dst: &mut Vec<f32>) {
        dst.copy_from_slice(src);
    }
    fn axpy(&self, alpha: f32, x: &Vec<f32>, y: &mut Vec<f32>) {
        par::zip1(y, x, |y, x| *y += alpha * x);
    }
    fn broadcast_acc(&self, g: &Vec<f32>, scale: f32, dst: &mut Vec<f32>) {
        let v = scale * g[0];
        par::acc_into(dst, |_| v);
    }
}

/// The CPU's multi-tensor "queue": updates run when queued; only the squared norm's running
/// sum waits here for the flush (summed in queue order, as the GPU does).
#[derive(Default)]
pub struct MultiTensorQueue {
    norm: f64,
}

impl Cpu {
    /// Run `f` with zero-filled spare vectors of the given lengths (capacity is kept
    /// between calls, so steady-state calls do not allocate).
    pub(crate) fn with_spare<R>(&self, lens: &[usize], f: impl FnOnce(&mut [Vec<f32>]) -> R) -> R {
        let mut spare = self.spare.lock().unwrap_or_else(|e| e.into_inner());
        if spare.len() < lens.len() {
            spare.resize_with(lens.len(), Vec::new);
        }
        for (v, &n) in spare.iter_mut().zip(lens) {
            v.clear();
            v.resize(n, 0.0);
        }
        f(&mut spare[..lens.len()])
    }
}
