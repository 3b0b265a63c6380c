//! Launchers of the fused loss kernels of `kernels/zinb.cu`.

use anyhow::{Result, bail};
use cudarc::driver::{CudaSlice, LaunchConfig, PushKernelArg};

use super::reduce::sum_leading_axis;
use super::{NULL_PTR, as_i32, check_len};
use crate::backend::cuda::CudaRuntime;

/// `ZINB_TILE_COLS`, `ZINB_TILE_THREADS_Y`, `ZINB_TILE_ROWS` in zinb.cu.
pub const ZINB_TILE_COLS: usize = 32;
const ZINB_TILE_THREADS_Y: u32 = 8;
/// Rows per ZINB tile.
pub const ZINB_TILE_ROWS: usize = 32;
/// `CE_WARPS_PER_BLOCK` in softmax_ce.cu.
pub const CE_WARPS_PER_BLOCK: usize = 8;

/// Inputs of the ZINB/NB log-likelihood over a `[rows, cols]` minibatch.
pub struct ZinbInputs<'a> {
    /// Observed values, `[rows, cols]`.
    pub x: &'a CudaSlice<f32>,
    /// Means, `[rows, cols]`.
    pub mu: &'a CudaSlice<f32>,
    /// Inverse dispersion per gene, `[cols]`.
    pub theta: &'a CudaSlice<f32>,
    /// Dropout logits `[rows, cols]` (ZINB), or None for the negative binomial.
    pub logit: Option<&'a CudaSlice<f32>>,
    /// dLoss/dLL_row per row, `[rows]`.
    pub upstream: &'a CudaSlice<f32>,
    pub rows: usize,
    pub cols: usize,
    /// Added inside every log (1e-4 in the authors' code).
    pub eps: f32,
    /// `x < zero_threshold` takes the zero branch of the ZINB (1e-4 in the authors' code).
    pub zero_threshold: f32,
}

/// Outputs of [`zinb_fwd_bwd`].
pub struct ZinbOutputs<'a> {
    /// Per-row log-likelihood `sum_g LL`, `[rows]` (overwritten).
    pub ll_rows: &'a mut CudaSlice<f32>,
    /// `upstream[r] * dLL/dmu`, `[rows, cols]` (overwritten).
    pub dmu: &'a mut CudaSlice<f32>,
    /// `upstream[r] * dLL/dlogit`, `[rows, cols]` (overwritten); required for the ZINB.
    pub dlogit: Option<&'a mut CudaSlice<f32>>,
    /// `sum_r upstream[r] * dLL/dtheta`, `[cols]`.
    pub dtheta: &'a mut CudaSlice<f32>,
    /// Add to `dtheta` instead of overwriting it.
    pub accumulate_dtheta: bool,
}

/// Fused ZINB (or NB when `logit` is None) log-likelihood forward and backward.
/// Mirrors `backend::cpu::losses::zinb::zinb_fwd_bwd` / `nb_fwd_bwd`.
pub fn zinb_fwd_bwd(rt: &CudaRuntime, i: &ZinbInputs, o: ZinbOutputs) -> Result<()> {
    let n = i.rows * i.cols;
    check_len(i.x, n, "zinb x")?;
    check_len(i.mu, n, "zinb mu")?;
    check_len(i.theta, i.cols, "zinb theta")?;
    check_len(i.upstream, i.rows, "zinb upstream")?;
    check_len(o.ll_rows, i.rows, "zinb ll_rows")?;
    check_len(o.dmu, n, "zinb dmu")?;
    check_len(o.dtheta, i.cols, "zinb dtheta")?;
    match (&i.logit, &o.dlogit) {
        (Some(l), Some(dl)) => {
            check_len(*l, n, "zinb logit")?;
            check_len(*dl, n, "zinb dlogit")?;
        }
        (None, None) => {}
        _ => bail!("zinb_fwd_bwd: logit and dlogit must be both given (ZINB) or both absent (NB)"),
    }
    if i.rows == 0 || i.cols == 0 {
        return Ok(());
    }
    let col_tiles = i.cols.div_ceil(ZINB_TILE_COLS);
    let row_tiles = i.rows.div_ceil(ZINB_TILE_ROWS);
    if row_tiles > 65_535 {
        bail!(
            "zinb_fwd_bwd: {} rows exceed one launch; split the minibatch",
            i.rows
        );
    }
    let mut row_partials = rt.stream.alloc_zeros::<f32>(col_tiles * i.rows)?;
    let mut theta_partials = rt.stream.alloc_zeros::<f32>(row_tiles * i.cols)?;

    let f = rt.function("zinb", "zinb_fwd_bwd_tile")?;
    let (rows, cols) = (as_i32(i.rows, "rows")?, as_i32(i.cols, "genes")?);
    let mut b = rt.stream.launch_builder(&f);
    b.arg(i.x).arg(i.mu).arg(i.theta);
    match i.logit {
        Some(l) => b.arg(l),
        None => b.arg(&NULL_PTR),
    };
    b.arg(i.upstream)
        .arg(&rows)
        .arg(&cols)
        .arg(&i.eps)
        .arg(&i.zero_threshold)
        .arg(&mut row_partials)
        .arg(o.dmu);
    match o.dlogit {
        Some(dl) => b.arg(dl),
        None => b.arg(&NULL_PTR),
    };
    b.arg(&mut theta_partials);
    let cfg = LaunchConfig {
        grid_dim: (col_tiles as u32, row_tiles as u32, 1),
        block_dim: (ZINB_TILE_COLS as u32, ZINB_TILE_THREADS_Y, 1),
        shared_mem_bytes: 0,
    };
    // SAFETY: every length was checked; partial buffers are sized to the grid.
    unsafe { b.launch(cfg) }?;
    sum_leading_axis(rt, &row_partials, o.ll_rows, false)?;
    sum_leading_axis(rt, &theta_partials, o.dtheta, o.accumulate_dtheta)
}
