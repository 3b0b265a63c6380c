//! The CPU's [`DenseKernels`]: each method hands plain slices to a kernel of this folder.

use super::csr::{self, CpuCsr};
use super::{Cpu, elementwise, gemm, par, random, reduce};
use crate::backend::{Binary, DenseKernels, GemmSpec, InputTransform, Unary};

fn opt(b: Option<&mut Vec<f32>>) -> Option<&mut [f32]> {
    b.map(|v| v.as_mut_slice())
}

impl DenseKernels for Cpu {
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
        if let Some(dm) = dmean {
            par::zip1(dm, dz, |dm, d| *dm += d);
        }
        if let Some(dv) = dvar {
            random::reparam_bwd_var(var, eps, dz, dv);
        }
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
}
