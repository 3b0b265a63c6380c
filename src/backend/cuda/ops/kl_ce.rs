//! Launchers of `kernels/kl_ce.cu`: Gaussian KL terms and the masked mean cross-entropy.
//! Gradient launchers OVERWRITE their outputs (the Backend's fused-loss convention).
//! Mirrors `backend::cpu::losses::kl` and `backend::cpu::losses::cross_entropy`.

use anyhow::Result;
use cudarc::driver::CudaSlice;

use super::elementwise::elem_cfg;
use super::rows::warp_rows_cfg;
use super::{as_i32, cfg_1d, check_len, opt};
use crate::backend::cuda::CudaRuntime;

/// `CE_COUNT_BLOCK` in kl_ce.cu.
pub const CE_COUNT_BLOCK: u32 = 256;

/// `kl[r] = 0.5 sum_k (-ln clip(v) + v + m^2 - 1)`.
pub fn kl_std_normal_fwd(
    rt: &CudaRuntime,
    m: &CudaSlice<f32>,
    v: &CudaSlice<f32>,
    cols: usize,
    kl: &mut CudaSlice<f32>,
) -> Result<()> {
    let rows = kl.len();
    check_len(m, rows * cols, "kl mean")?;
    check_len(v, rows * cols, "kl var")?;
    if rows == 0 {
        return Ok(());
    }
    let (r, c) = (rows as i64, as_i32(cols, "cols")?);
    // SAFETY: lengths checked.
    launch!(
        rt,
        "kl_ce",
        "kl_std_normal_fwd",
        warp_rows_cfg(rows),
        [m, v, &r, &c, kl]
    )
}

/// Gradients of `sum_r kl[r] g[r]` w.r.t. mean and var (overwritten).
pub fn kl_std_normal_bwd(
    rt: &CudaRuntime,
    m: &CudaSlice<f32>,
    v: &CudaSlice<f32>,
    cols: usize,
    g: &CudaSlice<f32>,
    dm: &mut CudaSlice<f32>,
    dv: &mut CudaSlice<f32>,
) -> Result<()> {
    let n = g.len() * cols;
    for (s, what) in [(m, "kl mean"), (v, "kl var")] {
        check_len(s, n, what)?;
    }
    check_len(dm, n, "kl dmean")?;
    check_len(dv, n, "kl dvar")?;
    if n == 0 {
        return Ok(());
    }
    let (c, ni) = (as_i32(cols, "cols")?, n as i64);
    // SAFETY: lengths checked.
    launch!(
        rt,
        "kl_ce",
        "kl_std_normal_bwd",
        elem_cfg(n),
        [m, v, g, &c, dm, dv, &ni]
    )
}

/// `kl[r] = KL(N(m1, v1) || N(m2, v2))` summed over the row.
pub fn kl_normal_fwd(
    rt: &CudaRuntime,
    p: [&CudaSlice<f32>; 4],
    cols: usize,
    kl: &mut CudaSlice<f32>,
) -> Result<()> {
    let rows = kl.len();
    for s in p {
        check_len(s, rows * cols, "kl_normal input")?;
    }
    if rows == 0 {
        return Ok(());
    }
    let (r, c) = (rows as i64, as_i32(cols, "cols")?);
    // SAFETY: lengths checked.
    launch!(
        rt,
        "kl_ce",
        "kl_normal_fwd",
        warp_rows_cfg(rows),
        [p[0], p[1], p[2], p[3], &r, &c, kl]
    )
}

/// Gradients of `sum_r kl[r] g[r]` w.r.t. m1, v1, m2, v2 (overwritten).
pub fn kl_normal_bwd(
    rt: &CudaRuntime,
    p: [&CudaSlice<f32>; 4],
    cols: usize,
    g: &CudaSlice<f32>,
    grads: [&mut CudaSlice<f32>; 4],
) -> Result<()> {
    let n = g.len() * cols;
    for s in p {
        check_len(s, n, "kl_normal input")?;
    }
    for d in &grads {
        check_len(*d, n, "kl_normal gradient")?;
    }
    if n == 0 {
        return Ok(());
    }
    let (c, ni) = (as_i32(cols, "cols")?, n as i64);
    let [d0, d1, d2, d3] = grads;
    // SAFETY: lengths checked.
    launch!(
        rt,
        "kl_ce",
        "kl_normal_bwd",
        elem_cfg(n),
        [p[0], p[1], p[2], p[3], g, &c, d0, d1, d2, d3, &ni]
    )
}

