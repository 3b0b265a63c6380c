//! Compute backends behind one seam: the CPU and CUDA.
//!
//! The autodiff tape (one floor up) is written once against [`Memory`], the ops against the
//! umbrella trait of the ops (the families here and the op folders' kernel traits). A backend owns its
//! buffers (`Buf` = f32, `IdxBuf` = u32, `CsrBuf` = a resident sparse matrix) and exposes
//! one coarse method per kernel: one call per op, never per element, and no host round
//! trips except the explicit `download*`/`sq_norm` methods. Shapes are passed explicitly;
//! all matrices are row-major f32.
//!
//! Accumulation convention: every `*_bwd` method ADDS into its gradient outputs
//! (`dx += ...`), so the tape can sum contributions from several consumers.

pub mod cpu;
#[cfg(feature = "cuda")]
pub mod cuda;
pub mod dense;
pub mod device;
pub mod losses;
pub mod memory;
pub mod step;

pub use dense::DenseKernels;
pub use losses::{Labelled, Likelihood, LikelihoodGrads, LossKernels};
pub use memory::Memory;
pub use step::StepKernels;

use crate::csr::Csr;

/// Transform applied to CSR values on the fly by `csr_matmul`/`csr_gather_dense`, so the
/// encoder input never needs a transformed copy of X.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum InputTransform {
    /// The stored value as is.
    Identity,
    /// ln(1 + v).
    Log1p,
    /// ln(1 + v * row_scale[cell]); needs a row scale at upload.
    Log1pScaled,
}

impl InputTransform {
    /// Apply to one stored value `v` of a cell whose row scale is `s`.
    #[inline(always)]
    pub fn apply(self, v: f32, s: f32) -> f32 {
        match self {
            InputTransform::Identity => v,
            InputTransform::Log1p => v.ln_1p(),
            InputTransform::Log1pScaled => (v * s).ln_1p(),
        }
    }
}

/// Elementwise unary functions y = f(x). Backward uses x and/or y.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Unary {
    Relu,
    LeakyRelu(f32),
    Softplus,
    Sigmoid,
    Exp,
    Log,
    Sqrt,
    Square,
    Scale(f32),
    AddScalar(f32),
    /// Gradient passes only where lo <= x <= hi.
    Clamp(f32, f32),
    /// ln Gamma(x) (x > 0), backward digamma(x).
    Lgamma,
}

/// Elementwise binary functions of two same-shape tensors.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Binary {
    Add,
    Sub,
    Mul,
}

/// Dense GEMM description: C[m,n] = alpha * op(A) * op(B) + beta * C, where op(A) is
/// [m,k] (A is stored [k,m] when `trans_a`), op(B) is [k,n] (B stored [n,k] when `trans_b`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GemmSpec {
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub trans_a: bool,
    pub trans_b: bool,
    pub alpha: f32,
    /// 0 overwrites C (its old contents are never read, even NaN), 1 accumulates.
    pub beta: f32,
}

impl GemmSpec {
    /// C = op(A) op(B) (beta 0: C's old contents are never read).
    pub fn product(m: usize, n: usize, k: usize, trans_a: bool, trans_b: bool) -> Self {
        GemmSpec {
            m,
            n,
            k,
            trans_a,
            trans_b,
            alpha: 1.0,
            beta: 0.0,
        }
    }
    /// C += op(A) op(B) (a gradient accumulated into).
    pub fn accumulate(m: usize, n: usize, k: usize, trans_a: bool, trans_b: bool) -> Self {
        GemmSpec {
            beta: 1.0,
            ..Self::product(m, n, k, trans_a, trans_b)
        }
    }
}

/// One tensor of an Adam update: the parameter, its gradient and the two moments.
pub struct AdamTensor<'a, Buf> {
    pub param: &'a mut Buf,
    pub grad: &'a Buf,
    pub m: &'a mut Buf,
    pub v: &'a mut Buf,
}

/// Hyper-parameters of one fused Adam/AdamW update of one tensor.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamStep {
    pub lr: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    /// Decoupled (AdamW) weight decay: p -= lr * wd * p.
    pub weight_decay: f32,
    /// 1 - beta1^t and 1 - beta2^t (bias corrections, computed on the host).
    pub bias_c1: f32,
    pub bias_c2: f32,
    /// Multiplies the gradient first (global-norm clipping factor; 1 otherwise).
    pub grad_scale: f32,
}

/// The structural checks every backend makes before a CSR upload: consistent lengths, column
/// indices in range, one row scale per row.
pub fn validate_csr(csr: &Csr, row_scale: Option<&[f32]>) -> anyhow::Result<()> {
    anyhow::ensure!(
        csr.indptr.len() == csr.n_rows + 1,
        "CSR upload: indptr has {} entries for {} rows",
        csr.indptr.len(),
        csr.n_rows
    );
    anyhow::ensure!(
        csr.indices.len() == csr.data.len()
            && *csr.indptr.last().unwrap_or(&0) as usize == csr.data.len(),
        "CSR upload: indices ({}), data ({}) and indptr end disagree",
        csr.indices.len(),
        csr.data.len()
    );
    if let Some(&j) = csr.indices.iter().find(|&&j| j as usize >= csr.n_cols) {
        anyhow::bail!("CSR upload: column index {j} >= n_cols {}", csr.n_cols);
    }
    if let Some(s) = row_scale {
        anyhow::ensure!(
            s.len() == csr.n_rows,
            "CSR upload: row scale has {} entries for {} rows",
            s.len(),
            csr.n_rows
        );
    }
    Ok(())
}

/// The label code of an unlabelled cell in the per-cell label table (`gather_labels`).
pub const UNLABELLED: u32 = u32::MAX;
