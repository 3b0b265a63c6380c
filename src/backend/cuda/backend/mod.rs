//! [`CudaBackend`]: the tape's [`Backend`] on one GPU, with device-resident buffers.
//!
//! - Buffers are `CudaSlice<f32>` / `CudaSlice<u32>` on the runtime's single stream; every op
//!   only queues work. The host waits only in `download`, `sq_norm` and `uniform_value` (the
//!   trait's explicit round trips).
//! - GEMM is cuBLAS sgemm in full FP32 (TF32 only with `SCDREAMER_TF32=1`); the fused losses,
//!   the sparse first layer and the elementwise ops are the kernels of `kernels/*.cu`
//!   through the typed launchers of [`super::ops`].
//! - Semantics follow the CPU backend (the reference): every `*_bwd` ADDS into its gradients
//!   except the fused-loss backwards, which overwrite (as documented on the trait).
//! - Random numbers: `dropout_mask` reproduces the CPU's counter-based stream bit for bit;
//!   `normal` uses the same bits and Box-Muller, equal to the CPU's draws to a few ulps.
//! - Errors: the trait's methods return nothing, so a failing launch (a lost device, out of
//!   memory, a length mismatch, which is a programming error as on the CPU) panics with a
//!   message naming the op and the GPU. Kernel faults surface at the next host round trip.

use std::sync::Arc;

use anyhow::{Context, Result};
use cudarc::driver::{CudaSlice, DeviceRepr, ValidAsZeroBits};

use super::CudaRuntime;
use super::ops::sparse::{self, DeviceDataset, SpmmBatch};
use super::ops::{elementwise as ew, multi_tensor as mt};
use crate::backend::{InputTransform, Memory};
use crate::csr::Csr;

mod dense;
mod losses;
mod step;

/// The CUDA backend handle (cheap to clone: one `Arc`).
#[derive(Clone)]
pub struct CudaBackend {
    rt: Arc<CudaRuntime>,
}

/// A CSR matrix resident on the GPU (CSR and CSC copies plus a per-row scale).
pub struct CudaCsr {
    ds: DeviceDataset,
    nnz: usize,
}

impl CudaBackend {
    /// A backend on an opened GPU: loads every kernel module and cuBLAS now, so a problem
    /// surfaces here and not in the middle of training.
    pub fn new(rt: Arc<CudaRuntime>) -> Result<Self> {
        rt.load_all()?;
        let blas = rt.blas()?;
        if std::env::var("SCDREAMER_TF32").as_deref() == Ok("1") {
            use cudarc::cublas::sys::{cublasMath_t, cublasSetMathMode};
            // SAFETY: a valid handle; the math mode only changes sgemm's internal precision.
            unsafe { cublasSetMathMode(*blas.handle(), cublasMath_t::CUBLAS_TF32_TENSOR_OP_MATH) }
                .result()
                .map_err(|e| anyhow::anyhow!("cannot enable TF32 in cuBLAS ({e:?})"))?;
        }
        // Every buffer of this backend lives and is used on the runtime's one stream, so the
        // per-buffer CUDA events cudarc records for cross-stream safety are pure overhead (two
        // driver calls per kernel argument). Buffers created from now on skip them.
        // SAFETY: no buffer of this context is used on another stream (see above).
        unsafe { rt.ctx.disable_event_tracking() };
        Ok(CudaBackend { rt })
    }

    /// The opened GPU.
    pub fn runtime(&self) -> &Arc<CudaRuntime> {
        &self.rt
    }

    /// One line naming the GPU.
    pub fn describe(&self) -> String {
        self.rt.describe()
    }

    /// Wait for all queued work (turns an asynchronous kernel fault into an error).
    pub fn synchronize(&self) -> Result<()> {
        self.rt.synchronize()
    }

    /// Unwrap an op's result; see the module doc for why this panics.
    #[track_caller]
    pub(crate) fn ok<T>(&self, r: Result<T>, op: &str) -> T {
        match r {
            Ok(v) => v,
            Err(e) => panic!("CUDA backend: {op} failed on {}: {e:#}", self.rt.describe()),
        }
    }

    /// `len` zeros of `T` on the stream (stream-ordered allocation); panics like [`Self::ok`].
    fn zeros<T: DeviceRepr + ValidAsZeroBits>(&self, len: usize, what: &str) -> CudaSlice<T> {
        self.ok(
            self.rt.stream.alloc_zeros::<T>(len).map_err(Into::into),
            what,
        )
    }

    /// Queue the copy of `src` into `dst`.
    fn copy_to_device<T: DeviceRepr>(&self, src: &[T], dst: &mut CudaSlice<T>, what: &str) {
        if copy_needed(src.len(), dst.len(), what) {
            self.ok(
                self.rt.stream.memcpy_htod(src, dst).map_err(Into::into),
                what,
            );
        }
    }

    /// Copy `src` into `dst` and wait for it: the copy into pageable memory is queued on the
    /// stream (the wait also reports any earlier asynchronous kernel fault here).
    fn copy_to_host<T: DeviceRepr>(&self, src: &CudaSlice<T>, dst: &mut [T], what: &str) {
        if copy_needed(dst.len(), src.len(), what) {
            self.ok(
                self.rt.stream.memcpy_dtoh(src, dst).map_err(Into::into),
                what,
            );
        }
        self.ok(self.rt.synchronize(), what);
    }

    /// A scratch buffer for outputs nobody reads (stream-ordered allocation: freed after the
    /// kernels that use it, without a host wait).
    pub(crate) fn scratch(&self, len: usize) -> CudaSlice<f32> {
        self.zeros::<f32>(len, "scratch allocation")
    }

