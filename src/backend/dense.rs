//! Kernels of the dense and sparse layers: products, row gathers, elementwise functions,
//! randomness and reductions. Every `*_bwd` ADDS into its gradient outputs.

use super::{Binary, GemmSpec, InputTransform, Memory, Unary};

/// The layers' kernels (see the module docs).
pub trait DenseKernels: Memory {
    // ---- dense and sparse products --------------------------------------------------------
    /// See [`GemmSpec`].
    fn gemm(&self, spec: GemmSpec, a: &Self::Buf, b: &Self::Buf, c: &mut Self::Buf);
    /// out[r, :] = sum_j t(X[rows[r], j]) * w[j, :]; w is [n_genes, n_out].
    #[allow(clippy::too_many_arguments)]
    fn csr_matmul(
        &self,
        x: &Self::CsrBuf,
        rows: &Self::IdxBuf,
        n_rows: usize,
        t: InputTransform,
        w: &Self::Buf,
        n_out: usize,
        out: &mut Self::Buf,
    );
    /// dw += t(X[rows])^T dy without densifying X; dy is [n_rows, n_out].
    #[allow(clippy::too_many_arguments)]
    fn csr_matmul_wgrad(
        &self,
        x: &Self::CsrBuf,
        rows: &Self::IdxBuf,
        n_rows: usize,
        t: InputTransform,
        dy: &Self::Buf,
        n_out: usize,
        dw: &mut Self::Buf,
    );
    /// out[r, :] = t(X[rows[r], :]) densely ([n_rows, n_genes]).
    fn csr_gather_dense(
        &self,
        x: &Self::CsrBuf,
        rows: &Self::IdxBuf,
        n_rows: usize,
        t: InputTransform,
        out: &mut Self::Buf,
    );

    // ---- row gather (one-hot covariates), bias --------------------------------------------
    /// out[i,:] = x[i,:] + table[idx[i],:].
    fn gather_add_rows(
        &self,
        x: &Self::Buf,
        table: &Self::Buf,
        idx: &Self::IdxBuf,
        cols: usize,
        out: &mut Self::Buf,
    );
    /// dtable[idx[i],:] += dy[i,:] (in row order: deterministic).
    fn scatter_add_rows(
        &self,
        dy: &Self::Buf,
        idx: &Self::IdxBuf,
        cols: usize,
        dtable: &mut Self::Buf,
    );
    /// out[i,:] = x[i,:] + b[:].
    fn add_bias(&self, x: &Self::Buf, b: &Self::Buf, cols: usize, out: &mut Self::Buf);
    /// db[j] += sum_i dy[i,j].
    fn col_sum_acc(&self, dy: &Self::Buf, cols: usize, db: &mut Self::Buf);

    // ---- elementwise --------------------------------------------------------------------
    fn unary(&self, f: Unary, x: &Self::Buf, y: &mut Self::Buf);
    /// dx += dy * f'(x) (y = f(x) is given too, for functions whose derivative uses it).
    fn unary_bwd(&self, f: Unary, x: &Self::Buf, y: &Self::Buf, dy: &Self::Buf, dx: &mut Self::Buf);
    fn binary(&self, f: Binary, a: &Self::Buf, b: &Self::Buf, out: &mut Self::Buf);
    fn binary_bwd(
        &self,
        f: Binary,
        a: &Self::Buf,
        b: &Self::Buf,
        dy: &Self::Buf,
        da: Option<&mut Self::Buf>,
        db: Option<&mut Self::Buf>,
    );
    /// out[i,:] = x[i,:] * c[i] (c is [n,1]).
    fn mul_rows(&self, x: &Self::Buf, c: &Self::Buf, cols: usize, out: &mut Self::Buf);
    fn mul_rows_bwd(
        &self,
        x: &Self::Buf,
        c: &Self::Buf,
        dy: &Self::Buf,
        cols: usize,
        dx: Option<&mut Self::Buf>,
        dc: Option<&mut Self::Buf>,
    );
    /// out = [a | b] with a [n,ca], b [n,cb].
    fn concat_cols(&self, a: &Self::Buf, ca: usize, b: &Self::Buf, cb: usize, out: &mut Self::Buf);
    fn concat_cols_bwd(
        &self,
        dy: &Self::Buf,
        ca: usize,
        cb: usize,
        da: Option<&mut Self::Buf>,
        db: Option<&mut Self::Buf>,
    );

    // ---- randomness (counter-based: the host gives a seed, the device generates) ---------
    /// mask[i] = 1/keep with probability keep, else 0.
    fn dropout_mask(&self, seed: u64, keep: f32, mask: &mut Self::Buf);
    /// out[i] ~ N(0,1).
    fn normal(&self, seed: u64, out: &mut Self::Buf);
    /// z = mean + sqrt(var) * eps.
    fn reparam(&self, mean: &Self::Buf, var: &Self::Buf, eps: &Self::Buf, z: &mut Self::Buf);
    fn reparam_bwd(
        &self,
        var: &Self::Buf,
        eps: &Self::Buf,
        dz: &Self::Buf,
        dmean: Option<&mut Self::Buf>,
        dvar: Option<&mut Self::Buf>,
    );

    // ---- reductions ---------------------------------------------------------------------
    /// out[0] = sum of all x (f64 accumulation, fixed order).
    fn sum_all(&self, x: &Self::Buf, out: &mut Self::Buf);
    /// out[i] = sum_j x[i,j].
    fn sum_rows(&self, x: &Self::Buf, cols: usize, out: &mut Self::Buf);
    /// dx[i,j] += dy[i] (backward of `sum_rows`).
    fn sum_rows_bwd(&self, dy: &Self::Buf, cols: usize, dx: &mut Self::Buf);
    /// Sum of squares as a host scalar (explicit round trip; used for gradient clipping).
    fn sq_norm(&self, x: &Self::Buf) -> f64;
}