/// Inputs of the masked cross-entropy.
pub struct CeInputs<'a> {
    pub logits: &'a CudaSlice<f32>,
    pub labels: &'a CudaSlice<u32>,
    pub mask: Option<&'a CudaSlice<f32>>,
    pub rows: usize,
    pub cols: usize,
}

impl CeInputs<'_> {
    fn check(&self) -> Result<()> {
        check_len(self.logits, self.rows * self.cols, "cross-entropy logits")?;
        check_len(self.labels, self.rows, "cross-entropy labels")?;
        if let Some(m) = self.mask {
            check_len(m, self.rows, "cross-entropy mask")?;
        }
        Ok(())
    }
}

/// `loss[0]` = mean over selected rows of `-log_softmax(logits)[label]` (0 if none). Needs two
/// scratch buffers of at least `rows` doubles.
pub fn cross_entropy_fwd(
    rt: &CudaRuntime,
    i: &CeInputs,
    scratch: (&mut CudaSlice<f64>, &mut CudaSlice<f64>),
    loss: &mut CudaSlice<f32>,
) -> Result<()> {
    i.check()?;
    anyhow::ensure!(!loss.is_empty(), "cross-entropy: the loss buffer is empty");
    let (loss_rows, sel_rows) = scratch;
    anyhow::ensure!(
        loss_rows.len() >= i.rows && sel_rows.len() >= i.rows,
        "cross-entropy: scratch smaller than {} rows",
        i.rows
    );
    let (r, c) = (i.rows as i64, as_i32(i.cols, "classes")?);
    if i.rows > 0 {
        // SAFETY: lengths checked; labels out of range give NaN in the kernel.
        launch!(
            rt,
            "kl_ce",
            "ce_rows",
            warp_rows_cfg(i.rows),
            [
                i.logits,
                i.labels,
                opt(i.mask),
                &r,
                &c,
                &mut *loss_rows,
                &mut *sel_rows
            ]
        )?;
    }
    // SAFETY: one block reads `rows` entries of each scratch and writes loss[0].
    launch!(
        rt,
        "kl_ce",
        "ce_finish",
        cfg_1d(1, CE_COUNT_BLOCK),
        [&*loss_rows, &*sel_rows, &r, loss]
    )
}

/// `dlogits` = `g[0]` times the gradient of the masked mean (overwritten). `count` is a
/// 1-double scratch.
pub fn cross_entropy_bwd(
    rt: &CudaRuntime,
    i: &CeInputs,
    g: &CudaSlice<f32>,
    count: &mut CudaSlice<f64>,
    dlogits: &mut CudaSlice<f32>,
) -> Result<()> {
    i.check()?;
    check_len(dlogits, i.rows * i.cols, "cross-entropy dlogits")?;
    anyhow::ensure!(!g.is_empty(), "cross-entropy: the upstream scalar is empty");
    check_len(count, 1, "cross-entropy count")?;
    if i.rows == 0 || i.cols == 0 {
        return Ok(());
    }
    let r = i.rows as i64;
    // SAFETY: one block reads the mask and writes count[0].
    launch!(
        rt,
        "kl_ce",
        "ce_count",
        cfg_1d(1, CE_COUNT_BLOCK),
        [opt(i.mask), &r, &mut *count]
    )?;
    let c = as_i32(i.cols, "classes")?;
    // SAFETY: lengths checked.
    launch!(
        rt,
        "kl_ce",
        "ce_bwd",
        warp_rows_cfg(i.rows),
        [i.logits, i.labels, opt(i.mask), &r, &c, &*count, g, dlogits]
    )
}
