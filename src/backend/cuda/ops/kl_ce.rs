//! Launchers of `kernels/kl_ce.cu`: Gaussian KL terms and the masked mean cross-entropy.
//! Gradient launchers OVERWRITE their outputs (the Backend's fused-loss convention).
//! Mirrors `backend::cpu::losses::kl` and `backend::cpu::losses::cross_entropy`.

use anyhow::{Result, ensure};
use cudarc::driver::{CudaSlice, PushKernelArg};

use super::elementwise::elem_cfg;
use super::rows::warp_rows_cfg;
use super::{as_i32, cfg_1d, check_len, opt};
use crate::backend::cuda::CudaRuntime;

/// `CE_COUNT_BLOCK` in kl_ce.cu.
pub const CE_COUNT_BLOCK: u32 = 256;

/// The Gaussian KL terms of kl_ce.cu, by the inputs each takes (all `[rows, cols]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kl {
    /// `kl[r] = 0.5 sum_k (-ln clip(v) + v + m^2 - 1)` from `[m, v]`.
    StdNormal,
    /// `kl[r] = KL(N(m1, v1) || N(m2, v2))` summed over the row, from `[m1, v1, m2, v2]`.
    Normal,
}

impl Kl {
    /// (forward kernel, backward kernel, number of inputs).
    fn kernels(self) -> (&'static str, &'static str, usize) {
        match self {
            Kl::StdNormal => ("kl_std_normal_fwd", "kl_std_normal_bwd", 2),
            Kl::Normal => ("kl_normal_fwd", "kl_normal_bwd", 4),
        }
    }
}

/// `kl[r]` of `kind` for the `rows = kl.len()` rows of `p`, one warp per row.
pub fn kl_fwd<const N: usize>(
    rt: &CudaRuntime,
    kind: Kl,
    p: [&CudaSlice<f32>; N],
    cols: usize,
    kl: &mut CudaSlice<f32>,
) -> Result<()> {
    let (kernel, _, inputs) = kind.kernels();
    ensure!(N == inputs, "{kernel}: {N} inputs, not {inputs}");
    let rows = kl.len();
    for s in p {
        check_len(s, rows * cols, kernel)?;
    }
    if rows == 0 {
        return Ok(());
    }
    let (r, c) = (rows as i64, as_i32(cols, "cols")?);
    let f = rt.function("kl_ce", kernel)?;
    let mut l = rt.stream.launch_builder(&f);
    for s in p {
        l.arg(s);
    }
    l.arg(&r).arg(&c).arg(kl);
    // SAFETY: every input holds rows * cols values, kl rows; the kernel touches row r < rows only.
    unsafe { l.launch(warp_rows_cfg(rows)) }?;
    Ok(())
}

/// Gradients of `sum_r kl[r] g[r]` (`kind`) w.r.t. each input of `p` (overwritten), over the
/// `n = g.len() * cols` elements.
pub fn kl_bwd<const N: usize>(
    rt: &CudaRuntime,
    kind: Kl,
    p: [&CudaSlice<f32>; N],
    cols: usize,
    g: &CudaSlice<f32>,
    grads: [&mut CudaSlice<f32>; N],
) -> Result<()> {
    let (_, kernel, inputs) = kind.kernels();
    ensure!(N == inputs, "{kernel}: {N} inputs, not {inputs}");
    let n = g.len() * cols;
    for s in p {
        check_len(s, n, kernel)?;
    }
    for d in &grads {
        check_len(*d, n, kernel)?;
    }
    if n == 0 {
        return Ok(());
    }
    let (c, ni) = (as_i32(cols, "cols")?, n as i64);
    let f = rt.function("kl_ce", kernel)?;
    let mut l = rt.stream.launch_builder(&f);
    for s in p {
        l.arg(s);
    }
    l.arg(g).arg(&c);
    for d in grads {
        l.arg(d);
    }
    l.arg(&ni);
    // SAFETY: every input and gradient holds n values, g n / cols.
    unsafe { l.launch(elem_cfg(n)) }?;
    Ok(())
}

/// Inputs of the masked cross-entropy.
pub struct CeInputs<'a> {
    pub logits: &'a CudaSlice<f32>,
    pub labels: &'a CudaSlice<u32>,
    pub mask: Option<&'a CudaSlice<f32>>,
    pub rows: usize,
    pub cols: usize,
    /// 0: cross-entropy; > 0: generalized cross-entropy (see [`crate::backend::Labelled`]).
    pub gce_q: f32,
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
    let (r, c, q) = (i.rows as i64, as_i32(i.cols, "classes")?, i.gce_q as f64);
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
                &q,
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
    let (c, q) = (as_i32(i.cols, "classes")?, i.gce_q as f64);
    // SAFETY: lengths checked.
    launch!(
        rt,
        "kl_ce",
        "ce_bwd",
        warp_rows_cfg(i.rows),
        [
            i.logits,
            i.labels,
            opt(i.mask),
            &r,
            &c,
            &q,
            &*count,
            g,
            dlogits
        ]
    )
}
