//! The first part of the backend contract: buffers, their transfers, and the
//! few whole-buffer operations the tape's bookkeeping needs (fill, copy, axpy).

use crate::csr::Csr;

/// Buffers and transfers. `Clone` must be cheap (a handle).
pub trait Memory: Clone + Send + Sync + 'static {
    /// f32 device buffer. Its length is fixed at allocation.
    type Buf: Send + Sync;
    /// u32 device buffer (row indices, labels).
    type IdxBuf: Send + Sync;
    /// A CSR matrix resident on the device (uploaded once).
    type CsrBuf: Send + Sync;
    /// f64 device accumulators (the training log's running sums, gradient norms): summed on
    /// the device step after step and read by the host once in a while.
    type AccBuf: Send + Sync;
    /// The tensors of one multi-tensor call ([`super::StepKernels::adam_queue`],
    /// [`super::StepKernels::sq_norm_queue`]), kept between calls (a GPU keeps its device copy of the tensors' addresses here).
    type TensorTable: Send + Sync + Default;

    /// A training step starts here: a marker for device profilers and the emulated CUDA
    /// device's per-step counters. Does nothing by default.
    fn step_boundary(&self) {}

    /// True when buffers are host memory (CPU): reading a value costs no device round trip,
    /// so the tape may inspect values on the host (e.g. reuse a stashed gradient when the
    /// upstream gradient is uniform) where a device backend recomputes instead.
    fn host_memory(&self) -> bool {
        false
    }

    // ---- memory -------------------------------------------------------------------------
    /// A zero-filled buffer of `len` f32.
    fn alloc(&self, len: usize) -> Self::Buf;
    /// A buffer of `len` u32 (contents unspecified).
    fn alloc_idx(&self, len: usize) -> Self::IdxBuf;
    /// Number of f32 in `buf`.
    fn len(&self, buf: &Self::Buf) -> usize;
    /// Number of u32 in `buf`.
    fn idx_len(&self, buf: &Self::IdxBuf) -> usize;
    /// A zero-filled accumulator of `len` f64.
    fn alloc_acc(&self, len: usize) -> Self::AccBuf;
    /// Set every accumulator to 0.
    fn zero_acc(&self, acc: &mut Self::AccBuf);
    /// Copy the accumulators to the host (an explicit round trip: one copy, one wait).
    fn download_acc(&self, acc: &Self::AccBuf, dst: &mut [f64]);
    /// Copy host data into `dst` (same length).
    fn upload(&self, src: &[f32], dst: &mut Self::Buf);
    /// Copy host indices into `dst` (same length).
    fn upload_idx(&self, src: &[u32], dst: &mut Self::IdxBuf);
    /// Copy `src` to the host slice `dst` (same length). An explicit host round trip.
    fn download(&self, src: &Self::Buf, dst: &mut [f32]);
    /// Upload a CSR matrix with an optional per-row scale (for `Log1pScaled`).
    fn upload_csr(&self, csr: &Csr, row_scale: Option<&[f32]>) -> anyhow::Result<Self::CsrBuf>;
    /// Upload a CSR matrix the caller gives up. A backend whose buffers are host memory (CPU)
    /// keeps the matrix itself, without a copy, and returns `None` (read it back with
    /// [`Memory::host_csr`]); any other backend uploads a copy and returns the host matrix.
    fn upload_csr_owned(
        &self,
        csr: Csr,
        row_scale: Option<&[f32]>,
    ) -> anyhow::Result<(Self::CsrBuf, Option<Csr>)> {
        let buf = self.upload_csr(&csr, row_scale)?;
        Ok((buf, Some(csr)))
    }
    /// The host matrix behind an uploaded CSR, when the backend holds it in host memory.
    fn host_csr(_csr: &Self::CsrBuf) -> Option<&Csr> {
        None
    }
    /// (rows, cols, nnz) of an uploaded CSR matrix.
    fn csr_shape(&self, csr: &Self::CsrBuf) -> (usize, usize, usize);

    // ---- basic --------------------------------------------------------------------------
    fn fill(&self, dst: &mut Self::Buf, value: f32);
    fn copy(&self, src: &Self::Buf, dst: &mut Self::Buf);
    /// y += alpha * x.
    fn axpy(&self, alpha: f32, x: &Self::Buf, y: &mut Self::Buf);
    /// dst[i] += scale * g[0], where g is a 1-element device buffer (upstream scalar
    /// gradient of a full reduction).
    fn broadcast_acc(&self, g: &Self::Buf, scale: f32, dst: &mut Self::Buf);
}
