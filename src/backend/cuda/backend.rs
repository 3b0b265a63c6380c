//! [`CudaBackend`]: the tape's [`Backend`] on one GPU, with device-resident buffers.
//!
//! - Buffers are `CudaSlice<f32>` / `CudaSlice<u32>` on the runtime's single stream; every op
//!   only queues work. The host waits only in `download`, `sq_norm` and `uniform_value` (the
//!   trait's explicit round trips).
//! - GEMM is cuBLAS sgemm in full FP32 (TF32 only with `SCDREAMER_TF32=1`); the fused losses,
//!   the sparse first layer, softmax and the elementwise ops are the kernels of `kernels/*.cu`
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
use cudarc::driver::CudaSlice;

use super::CudaRuntime;
use super::ops::sparse::{self, DeviceDataset, SpmmBatch};
use super::ops::{dense, elementwise as ew, kl_ce, loss, multi_tensor as mt, reduce, rows, step};
use crate::backend::{AdamStep, Backend, Binary, GemmSpec, InputTransform, Unary};
use crate::data::Csr;

/// Clip of the Bhattacharyya coefficient inside its log (ops::losses::bhattacharyya::BC_CLIP).
const BC_CLIP: (f32, f32) = (1e-4, 1e4);

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
    fn ok<T>(&self, r: Result<T>, op: &str) -> T {
        match r {
            Ok(v) => v,
            Err(e) => panic!("CUDA backend: {op} failed on {}: {e:#}", self.rt.describe()),
        }
    }

    /// A scratch buffer for outputs nobody reads (stream-ordered allocation: freed after the
    /// kernels that use it, without a host wait).
    fn scratch(&self, len: usize) -> CudaSlice<f32> {
        self.ok(
            self.rt.stream.alloc_zeros::<f32>(len).map_err(Into::into),
            "scratch allocation",
        )
    }

    fn scratch_f64(&self, len: usize) -> CudaSlice<f64> {
        self.ok(
            self.rt.stream.alloc_zeros::<f64>(len).map_err(Into::into),
            "scratch allocation",
        )
    }

    /// A buffer of `len` ones (the upstream gradient of a forward-only fused loss).
    fn ones(&self, len: usize) -> CudaSlice<f32> {
        let mut b = self.scratch(len);
        self.ok(ew::fill(&self.rt, &mut b, 1.0), "fill");
        b
    }

    /// The fused NB/ZINB kernel (overwrites `ll`, `dmu`, `dtheta` and, for the ZINB, `dlogit`).
    #[allow(clippy::too_many_arguments)]
    fn likelihood(
        &self,
        x: &CudaSlice<f32>,
        mu: &CudaSlice<f32>,
        theta: &CudaSlice<f32>,
        logit: Option<&CudaSlice<f32>>,
        rows: usize,
        cols: usize,
        eps: f32,
        g: &CudaSlice<f32>,
        ll: &mut CudaSlice<f32>,
        dmu: &mut CudaSlice<f32>,
        dtheta: &mut CudaSlice<f32>,
        dlogit: Option<&mut CudaSlice<f32>>,
    ) {
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

/// The spmm kernels' transform code for a Backend transform.
fn spmm_transform(t: InputTransform) -> sparse::InputTransform {
    match t {
        InputTransform::Identity => sparse::InputTransform::Identity,
        InputTransform::Log1p => sparse::InputTransform::Log1p,
        InputTransform::Log1pScaled => sparse::InputTransform::Log1pScaled,
    }
}

impl Backend for CudaBackend {
    type Buf = CudaSlice<f32>;
    type IdxBuf = CudaSlice<u32>;
    type CsrBuf = CudaCsr;
    type AccBuf = CudaSlice<f64>;
    type TensorTable = mt::TensorTable;

    fn name(&self) -> &'static str {
        "cuda"
    }

    fn step_boundary(&self) {
        super::emulator::mark_step();
    }

    // ---- memory ---------------------------------------------------------------------------
    fn alloc(&self, len: usize) -> CudaSlice<f32> {
        self.ok(
            self.rt.stream.alloc_zeros::<f32>(len).map_err(Into::into),
            "alloc",
        )
    }
    fn alloc_idx(&self, len: usize) -> CudaSlice<u32> {
        self.ok(
            self.rt.stream.alloc_zeros::<u32>(len).map_err(Into::into),
            "alloc_idx",
        )
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
        assert_eq!(acc.len(), dst.len(), "download_acc: lengths differ");
        if !dst.is_empty() {
            let r = self.rt.stream.memcpy_dtoh(acc, dst);
            self.ok(r.map_err(Into::into), "download_acc");
        }
        self.ok(self.rt.synchronize(), "download_acc");
    }
    fn upload(&self, src: &[f32], dst: &mut CudaSlice<f32>) {
        assert_eq!(
            src.len(),
            dst.len(),
            "upload: host and device lengths differ"
        );
        if !src.is_empty() {
            let r = self.rt.stream.memcpy_htod(src, dst);
            self.ok(r.map_err(Into::into), "upload");
        }
    }
    fn upload_idx(&self, src: &[u32], dst: &mut CudaSlice<u32>) {
        assert_eq!(
            src.len(),
            dst.len(),
            "upload_idx: host and device lengths differ"
        );
        if !src.is_empty() {
            let r = self.rt.stream.memcpy_htod(src, dst);
            self.ok(r.map_err(Into::into), "upload_idx");
        }
    }
    fn download(&self, src: &CudaSlice<f32>, dst: &mut [f32]) {
        assert_eq!(
            src.len(),
            dst.len(),
            "download: device and host lengths differ"
        );
        if !dst.is_empty() {
            let r = self.rt.stream.memcpy_dtoh(src, dst);
            self.ok(r.map_err(Into::into), "download");
        }
        // The copy into pageable memory is queued on the stream: wait for it (and report any
        // earlier asynchronous kernel fault here).
        self.ok(self.rt.synchronize(), "download");
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

    // ---- dense and sparse products ----------------------------------------------------------
    fn gemm(&self, s: GemmSpec, a: &CudaSlice<f32>, b: &CudaSlice<f32>, c: &mut CudaSlice<f32>) {
        if s.k == 0 && s.m * s.n > 0 {
            // The empty product is 0: C = beta C (beta 0 overwrites, never reads C).
            assert_eq!(c.len(), s.m * s.n, "gemm: C has the wrong length");
            let r = if s.beta == 0.0 {
                ew::fill(&self.rt, c, 0.0)
            } else {
                ew::scale_inplace(&self.rt, c, s.beta)
            };
            self.ok(r, "gemm");
            return;
        }
        let r = dense::gemm(
            &self.rt, s.trans_a, s.trans_b, s.m, s.n, s.k, s.alpha, a, b, s.beta, c,
        );
        self.ok(r, "gemm");
    }
    fn csr_matmul(
        &self,
        x: &CudaCsr,
        rows: &CudaSlice<u32>,
        n_rows: usize,
        t: InputTransform,
        w: &CudaSlice<f32>,
        n_out: usize,
        out: &mut CudaSlice<f32>,
    ) {
        assert_eq!(rows.len(), n_rows, "csr_matmul: row list length");
        let batch = plain_batch(rows, t);
        let r = sparse::csr_spmm(&self.rt, &x.ds, &batch, w, n_out, out, false);
        self.ok(r, "csr_matmul");
    }
    fn csr_matmul_wgrad(
        &self,
        x: &CudaCsr,
        rows: &CudaSlice<u32>,
        n_rows: usize,
        t: InputTransform,
        dy: &CudaSlice<f32>,
        n_out: usize,
        dw: &mut CudaSlice<f32>,
    ) {
        assert_eq!(rows.len(), n_rows, "csr_matmul_wgrad: row list length");
        let batch = plain_batch(rows, t);
        let r = sparse::csc_spmm_weight_grad(&self.rt, &x.ds, &batch, dy, n_out, dw, true);
        self.ok(r, "csr_matmul_wgrad");
    }
    fn csr_gather_dense(
        &self,
        x: &CudaCsr,
        rows: &CudaSlice<u32>,
        n_rows: usize,
        t: InputTransform,
        out: &mut CudaSlice<f32>,
    ) {
        assert_eq!(rows.len(), n_rows, "csr_gather_dense: row list length");
        let r = sparse::csr_gather_dense(&self.rt, &x.ds, rows, spmm_transform(t), out);
        self.ok(r, "csr_gather_dense");
    }

    // ---- row gather, bias -------------------------------------------------------------------
    fn gather_add_rows(
        &self,
        x: &CudaSlice<f32>,
        table: &CudaSlice<f32>,
        idx: &CudaSlice<u32>,
        cols: usize,
        out: &mut CudaSlice<f32>,
    ) {
        if cols > 0 {
            let r = rows::gather_add_rows(&self.rt, x, table, idx, cols, out);
            self.ok(r, "gather_add_rows");
        }
    }
    fn scatter_add_rows(
        &self,
        dy: &CudaSlice<f32>,
        idx: &CudaSlice<u32>,
        cols: usize,
        dtable: &mut CudaSlice<f32>,
    ) {
        if cols == 0 {
            return;
        }
        let n_table = dtable.len() / cols;
        let r = sparse::scatter_rows_grad(&self.rt, dy, idx, cols, n_table, dtable, true);
        self.ok(r, "scatter_add_rows");
    }
    fn add_bias(
        &self,
        x: &CudaSlice<f32>,
        b: &CudaSlice<f32>,
        cols: usize,
        out: &mut CudaSlice<f32>,
    ) {
        if cols == 0 || x.is_empty() {
            return;
        }
        let rows = x.len() / cols;
        let r = dense::bias_act_dropout(
            &self.rt,
            x,
            Some(b),
            rows,
            cols,
            dense::Act::Identity,
            0.0,
            1.0,
            0,
            out,
        );
        self.ok(r, "add_bias");
    }
    fn col_sum_acc(&self, dy: &CudaSlice<f32>, cols: usize, db: &mut CudaSlice<f32>) {
        if cols == 0 {
            return;
        }
        let rows = dy.len() / cols;
        let r = reduce::sum_leading_axis(&self.rt, dy, rows, cols, db, true);
        self.ok(r, "col_sum_acc");
    }

    // ---- elementwise ------------------------------------------------------------------------
    fn unary(&self, f: Unary, x: &CudaSlice<f32>, y: &mut CudaSlice<f32>) {
        self.ok(ew::unary(&self.rt, f, x, y), "unary");
    }
    fn unary_bwd(
        &self,
        f: Unary,
        x: &CudaSlice<f32>,
        y: &CudaSlice<f32>,
        dy: &CudaSlice<f32>,
        dx: &mut CudaSlice<f32>,
    ) {
        self.ok(ew::unary_bwd(&self.rt, f, x, y, dy, dx), "unary_bwd");
    }
    fn binary(&self, f: Binary, a: &CudaSlice<f32>, b: &CudaSlice<f32>, out: &mut CudaSlice<f32>) {
        self.ok(ew::binary(&self.rt, f, a, b, out), "binary");
    }
    fn binary_bwd(
        &self,
        f: Binary,
        a: &CudaSlice<f32>,
        b: &CudaSlice<f32>,
        dy: &CudaSlice<f32>,
        da: Option<&mut CudaSlice<f32>>,
        db: Option<&mut CudaSlice<f32>>,
    ) {
        if let Some(da) = da {
            self.ok(ew::binary_bwd_side(&self.rt, f, 0, b, dy, da), "binary_bwd");
        }
        if let Some(db) = db {
            self.ok(ew::binary_bwd_side(&self.rt, f, 1, a, dy, db), "binary_bwd");
        }
    }
    fn mul_rows(
        &self,
        x: &CudaSlice<f32>,
        c: &CudaSlice<f32>,
        cols: usize,
        out: &mut CudaSlice<f32>,
    ) {
        if cols > 0 {
            self.ok(rows::mul_rows(&self.rt, x, c, cols, out), "mul_rows");
        }
    }
    fn mul_rows_bwd(
        &self,
        x: &CudaSlice<f32>,
        c: &CudaSlice<f32>,
        dy: &CudaSlice<f32>,
        cols: usize,
        dx: Option<&mut CudaSlice<f32>>,
        dc: Option<&mut CudaSlice<f32>>,
    ) {
        if cols == 0 {
            return;
        }
        if let Some(dx) = dx {
            self.ok(
                rows::mul_rows_bwd_x(&self.rt, c, dy, cols, dx),
                "mul_rows_bwd",
            );
        }
        if let Some(dc) = dc {
            self.ok(
                rows::mul_rows_bwd_c(&self.rt, x, dy, cols, dc),
                "mul_rows_bwd",
            );
        }
    }
    fn concat_cols(
        &self,
        a: &CudaSlice<f32>,
        ca: usize,
        b: &CudaSlice<f32>,
        cb: usize,
        out: &mut CudaSlice<f32>,
    ) {
        self.ok(
            rows::concat_cols(&self.rt, a, ca, b, cb, out),
            "concat_cols",
        );
    }
    fn concat_cols_bwd(
        &self,
        dy: &CudaSlice<f32>,
        ca: usize,
        cb: usize,
        da: Option<&mut CudaSlice<f32>>,
        db: Option<&mut CudaSlice<f32>>,
    ) {
        let w = ca + cb;
        if let Some(da) = da {
            let r = rows::concat_cols_bwd_side(&self.rt, dy, w, 0, ca, da);
            self.ok(r, "concat_cols_bwd");
        }
        if let Some(db) = db {
            let r = rows::concat_cols_bwd_side(&self.rt, dy, w, ca, cb, db);
            self.ok(r, "concat_cols_bwd");
        }
    }
    fn softmax_rows(&self, x: &CudaSlice<f32>, cols: usize, y: &mut CudaSlice<f32>) {
        if cols == 0 {
            return;
        }
        let r = reduce::softmax_rows(&self.rt, x, x.len() / cols, cols, y);
        self.ok(r, "softmax_rows");
    }
    fn softmax_rows_bwd(
        &self,
        y: &CudaSlice<f32>,
        dy: &CudaSlice<f32>,
        cols: usize,
        dx: &mut CudaSlice<f32>,
    ) {
        if cols == 0 {
            return;
        }
        let r = reduce::softmax_rows_backward(&self.rt, y, dy, y.len() / cols, cols, dx, true);
        self.ok(r, "softmax_rows_bwd");
    }

    // ---- randomness -------------------------------------------------------------------------
    fn dropout_mask(&self, seed: u64, keep: f32, mask: &mut CudaSlice<f32>) {
        self.ok(ew::dropout_mask(&self.rt, seed, keep, mask), "dropout_mask");
    }
    fn normal(&self, seed: u64, out: &mut CudaSlice<f32>) {
        self.ok(ew::normal(&self.rt, seed, out), "normal");
    }
    fn reparam(
        &self,
        mean: &CudaSlice<f32>,
        var: &CudaSlice<f32>,
        eps: &CudaSlice<f32>,
        z: &mut CudaSlice<f32>,
    ) {
        self.ok(ew::reparam(&self.rt, mean, var, eps, z), "reparam");
    }
    fn reparam_bwd(
        &self,
        var: &CudaSlice<f32>,
        eps: &CudaSlice<f32>,
        dz: &CudaSlice<f32>,
        dmean: Option<&mut CudaSlice<f32>>,
        dvar: Option<&mut CudaSlice<f32>>,
    ) {
        if let Some(dm) = dmean {
            self.ok(ew::axpy(&self.rt, 1.0, dz, dm), "reparam_bwd");
        }
        if let Some(dv) = dvar {
            self.ok(
                ew::reparam_bwd_var(&self.rt, var, eps, dz, dv),
                "reparam_bwd",
            );
        }
    }

    // ---- reductions -------------------------------------------------------------------------
    fn sum_all(&self, x: &CudaSlice<f32>, out: &mut CudaSlice<f32>) {
        let mut partials = self.scratch_f64(rows::SUM_F64_BLOCKS);
        let r = rows::sum_f64(&self.rt, x, false, &mut partials, rows::SumTarget::F32(out));
        self.ok(r, "sum_all");
    }
    fn sum_rows(&self, x: &CudaSlice<f32>, cols: usize, out: &mut CudaSlice<f32>) {
        self.ok(rows::sum_rows_f64(&self.rt, x, cols, out), "sum_rows");
    }
    fn sum_rows_bwd(&self, dy: &CudaSlice<f32>, cols: usize, dx: &mut CudaSlice<f32>) {
        self.ok(ew::sum_rows_bwd(&self.rt, dy, cols, dx), "sum_rows_bwd");
    }
    fn sq_norm(&self, x: &CudaSlice<f32>) -> f64 {
        let mut partials = self.scratch_f64(rows::SUM_F64_BLOCKS);
        let mut total = self.scratch_f64(1);
        let r = rows::sum_f64(
            &self.rt,
            x,
            true,
            &mut partials,
            rows::SumTarget::F64(&mut total),
        );
        self.ok(r, "sq_norm");
        let host = self.ok(
            self.rt.stream.clone_dtoh(&total).map_err(Into::into),
            "sq_norm",
        );
        self.ok(self.rt.synchronize(), "sq_norm");
        host[0]
    }

    // ---- fused losses -------------------------------------------------------------------------
    fn zinb_fwd(
        &self,
        x: &CudaSlice<f32>,
        mu: &CudaSlice<f32>,
        theta: &CudaSlice<f32>,
        logit: &CudaSlice<f32>,
        rows: usize,
        cols: usize,
        eps: f32,
        ll: &mut CudaSlice<f32>,
    ) {
        let g = self.ones(rows);
        let (mut dmu, mut dlogit, mut dtheta) = (
            self.scratch(rows * cols),
            self.scratch(rows * cols),
            self.scratch(cols),
        );
        self.likelihood(
            x,
            mu,
            theta,
            Some(logit),
            rows,
            cols,
            eps,
            &g,
            ll,
            &mut dmu,
            &mut dtheta,
            Some(&mut dlogit),
        );
    }
    fn zinb_bwd(
        &self,
        x: &CudaSlice<f32>,
        mu: &CudaSlice<f32>,
        theta: &CudaSlice<f32>,
        logit: &CudaSlice<f32>,
        rows: usize,
        cols: usize,
        eps: f32,
        g: &CudaSlice<f32>,
        dmu: &mut CudaSlice<f32>,
        dtheta: &mut CudaSlice<f32>,
        dlogit: &mut CudaSlice<f32>,
    ) {
        let mut ll = self.scratch(rows);
        self.likelihood(
            x,
            mu,
            theta,
            Some(logit),
            rows,
            cols,
            eps,
            g,
            &mut ll,
            dmu,
            dtheta,
            Some(dlogit),
        );
    }
    fn zinb_fwd_bwd(
        &self,
        x: &CudaSlice<f32>,
        mu: &CudaSlice<f32>,
        theta: &CudaSlice<f32>,
        logit: &CudaSlice<f32>,
        rows: usize,
        cols: usize,
        eps: f32,
        g: &CudaSlice<f32>,
        ll: &mut CudaSlice<f32>,
        dmu: &mut CudaSlice<f32>,
        dtheta: &mut CudaSlice<f32>,
        dlogit: &mut CudaSlice<f32>,
    ) {
        self.likelihood(
            x,
            mu,
            theta,
            Some(logit),
            rows,
            cols,
            eps,
            g,
            ll,
            dmu,
            dtheta,
            Some(dlogit),
        );
    }
    fn nb_fwd(
        &self,
        x: &CudaSlice<f32>,
        mu: &CudaSlice<f32>,
        theta: &CudaSlice<f32>,
        rows: usize,
        cols: usize,
        eps: f32,
        ll: &mut CudaSlice<f32>,
    ) {
        let g = self.ones(rows);
        let (mut dmu, mut dtheta) = (self.scratch(rows * cols), self.scratch(cols));
        self.likelihood(
            x,
            mu,
            theta,
            None,
            rows,
            cols,
            eps,
            &g,
            ll,
            &mut dmu,
            &mut dtheta,
            None,
        );
    }
    fn nb_bwd(
        &self,
        x: &CudaSlice<f32>,
        mu: &CudaSlice<f32>,
        theta: &CudaSlice<f32>,
        rows: usize,
        cols: usize,
        eps: f32,
        g: &CudaSlice<f32>,
        dmu: &mut CudaSlice<f32>,
        dtheta: &mut CudaSlice<f32>,
    ) {
        let mut ll = self.scratch(rows);
        self.likelihood(
            x, mu, theta, None, rows, cols, eps, g, &mut ll, dmu, dtheta, None,
        );
    }
    fn nb_fwd_bwd(
        &self,
        x: &CudaSlice<f32>,
        mu: &CudaSlice<f32>,
        theta: &CudaSlice<f32>,
        rows: usize,
        cols: usize,
        eps: f32,
        g: &CudaSlice<f32>,
        ll: &mut CudaSlice<f32>,
        dmu: &mut CudaSlice<f32>,
        dtheta: &mut CudaSlice<f32>,
    ) {
        self.likelihood(
            x, mu, theta, None, rows, cols, eps, g, ll, dmu, dtheta, None,
        );
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
    fn bhattacharyya_fwd(
        &self,
        a: &CudaSlice<f32>,
        b: &CudaSlice<f32>,
        loss_out: &mut CudaSlice<f32>,
    ) {
        let (mut out, mut da, mut db) = (
            self.scratch(2),
            self.scratch(a.len()),
            self.scratch(a.len()),
        );
        let r = loss::bhattacharyya_fwd_bwd(
            &self.rt, a, b, BC_CLIP, 1.0, None, &mut out, &mut da, &mut db, false,
        );
        self.ok(r, "bhattacharyya_fwd");
        // out = [BC, ln clip(BC)]: the loss is the second entry.
        let r = self.rt.stream.memcpy_dtod(&out.slice(1..2), loss_out);
        self.ok(r.map_err(Into::into), "bhattacharyya_fwd");
    }
    fn bhattacharyya_bwd(
        &self,
        a: &CudaSlice<f32>,
        b: &CudaSlice<f32>,
        g: &CudaSlice<f32>,
        da: &mut CudaSlice<f32>,
        db: &mut CudaSlice<f32>,
    ) {
        let mut out = self.scratch(2);
        let r = loss::bhattacharyya_fwd_bwd(
            &self.rt,
            a,
            b,
            BC_CLIP,
            1.0,
            Some(g),
            &mut out,
            da,
            db,
            false,
        );
        self.ok(r, "bhattacharyya_bwd");
    }
    fn kl_std_normal_fwd(
        &self,
        mean: &CudaSlice<f32>,
        var: &CudaSlice<f32>,
        cols: usize,
        kl: &mut CudaSlice<f32>,
    ) {
        let r = kl_ce::kl_std_normal_fwd(&self.rt, mean, var, cols, kl);
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
        let r = kl_ce::kl_std_normal_bwd(&self.rt, mean, var, cols, g, dmean, dvar);
        self.ok(r, "kl_std_normal_bwd");
    }
    fn kl_normal_fwd(
        &self,
        m1: &CudaSlice<f32>,
        v1: &CudaSlice<f32>,
        m2: &CudaSlice<f32>,
        v2: &CudaSlice<f32>,
        cols: usize,
        kl: &mut CudaSlice<f32>,
    ) {
        let r = kl_ce::kl_normal_fwd(&self.rt, [m1, v1, m2, v2], cols, kl);
        self.ok(r, "kl_normal_fwd");
    }
    fn kl_normal_bwd(
        &self,
        m1: &CudaSlice<f32>,
        v1: &CudaSlice<f32>,
        m2: &CudaSlice<f32>,
        v2: &CudaSlice<f32>,
        cols: usize,
        g: &CudaSlice<f32>,
        grads: [&mut CudaSlice<f32>; 4],
    ) {
        let r = kl_ce::kl_normal_bwd(&self.rt, [m1, v1, m2, v2], cols, g, grads);
        self.ok(r, "kl_normal_bwd");
    }
    fn cross_entropy_fwd(
        &self,
        logits: &CudaSlice<f32>,
        labels: &CudaSlice<u32>,
        mask: Option<&CudaSlice<f32>>,
        rows: usize,
        cols: usize,
        loss_out: &mut CudaSlice<f32>,
    ) {
        let inputs = kl_ce::CeInputs {
            logits,
            labels,
            mask,
            rows,
            cols,
        };
        let (mut lr, mut sel) = (self.scratch_f64(rows.max(1)), self.scratch_f64(rows.max(1)));
        let r = kl_ce::cross_entropy_fwd(&self.rt, &inputs, (&mut lr, &mut sel), loss_out);
        self.ok(r, "cross_entropy_fwd");
    }
    fn cross_entropy_bwd(
        &self,
        logits: &CudaSlice<f32>,
        labels: &CudaSlice<u32>,
        mask: Option<&CudaSlice<f32>>,
        rows: usize,
        cols: usize,
        g: &CudaSlice<f32>,
        dlogits: &mut CudaSlice<f32>,
    ) {
        let inputs = kl_ce::CeInputs {
            logits,
            labels,
            mask,
            rows,
            cols,
        };
        let mut count = self.scratch_f64(1);
        let r = kl_ce::cross_entropy_bwd(&self.rt, &inputs, g, &mut count, dlogits);
        self.ok(r, "cross_entropy_bwd");
    }

    // ---- optimiser ----------------------------------------------------------------------------
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
        table: &CudaSlice<u32>,
        idx: &CudaSlice<u32>,
        n: usize,
        labels: &mut CudaSlice<u32>,
        mask: &mut CudaSlice<f32>,
    ) {
        let r = step::gather_labels(&self.rt, table, idx, n, labels, mask);
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
    fn acc_argmax_hits(
        &self,
        acc: &mut CudaSlice<f64>,
        slot: usize,
        logits: &CudaSlice<f32>,
        labels: &CudaSlice<u32>,
        mask: Option<&CudaSlice<f32>>,
        rows: usize,
        cols: usize,
    ) {
        let r = step::acc_argmax_hits(&self.rt, acc, slot, logits, labels, mask, rows, cols);
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
        p: &mut CudaSlice<f32>,
        g: &CudaSlice<f32>,
        m: &mut CudaSlice<f32>,
        v: &mut CudaSlice<f32>,
        _grad_scale: Option<&CudaSlice<f32>>,
    ) {
        self.ok(mt::push_adam(&self.rt, table, p, g, m, v), "adam_queue");
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
