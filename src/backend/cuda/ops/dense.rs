//! Dense layers: cuBLAS GEMM in row-major terms and the fused bias + activation + dropout
//! epilogue of `kernels/epilogue.cu`.

use anyhow::{Result, anyhow};
use cudarc::cublas::sys::cublasOperation_t;
use cudarc::cublas::{Gemm, GemmConfig};
use cudarc::driver::CudaSlice;

use super::{as_i32, blocks_for, cfg_1d, check_len, opt};
use crate::backend::cuda::CudaRuntime;

/// `EPILOGUE_BLOCK` in epilogue.cu.
pub const EPILOGUE_BLOCK: u32 = 256;

/// Activation codes of `kernels/common.cuh` (`ACT_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i32)]
pub enum Act {
    Identity = 0,
    Relu = 1,
    LeakyRelu = 2,
    Sigmoid = 3,
    Exp = 4,
    Softplus = 5,
    Tanh = 6,
}

/// `c = alpha * op(a) op(b) + beta * c` on row-major matrices: `op(a)` is `[m, k]`, `op(b)` is
/// `[k, n]`, `c` is `[m, n]`. Full FP32 (cuBLAS's default math mode, no TF32), so results match
/// the CPU GEMM to rounding. Mirrors `ops::dense::gemm`.
#[allow(clippy::too_many_arguments)]
pub fn gemm(
    rt: &CudaRuntime,
    trans_a: bool,
    trans_b: bool,
    m: usize,
    n: usize,
    k: usize,
    alpha: f32,
    a: &CudaSlice<f32>,
    b: &CudaSlice<f32>,
    beta: f32,
    c: &mut CudaSlice<f32>,
) -> Result<()> {
    check_len(a, m * k, "gemm a")?;
    check_len(b, k * n, "gemm b")?;
    check_len(c, m * n, "gemm c")?;
    if m == 0 || n == 0 {
        return Ok(());
    }
    let blas = rt.blas()?;
    let op = |t: bool| {
        if t {
            cublasOperation_t::CUBLAS_OP_T
        } else {
            cublasOperation_t::CUBLAS_OP_N
        }
    };
    // Row-major C = A B is column-major C^T = B^T A^T: swap the operands and m/n.
    let cfg = GemmConfig {
        transa: op(trans_b),
        transb: op(trans_a),
        m: as_i32(n, "gemm n")?,
        n: as_i32(m, "gemm m")?,
        k: as_i32(k, "gemm k")?,
        alpha,
        lda: as_i32(if trans_b { k } else { n }.max(1), "gemm ldb")?,
        ldb: as_i32(if trans_a { m } else { k }.max(1), "gemm lda")?,
        beta,
        ldc: as_i32(n, "gemm ldc")?,
    };
    // SAFETY: all three lengths checked against m, n, k above.
    unsafe { blas.gemm(cfg, b, a, c) }.map_err(|e| anyhow!("cuBLAS sgemm: {e:?}"))
}

/// `out = dropout(act(input + bias))` on `[rows, cols]`; `bias` (`[cols]`) is optional;
/// `keep_prob = 1` disables dropout; the mask is `cpu::random::dropout_mask(seed, keep_prob)`
/// element for element. Mirrors the CPU backend's add_bias, activation and dropout in turn.
#[allow(clippy::too_many_arguments)]
pub fn bias_act_dropout(
    rt: &CudaRuntime,
    input: &CudaSlice<f32>,
    bias: Option<&CudaSlice<f32>>,
    rows: usize,
    cols: usize,
    act: Act,
    slope: f32,
    keep_prob: f32,
    seed: u64,
    out: &mut CudaSlice<f32>,
) -> Result<()> {
    check_len(input, rows * cols, "epilogue input")?;
    check_len(out, rows * cols, "epilogue output")?;
    if let Some(bias) = bias {
        check_len(bias, cols, "epilogue bias")?;
    }
    if !(keep_prob > 0.0 && keep_prob <= 1.0) {
        anyhow::bail!("dropout keep probability {keep_prob} is outside (0, 1]");
    }
    let (r, c, a) = (as_i32(rows, "rows")?, as_i32(cols, "cols")?, act as i32);
    // SAFETY: lengths checked above.
    launch!(
        rt,
        "epilogue",
        "bias_act_dropout_fwd",
        cfg_1d(blocks_for(rows * cols, EPILOGUE_BLOCK), EPILOGUE_BLOCK,),
        [input, opt(bias), &r, &c, &a, &slope, &keep_prob, &seed, out]
    )
}
