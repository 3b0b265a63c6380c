//! Launchers of `kernels/rows.cu`: row gathers, row broadcasts, column concatenation and the
//! f64 reductions. Mirrors `backend::cpu::elementwise` and `backend::cpu::reduce`.

use anyhow::Result;
use cudarc::driver::{CudaSlice, PushKernelArg};

use super::{NULL_PTR, as_i32, cfg_1d, check_len};
use crate::backend::cuda::CudaRuntime;

/// `ROWS_BLOCK` in rows.cu (also `KL_BLOCK` in kl_ce.cu).
pub const ROWS_BLOCK: u32 = 256;
/// Rows per block of the one-warp-per-row kernels.
pub const WARPS_PER_BLOCK: usize = (ROWS_BLOCK / 32) as usize;
/// `SUM_F64_BLOCKS` in rows.cu.
pub const SUM_F64_BLOCKS: usize = 256;

/// A launch of one warp per row over `rows` rows.
pub(crate) fn warp_rows_cfg(rows: usize) -> cudarc::driver::LaunchConfig {
    cfg_1d(rows.div_ceil(WARPS_PER_BLOCK), ROWS_BLOCK)
}

/// `out[i, :] = x[i, :] + table[idx[i], :]`. Mirrors `cpu::elementwise::gather_add_rows`.
pub fn gather_add_rows(
    rt: &CudaRuntime,
    x: &CudaSlice<f32>,
    table: &CudaSlice<f32>,
    idx: &CudaSlice<u32>,
    cols: usize,
    out: &mut CudaSlice<f32>,
) -> Result<()> {
    let n = idx.len() * cols;
    check_lens!(n, "gather_add_rows", x, out)?;
    if n == 0 {
        return Ok(());
    }
    anyhow::ensure!(
        table.len().is_multiple_of(cols),
        "gather_add_rows: table of {} values is not a multiple of {cols} columns",
        table.len()
    );
    let (nt, c) = (
        as_i32(table.len() / cols, "table rows")?,
        as_i32(cols, "cols")?,
    );
    // SAFETY: lengths checked; indices >= table rows are caught in the kernel (NaN row).
    launch_elems!(
        rt,
        "rows",
        "gather_add_rows",
        n,
        [x, table, idx, &nt, &c, out]
    )
}

/// `out[i, :] = x[i, :] * c[i]`. Mirrors `cpu::elementwise::mul_rows`.
pub fn mul_rows(
    rt: &CudaRuntime,
    x: &CudaSlice<f32>,
    c: &CudaSlice<f32>,
    cols: usize,
    out: &mut CudaSlice<f32>,
) -> Result<()> {
    let n = c.len() * cols;
    check_lens!(n, "mul_rows", x, out)?;
    let ci = as_i32(cols, "cols")?;
    // SAFETY: lengths checked.
    launch_elems!(rt, "rows", "mul_rows", n, [x, c, &ci, out])
}

/// `dx[i, :] += dy[i, :] * c[i]`.
pub fn mul_rows_bwd_x(
    rt: &CudaRuntime,
    c: &CudaSlice<f32>,
    dy: &CudaSlice<f32>,
    cols: usize,
    dx: &mut CudaSlice<f32>,
) -> Result<()> {
    let n = c.len() * cols;
    check_lens!(n, "mul_rows_bwd", dy, dx)?;
    let ci = as_i32(cols, "cols")?;
    // SAFETY: lengths checked.
    launch_elems!(rt, "rows", "mul_rows_bwd_x", n, [c, dy, &ci, dx])
}

/// `dc[i] += sum_j dy[i, j] * x[i, j]`.
pub fn mul_rows_bwd_c(
    rt: &CudaRuntime,
    x: &CudaSlice<f32>,
    dy: &CudaSlice<f32>,
    cols: usize,
    dc: &mut CudaSlice<f32>,
) -> Result<()> {
    let rows = dc.len();
    check_len(x, rows * cols, "mul_rows_bwd x")?;
    check_len(dy, rows * cols, "mul_rows_bwd dy")?;
    if rows == 0 || cols == 0 {
        return Ok(());
    }
    let (r, c) = (rows as i64, as_i32(cols, "cols")?);
    // SAFETY: lengths checked.
    launch!(
        rt,
        "rows",
        "mul_rows_bwd_c",
        warp_rows_cfg(rows),
        [x, dy, &r, &c, dc]
    )
}

/// `out = [a | b]`. Mirrors `cpu::elementwise::concat_cols`.
pub fn concat_cols(
    rt: &CudaRuntime,
    a: &CudaSlice<f32>,
    ca: usize,
    b: &CudaSlice<f32>,
    cb: usize,
    out: &mut CudaSlice<f32>,
) -> Result<()> {
    let w = ca + cb;
    if w == 0 || out.is_empty() {
        return Ok(());
    }
    let rows = out.len() / w;
    check_len(out, rows * w, "concat_cols out")?;
    check_len(a, rows * ca, "concat_cols a")?;
    check_len(b, rows * cb, "concat_cols b")?;
    let (ai, bi) = (as_i32(ca, "ca")?, as_i32(cb, "cb")?);
    // SAFETY: lengths checked.
    launch_elems!(rt, "rows", "concat_cols", out.len(), [a, &ai, b, &bi, out])
}

