//! [`DenseKernels`] on the GPU: cuBLAS for GEMM, the launchers of
//! `cuda::ops` for the rest.

use super::{CudaBackend, CudaCsr, plain_batch, spmm_transform};
use crate::backend::cuda::ops::{dense, elementwise as ew, reduce, rows, sparse};
use crate::backend::{Binary, DenseKernels, GemmSpec, InputTransform, Unary};
use cudarc::driver::CudaSlice;

impl DenseKernels for CudaBackend {
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
        let r = reduce::sum_leading_axis(&self.rt, dy, db, true);
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
}