    fn scratch_f64(&self, len: usize) -> CudaSlice<f64> {
        self.zeros::<f64>(len, "scratch allocation")
    }

    /// A buffer of `len` ones (the upstream gradient of a forward-only fused loss).
    fn ones(&self, len: usize) -> CudaSlice<f32> {
        let mut b = self.scratch(len);
        self.ok(ew::fill(&self.rt, &mut b, 1.0), "fill");
        b
    }
}

/// Whether a copy between `host` and `device` elements has anything to do; panics naming
/// `what` when the lengths differ.
fn copy_needed(host: usize, device: usize, what: &str) -> bool {
    assert_eq!(host, device, "{what}: host and device lengths differ");
    host > 0
}

/// The spmm kernels' transform code for a Backend transform.
fn spmm_transform(t: InputTransform) -> sparse::InputTransform {
    match t {
        InputTransform::Identity => sparse::InputTransform::Identity,
        InputTransform::Log1p => sparse::InputTransform::Log1p,
        InputTransform::Log1pScaled => sparse::InputTransform::Log1pScaled,
    }
}

impl Memory for CudaBackend {
    type Buf = CudaSlice<f32>;
    type IdxBuf = CudaSlice<u32>;
    type CsrBuf = CudaCsr;
    type AccBuf = CudaSlice<f64>;
    type TensorTable = mt::TensorTable;

    fn step_boundary(&self) {
        super::emulator::mark_step();
    }

    // ---- memory ---------------------------------------------------------------------------
    fn alloc(&self, len: usize) -> CudaSlice<f32> {
        self.zeros::<f32>(len, "alloc")
    }
    fn alloc_idx(&self, len: usize) -> CudaSlice<u32> {
        self.zeros::<u32>(len, "alloc_idx")
    }
    fn len(&self, buf: &CudaSlice<f32>) -> usize {
        buf.len()
    }
    fn idx_len(&self, buf: &CudaSlice<u32>) -> usize {
        buf.len()
    }
    fn alloc_acc(&self, len: usize) -> CudaSlice<f64> {
        self.scratch_f64(len)
    }
    fn zero_acc(&self, acc: &mut CudaSlice<f64>) {
        let r = self.rt.stream.memset_zeros(acc);
        self.ok(r.map_err(Into::into), "zero_acc");
    }
    fn download_acc(&self, acc: &CudaSlice<f64>, dst: &mut [f64]) {
        self.copy_to_host(acc, dst, "download_acc");
    }
    fn upload(&self, src: &[f32], dst: &mut CudaSlice<f32>) {
        self.copy_to_device(src, dst, "upload");
    }
    fn upload_idx(&self, src: &[u32], dst: &mut CudaSlice<u32>) {
        self.copy_to_device(src, dst, "upload_idx");
    }
    fn download(&self, src: &CudaSlice<f32>, dst: &mut [f32]) {
        self.copy_to_host(src, dst, "download");
    }
    fn upload_csr(&self, csr: &Csr, row_scale: Option<&[f32]>) -> Result<CudaCsr> {
        crate::backend::validate_csr(csr, row_scale)?;
        // The kernels always get a row scale: ones where none is given, which makes
        // Log1pScaled without a scale ln(1 + v), as on the CPU.
        let ones;
        let scale = match row_scale {
            Some(s) => s,
            None => {
                ones = vec![1.0f32; csr.n_rows];
                &ones
            }
        };
        let ds = DeviceDataset::upload(&self.rt, csr, Some(scale)).with_context(|| {
            format!(
                "cannot upload the {} x {} count matrix ({} non-zeros) to {}",
                csr.n_rows,
                csr.n_cols,
                csr.data.len(),
                self.rt.describe()
            )
        })?;
        Ok(CudaCsr {
            ds,
            nnz: csr.data.len(),
        })
    }
    fn csr_shape(&self, csr: &CudaCsr) -> (usize, usize, usize) {
        (csr.ds.n_rows, csr.ds.n_cols, csr.nnz)
    }

    // ---- basic ----------------------------------------------------------------------------
    fn fill(&self, dst: &mut CudaSlice<f32>, value: f32) {
        self.ok(ew::fill(&self.rt, dst, value), "fill");
    }
    fn copy(&self, src: &CudaSlice<f32>, dst: &mut CudaSlice<f32>) {
        assert_eq!(src.len(), dst.len(), "copy: lengths differ");
        if !src.is_empty() {
            let r = self.rt.stream.memcpy_dtod(src, dst);
            self.ok(r.map_err(Into::into), "copy");
        }
    }
    fn axpy(&self, alpha: f32, x: &CudaSlice<f32>, y: &mut CudaSlice<f32>) {
        self.ok(ew::axpy(&self.rt, alpha, x, y), "axpy");
    }
    fn broadcast_acc(&self, g: &CudaSlice<f32>, scale: f32, dst: &mut CudaSlice<f32>) {
        self.ok(ew::broadcast_acc(&self.rt, g, scale, dst), "broadcast_acc");
    }
}

/// A minibatch of dataset rows with the trait's transform and no column mask or value scale
/// (the trait's sparse products never use those).
fn plain_batch(rows: &CudaSlice<u32>, t: InputTransform) -> SpmmBatch<'_> {
    SpmmBatch {
        rows,
        col_keep: None,
        transform: spmm_transform(t),
        value_scale: 1.0,
    }
}