/// `d[i] += dy[(i / width) * w + offset + i % width]`: one side of the concat backward.
pub fn concat_cols_bwd_side(
    rt: &CudaRuntime,
    dy: &CudaSlice<f32>,
    w: usize,
    offset: usize,
    width: usize,
    d: &mut CudaSlice<f32>,
) -> Result<()> {
    if width == 0 || d.is_empty() {
        return Ok(());
    }
    let rows = d.len() / width;
    check_len(d, rows * width, "concat_cols_bwd grad")?;
    check_len(dy, rows * w, "concat_cols_bwd dy")?;
    let (wi, oi) = (as_i32(w, "width")?, as_i32(offset, "offset")?);
    let wd = as_i32(width, "cols")?;
    // SAFETY: lengths checked.
    launch_elems!(
        rt,
        "rows",
        "concat_cols_bwd_side",
        d.len(),
        [dy, &wi, &oi, &wd, d]
    )
}

/// `out[i] = sum_j x[i, j]` in f64 (overwrites). Mirrors `cpu::reduce::sum_rows`.
pub fn sum_rows_f64(
    rt: &CudaRuntime,
    x: &CudaSlice<f32>,
    cols: usize,
    out: &mut CudaSlice<f32>,
) -> Result<()> {
    let rows = out.len();
    check_len(x, rows * cols, "sum_rows input")?;
    if rows == 0 {
        return Ok(());
    }
    let (r, c) = (rows as i64, as_i32(cols, "cols")?);
    // SAFETY: lengths checked (cols = 0 writes zeros).
    launch!(
        rt,
        "rows",
        "sum_rows_f64",
        warp_rows_cfg(rows),
        [x, &r, &c, out]
    )
}

/// The first stage of [`sum_f64`]: per-block partial sums of `x` (or of its squares) in
/// `partials`; returns how many blocks wrote one.
pub fn sum_f64_partials(
    rt: &CudaRuntime,
    x: &CudaSlice<f32>,
    square: bool,
    partials: &mut CudaSlice<f64>,
) -> Result<usize> {
    check_len(partials, SUM_F64_BLOCKS, "sum partials")?;
    let (n, sq) = (x.len() as i64, i32::from(square));
    // No more blocks than the data fills (most sums here are of a minibatch's losses): the
    // partition of x into partials depends only on n, so the sum stays deterministic.
    let blocks = x
        .len()
        .div_ceil(ROWS_BLOCK as usize)
        .clamp(1, SUM_F64_BLOCKS);
    // SAFETY: `blocks` <= SUM_F64_BLOCKS blocks, each writes its own partial.
    launch!(
        rt,
        "rows",
        "sum_f64_partials",
        cfg_1d(blocks, ROWS_BLOCK),
        [x, &n, &sq, &mut *partials]
    )?;
    Ok(blocks)
}

/// Where [`sum_f64`] writes its total.
pub enum SumTarget<'a> {
    /// `out[0] = (f32) total`.
    F32(&'a mut CudaSlice<f32>),
    /// `out[0] = total`.
    F64(&'a mut CudaSlice<f64>),
}

/// The f64 sum of `x` (or of its squares), in a fixed order (deterministic). `partials` is a
/// scratch of [`SUM_F64_BLOCKS`] doubles. Mirrors `cpu::reduce::sum_all` / `sq_norm`.
pub fn sum_f64(
    rt: &CudaRuntime,
    x: &CudaSlice<f32>,
    square: bool,
    partials: &mut CudaSlice<f64>,
    target: SumTarget,
) -> Result<()> {
    let blocks = sum_f64_partials(rt, x, square, partials)?;
    let f2 = rt.function("rows", "sum_f64_finish")?;
    let np = blocks as i32;
    let mut l = rt.stream.launch_builder(&f2);
    l.arg(&*partials).arg(&np);
    match target {
        SumTarget::F32(out) => {
            anyhow::ensure!(!out.is_empty(), "sum_all: the output is empty");
            l.arg(out).arg(&NULL_PTR);
            // SAFETY: one thread writes out[0].
            unsafe { l.launch(cfg_1d(1, 32)) }?;
        }
        SumTarget::F64(out) => {
            anyhow::ensure!(!out.is_empty(), "sum_f64: the output is empty");
            l.arg(&NULL_PTR).arg(out);
            // SAFETY: one thread writes out[0].
            unsafe { l.launch(cfg_1d(1, 32)) }?;
        }
    }
    Ok(())
}
