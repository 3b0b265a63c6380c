//! Launchers of `kernels/reduce.cu`.

use anyhow::Result;
use cudarc::driver::CudaSlice;

use super::{as_i32, blocks_for, cfg_1d, check_len, flag};
use crate::backend::cuda::CudaRuntime;

/// `REDUCE_BLOCK` in reduce.cu.
pub const REDUCE_BLOCK: u32 = 256;

/// `out[j] (+)= sum_p input[p * n + j]`: column sums of a `[parts, n]` row-major matrix, `n`
/// being `out`'s length. Mirrors `ops::reduce::sum_leading_axis` (bias gradients; finishing
/// per-tile partials).
pub fn sum_leading_axis(
    rt: &CudaRuntime,
    input: &CudaSlice<f32>,
    out: &mut CudaSlice<f32>,
    accumulate: bool,
) -> Result<()> {
    let n = out.len();
    let parts = input.len().checked_div(n).unwrap_or(0);
    check_len(
        input,
        parts * n,
        "sum_leading_axis input (whole rows of the output's length)",
    )?;
    let (p, ni, acc) = (as_i32(parts, "parts")?, as_i32(n, "n")?, flag(accumulate));
    // SAFETY: input holds parts * n elements, out n; the kernel reads and writes no more.
    launch!(
        rt,
        "reduce",
        "sum_leading_axis",
        cfg_1d(blocks_for(n, REDUCE_BLOCK), REDUCE_BLOCK),
        [input, &p, &ni, out, &acc]
    )
}
