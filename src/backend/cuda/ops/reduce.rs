//! Launchers of `kernels/reduce.cu`.

use anyhow::Result;
use cudarc::driver::{CudaSlice, PushKernelArg};

use super::{as_i32, blocks_for, cfg_1d, check_len, flag};
use crate::backend::cuda::CudaRuntime;

/// `REDUCE_BLOCK` in reduce.cu.
pub const REDUCE_BLOCK: u32 = 256;
/// `SOFTMAX_BLOCK` in reduce.cu.
pub const SOFTMAX_BLOCK: u32 = 256;

/// `out[j] (+)= sum_p input[p * n + j]`: column sums of a `[parts, n]` row-major matrix.
/// Mirrors `ops::reduce::sum_leading_axis` (bias gradients; finishing per-tile partials).
pub fn sum_leading_axis(
    rt: &CudaRuntime,
    input: &CudaSlice<f32>,
    parts: usize,
    n: usize,
    out: &mut CudaSlice<f32>,
    accumulate: bool,
) -> Result<()> {
    check_len(input, parts * n, "sum_leading_axis input")?;
    check_len(out, n, "sum_leading_axis output")?;
    let f = rt.function("reduce", "sum_leading_axis")?;
    let (p, ni, acc) = (as_i32(parts, "parts")?, as_i32(n, "n")?, flag(accumulate));
    let mut b = rt.stream.launch_builder(&f);
    b.arg(input).arg(&p).arg(&ni).arg(out).arg(&acc);
    // SAFETY: lengths checked above; the kernel reads parts*n and writes n elements.
    unsafe { b.launch(cfg_1d(blocks_for(n, REDUCE_BLOCK), REDUCE_BLOCK)) }?;
    Ok(())
}

/// Row softmax. Mirrors `ops::softmax::softmax_rows`.
pub fn softmax_rows(
    rt: &CudaRuntime,
    input: &CudaSlice<f32>,
    rows: usize,
    cols: usize,
    out: &mut CudaSlice<f32>,
) -> Result<()> {
    check_len(input, rows * cols, "softmax input")?;
    check_len(out, rows * cols, "softmax output")?;
    let f = rt.function("reduce", "softmax_rows_fwd")?;
    let (r, c) = (as_i32(rows, "rows")?, as_i32(cols, "cols")?);
    let mut b = rt.stream.launch_builder(&f);
    b.arg(input).arg(&r).arg(&c).arg(out);
    // SAFETY: lengths checked above.
    unsafe { b.launch(cfg_1d(rows, SOFTMAX_BLOCK)) }?;
    Ok(())
}

/// `dx (+)= y * (dy - rowsum(y * dy))`. Mirrors `ops::softmax::softmax_rows_backward`.
pub fn softmax_rows_backward(
    rt: &CudaRuntime,
    y: &CudaSlice<f32>,
    dy: &CudaSlice<f32>,
    rows: usize,
    cols: usize,
    dx: &mut CudaSlice<f32>,
    accumulate: bool,
) -> Result<()> {
    for (s, what) in [(y, "softmax y"), (dy, "softmax dy")] {
        check_len(s, rows * cols, what)?;
    }
    check_len(dx, rows * cols, "softmax dx")?;
    let f = rt.function("reduce", "softmax_rows_bwd")?;
    let (r, c, acc) = (
        as_i32(rows, "rows")?,
        as_i32(cols, "cols")?,
        flag(accumulate),
    );
    let mut b = rt.stream.launch_builder(&f);
    b.arg(y).arg(dy).arg(&r).arg(&c).arg(dx).arg(&acc);
    // SAFETY: lengths checked above.
    unsafe { b.launch(cfg_1d(rows, SOFTMAX_BLOCK)) }?;
    Ok(())
}
