//! CPU backend: rayon-parallel kernels over `Vec<f32>` buffers.
//!
//! Determinism: every kernel splits work by shape only (fixed chunks) and reduces in a fixed
//! order, so results are bit-identical across runs for a given thread count.

pub mod adam;
pub mod csr;
pub mod elementwise;
pub mod gemm;
pub mod par;
pub mod random;
pub mod reduce;
pub mod special;
pub mod step;

use super::{AdamStep, Backend, Binary, GemmSpec, InputTransform, Unary};
use crate::data::Csr;
use crate::ops::losses;
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

fn opt(b: Option<&mut Vec<f32>>) -> Option<&mut [f32]> {
    b.map(|v| v.as_mut_slice())
}

impl Backend for Cpu {
    type Buf = Vec<f32>;
    type IdxBuf = Vec<u32>;
    type CsrBuf = CpuCsr;
    type AccBuf = Vec<f64>;
    type TensorTable = MultiTensorQueue;

    fn name(&self) -> &'static str {
        "cpu"
    }

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
        par::acc_into(y, |i| alpha * x[i]);
    }
    fn broadcast_acc(&self, g: &Vec<f32>, scale: f32, dst: &mut Vec<f32>) {
        let v = scale * g[0];
        par::acc_into(dst, |_| v);
    }

    fn gemm(&self, spec: GemmSpec, a: &Vec<f32>, b: &Vec<f32>, c: &mut Vec<f32>) {
        gemm::gemm(spec, a, b, c);
    }
    fn csr_matmul(
        &self,
        x: &CpuCsr,
        rows: &Vec<u32>,
        n_rows: usize,
        t: InputTransform,
        w: &Vec<f32>,
        n_out: usize,
        out: &mut Vec<f32>,
    ) {
        debug_assert_eq!(rows.len(), n_rows);
        if n_out > 0 {
            csr::csr_matmul(x, rows, t, w, n_out, out);
        }
    }
    fn csr_matmul_wgrad(
        &self,
        x: &CpuCsr,
        rows: &Vec<u32>,
        n_rows: usize,
        t: InputTransform,
        dy: &Vec<f32>,
        n_out: usize,
        dw: &mut Vec<f32>,
    ) {
        debug_assert_eq!(rows.len(), n_rows);
        csr::csr_matmul_wgrad(x, rows, t, dy, n_out, dw, &self.scratch);
    }
    fn csr_gather_dense(
        &self,
        x: &CpuCsr,
        rows: &Vec<u32>,
        n_rows: usize,
        t: InputTransform,
        out: &mut Vec<f32>,
    ) {
        debug_assert_eq!(rows.len(), n_rows);
        if x.n_cols > 0 {
            csr::csr_gather_dense(x, rows, t, out);
        }
    }

    fn gather_add_rows(
        &self,
        x: &Vec<f32>,
        table: &Vec<f32>,
        idx: &Vec<u32>,
        cols: usize,
        out: &mut Vec<f32>,
    ) {
        if cols > 0 {
            elementwise::gather_add_rows(x, table, idx, cols, out);
        }
    }
    fn scatter_add_rows(&self, dy: &Vec<f32>, idx: &Vec<u32>, cols: usize, dt: &mut Vec<f32>) {
        elementwise::scatter_add_rows(dy, idx, cols, dt);
    }
    fn add_bias(&self, x: &Vec<f32>, b: &Vec<f32>, cols: usize, out: &mut Vec<f32>) {
        elementwise::add_bias(x, b, cols, out);
    }
    fn col_sum_acc(&self, dy: &Vec<f32>, cols: usize, db: &mut Vec<f32>) {
        reduce::col_sum_acc(dy, cols, db);
    }

    fn unary(&self, f: Unary, x: &Vec<f32>, y: &mut Vec<f32>) {
        elementwise::unary(f, x, y);
    }
    fn unary_bwd(&self, f: Unary, x: &Vec<f32>, y: &Vec<f32>, dy: &Vec<f32>, dx: &mut Vec<f32>) {
        elementwise::unary_bwd(f, x, y, dy, dx);
    }
    fn binary(&self, f: Binary, a: &Vec<f32>, b: &Vec<f32>, out: &mut Vec<f32>) {
        elementwise::binary(f, a, b, out);
    }
    fn binary_bwd(
        &self,
        f: Binary,
        a: &Vec<f32>,
        b: &Vec<f32>,
        dy: &Vec<f32>,
        da: Option<&mut Vec<f32>>,
        db: Option<&mut Vec<f32>>,
    ) {
        elementwise::binary_bwd(f, a, b, dy, opt(da), opt(db));
    }
    fn mul_rows(&self, x: &Vec<f32>, c: &Vec<f32>, cols: usize, out: &mut Vec<f32>) {
        if cols > 0 {
            elementwise::mul_rows(x, c, cols, out);
        }
    }
    fn mul_rows_bwd(
        &self,
        x: &Vec<f32>,
        c: &Vec<f32>,
        dy: &Vec<f32>,
        cols: usize,
        dx: Option<&mut Vec<f32>>,
        dc: Option<&mut Vec<f32>>,
    ) {
        if cols > 0 {
            elementwise::mul_rows_bwd(x, c, dy, cols, opt(dx), opt(dc));
        }
    }
    fn concat_cols(&self, a: &Vec<f32>, ca: usize, b: &Vec<f32>, cb: usize, out: &mut Vec<f32>) {
        if ca + cb > 0 {
            elementwise::concat_cols(a, ca, b, cb, out);
        }
    }
    fn concat_cols_bwd(
        &self,
        dy: &Vec<f32>,
        ca: usize,
        cb: usize,
        da: Option<&mut Vec<f32>>,
        db: Option<&mut Vec<f32>>,
    ) {
        elementwise::concat_cols_bwd(dy, ca, cb, opt(da), opt(db));
    }
    fn softmax_rows(&self, x: &Vec<f32>, cols: usize, y: &mut Vec<f32>) {
        if cols > 0 {
            elementwise::softmax_rows(x, cols, y);
        }
    }
    fn softmax_rows_bwd(&self, y: &Vec<f32>, dy: &Vec<f32>, cols: usize, dx: &mut Vec<f32>) {
        if cols > 0 {
            elementwise::softmax_rows_bwd(y, dy, cols, dx);
        }
    }

    fn dropout_mask(&self, seed: u64, keep: f32, mask: &mut Vec<f32>) {
        random::dropout_mask(seed, keep, mask);
    }
    fn normal(&self, seed: u64, out: &mut Vec<f32>) {
        random::normal(seed, out);
    }
    fn reparam(&self, mean: &Vec<f32>, var: &Vec<f32>, eps: &Vec<f32>, z: &mut Vec<f32>) {
        random::reparam(mean, var, eps, z);
    }
    fn reparam_bwd(
        &self,
        var: &Vec<f32>,
        eps: &Vec<f32>,
        dz: &Vec<f32>,
        dmean: Option<&mut Vec<f32>>,
        dvar: Option<&mut Vec<f32>>,
    ) {
        random::reparam_bwd(var, eps, dz, opt(dmean), opt(dvar));
    }

    fn sum_all(&self, x: &Vec<f32>, out: &mut Vec<f32>) {
        out[0] = reduce::sum_all(x);
    }
    fn sum_rows(&self, x: &Vec<f32>, cols: usize, out: &mut Vec<f32>) {
        if cols == 0 {
            out.fill(0.0);
        } else {
            reduce::sum_rows(x, cols, out);
        }
    }
    fn sum_rows_bwd(&self, dy: &Vec<f32>, cols: usize, dx: &mut Vec<f32>) {
        if cols > 0 {
            reduce::sum_rows_bwd(dy, cols, dx);
        }
    }
    fn sq_norm(&self, x: &Vec<f32>) -> f64 {
        reduce::sq_norm(x)
    }

    fn zinb_fwd(
        &self,
        x: &Vec<f32>,
        mu: &Vec<f32>,
        theta: &Vec<f32>,
        logit: &Vec<f32>,
        rows: usize,
        cols: usize,
        eps: f32,
        ll: &mut Vec<f32>,
    ) {
        losses::zinb_fwd(x, mu, theta, logit, rows, cols, eps, ll);
    }
    fn zinb_bwd(
        &self,
        x: &Vec<f32>,
        mu: &Vec<f32>,
        theta: &Vec<f32>,
        logit: &Vec<f32>,
        rows: usize,
        cols: usize,
        eps: f32,
        g: &Vec<f32>,
        dmu: &mut Vec<f32>,
        dtheta: &mut Vec<f32>,
        dlogit: &mut Vec<f32>,
    ) {
        self.with_spare(&[rows], |s| {
            losses::zinb_fwd_bwd(
                x, mu, theta, logit, rows, cols, eps, g, &mut s[0], dmu, dtheta, dlogit,
            )
        });
    }
    fn zinb_fwd_bwd(
        &self,
        x: &Vec<f32>,
        mu: &Vec<f32>,
        theta: &Vec<f32>,
        logit: &Vec<f32>,
        rows: usize,
        cols: usize,
        eps: f32,
        g: &Vec<f32>,
        ll: &mut Vec<f32>,
        dmu: &mut Vec<f32>,
        dtheta: &mut Vec<f32>,
        dlogit: &mut Vec<f32>,
    ) {
        losses::zinb_fwd_bwd(
            x, mu, theta, logit, rows, cols, eps, g, ll, dmu, dtheta, dlogit,
        );
    }
    fn nb_fwd_bwd(
        &self,
        x: &Vec<f32>,
        mu: &Vec<f32>,
        theta: &Vec<f32>,
        rows: usize,
        cols: usize,
        eps: f32,
        g: &Vec<f32>,
        ll: &mut Vec<f32>,
        dmu: &mut Vec<f32>,
        dtheta: &mut Vec<f32>,
    ) {
        losses::nb_fwd_bwd(x, mu, theta, rows, cols, eps, g, ll, dmu, dtheta);
    }
    fn uniform_value(&self, g: &Vec<f32>) -> Option<f32> {
        let v = *g.first()?;
        g.iter().all(|&x| x.to_bits() == v.to_bits()).then_some(v)
    }
    fn nb_fwd(
        &self,
        x: &Vec<f32>,
        mu: &Vec<f32>,
        theta: &Vec<f32>,
        rows: usize,
        cols: usize,
        eps: f32,
        ll: &mut Vec<f32>,
    ) {
        losses::nb_fwd(x, mu, theta, rows, cols, eps, ll);
    }
    fn nb_bwd(
        &self,
        x: &Vec<f32>,
        mu: &Vec<f32>,
        theta: &Vec<f32>,
        rows: usize,
        cols: usize,
        eps: f32,
        g: &Vec<f32>,
        dmu: &mut Vec<f32>,
        dtheta: &mut Vec<f32>,
    ) {
        self.with_spare(&[rows], |s| {
            losses::nb_fwd_bwd(x, mu, theta, rows, cols, eps, g, &mut s[0], dmu, dtheta)
        });
    }
    fn bhattacharyya_fwd(&self, a: &Vec<f32>, b: &Vec<f32>, loss: &mut Vec<f32>) {
        self.with_spare(&[a.len(), b.len()], |s| {
            let [da, db] = s else { unreachable!() };
            loss[0] = losses::bhattacharyya_fwd_bwd(a, b, da, db);
        });
    }
    fn bhattacharyya_bwd(
        &self,
        a: &Vec<f32>,
        b: &Vec<f32>,
        g: &Vec<f32>,
        da: &mut Vec<f32>,
        db: &mut Vec<f32>,
    ) {
        losses::bhattacharyya_fwd_bwd(a, b, da, db);
        da.iter_mut().chain(db.iter_mut()).for_each(|v| *v *= g[0]);
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
    fn kl_normal_fwd(
        &self,
        m1: &Vec<f32>,
        v1: &Vec<f32>,
        m2: &Vec<f32>,
        v2: &Vec<f32>,
        cols: usize,
        kl: &mut Vec<f32>,
    ) {
        let (n, rows) = (m1.len(), kl.len());
        self.with_spare(&[rows, n, n, n, n], |s| {
            let [up, a, b, c, d] = s else { unreachable!() };
            losses::kl_normal_fwd_bwd(m1, v1, m2, v2, rows, cols, up, kl, a, b, c, d);
        });
    }
    fn kl_normal_bwd(
        &self,
        m1: &Vec<f32>,
        v1: &Vec<f32>,
        m2: &Vec<f32>,
        v2: &Vec<f32>,
        cols: usize,
        g: &Vec<f32>,
        grads: [&mut Vec<f32>; 4],
    ) {
        let rows = g.len();
        let [a, b, c, d] = grads;
        self.with_spare(&[rows], |s| {
            losses::kl_normal_fwd_bwd(m1, v1, m2, v2, rows, cols, g, &mut s[0], a, b, c, d);
        });
    }
    fn cross_entropy_fwd(
        &self,
        logits: &Vec<f32>,
        labels: &Vec<u32>,
        mask: Option<&Vec<f32>>,
        rows: usize,
        cols: usize,
        loss: &mut Vec<f32>,
    ) {
        let m = mask.map(|m| m.as_slice());
        self.with_spare(&[logits.len()], |s| {
            loss[0] =
                losses::cross_entropy_masked_fwd_bwd(logits, labels, m, rows, cols, &mut s[0]);
        });
    }
    fn cross_entropy_bwd(
        &self,
        logits: &Vec<f32>,
        labels: &Vec<u32>,
        mask: Option<&Vec<f32>>,
        rows: usize,
        cols: usize,
        g: &Vec<f32>,
        dlogits: &mut Vec<f32>,
    ) {
        let m = mask.map(|m| m.as_slice());
        losses::cross_entropy_masked_fwd_bwd(logits, labels, m, rows, cols, dlogits);
        dlogits.iter_mut().for_each(|v| *v *= g[0]);
    }

    fn gather_idx(&self, table: &Vec<u32>, idx: &Vec<u32>, n: usize, out: &mut Vec<u32>) {
        step::gather(table, &idx[..n], &mut out[..n]);
    }
    fn gather_values(&self, table: &Vec<f32>, idx: &Vec<u32>, n: usize, out: &mut Vec<f32>) {
        step::gather(table, &idx[..n], &mut out[..n]);
    }
    fn gather_labels(
        &self,
        table: &Vec<u32>,
        idx: &Vec<u32>,
        n: usize,
        labels: &mut Vec<u32>,
        mask: &mut Vec<f32>,
    ) {
        step::gather_labels(table, &idx[..n], &mut labels[..n], &mut mask[..n]);
    }
    fn acc_values(&self, acc: &mut Vec<f64>, values: &[(usize, &Vec<f32>)]) {
        for &(slot, x) in values {
            acc[slot] += x[0] as f64;
        }
    }
    fn acc_greater_frac(&self, acc: &mut Vec<f64>, slot: usize, a: &Vec<f32>, b: &Vec<f32>) {
        acc[slot] += step::greater_frac(a, b);
    }
    fn acc_argmax_hits(
        &self,
        acc: &mut Vec<f64>,
        slot: usize,
        logits: &Vec<f32>,
        labels: &Vec<u32>,
        mask: Option<&Vec<f32>>,
        rows: usize,
        cols: usize,
    ) {
        let mask = mask.map(|m| &m[..rows]);
        if let Some(f) = step::argmax_hit_frac(&logits[..rows * cols], &labels[..rows], mask, cols)
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
        p: &mut Vec<f32>,
        g: &Vec<f32>,
        m: &mut Vec<f32>,
        v: &mut Vec<f32>,
        grad_scale: Option<&Vec<f32>>,
    ) {
        let s = AdamStep {
            grad_scale: grad_scale.map_or(s.grad_scale, |b| b[0]),
            ..s
        };
        adam::adam(s, p, g, m, v);
    }
    unsafe fn adam_flush(
        &self,
        _table: &mut MultiTensorQueue,
        _s: AdamStep,
        _grad_scale: Option<&Vec<f32>>,
    ) {
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
    fn with_spare<R>(&self, lens: &[usize], f: impl FnOnce(&mut [Vec<f32>]) -> R) -> R {
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
