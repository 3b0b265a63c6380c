//! Launchers of `kernels/elementwise.cu` and `kernels/random.cu`: the elementwise ops of the
//! CUDA backend. Every `*_bwd` ADDS into its gradient, like the CPU ops it mirrors
//! (`backend::cpu::elementwise`, `random`).

use anyhow::Result;
use cudarc::driver::{CudaSlice, LaunchConfig};

use super::{blocks_for, cfg_1d, check_len};
use crate::backend::cuda::CudaRuntime;
use crate::backend::{Binary, Unary};

/// `EW_BLOCK` in elementwise.cu (also `RNG_BLOCK` in random.cu).
pub const EW_BLOCK: u32 = 256;

/// A grid-stride launch over `n` elements.
pub(crate) fn elem_cfg(n: usize) -> LaunchConfig {
    cfg_1d(blocks_for(n, EW_BLOCK), EW_BLOCK)
}

/// `UN_*` code and parameters of a [`Unary`] (keep in sync with elementwise.cu).
pub fn unary_code(f: Unary) -> (i32, f32, f32) {
    match f {
        Unary::Relu => (0, 0.0, 0.0),
        Unary::LeakyRelu(a) => (1, a, 0.0),
        Unary::Softplus => (2, 0.0, 0.0),
        Unary::Sigmoid => (3, 0.0, 0.0),
        Unary::Exp => (4, 0.0, 0.0),
        Unary::Log => (5, 0.0, 0.0),
        Unary::Sqrt => (6, 0.0, 0.0),
        Unary::Square => (7, 0.0, 0.0),
        Unary::Scale(s) => (8, s, 0.0),
        Unary::AddScalar(s) => (9, s, 0.0),
        Unary::Clamp(lo, hi) => (10, lo, hi),
        Unary::Lgamma => (11, 0.0, 0.0),
    }
}

/// `BIN_*` code of a [`Binary`].
pub fn binary_code(f: Binary) -> i32 {
    match f {
        Binary::Add => 0,
        Binary::Sub => 1,
        Binary::Mul => 2,
    }
}

/// `y = f(x)`. Mirrors `cpu::elementwise::unary`.
pub fn unary(rt: &CudaRuntime, f: Unary, x: &CudaSlice<f32>, y: &mut CudaSlice<f32>) -> Result<()> {
    let n = x.len();
    check_lens!(n, "unary", y)?;
    let (code, p0, p1) = unary_code(f);
    // SAFETY: x and y hold n elements.
    launch_elems!(rt, "elementwise", "unary_fwd", n, [&code, &p0, &p1, x, y])
}

/// `dx += dy * f'(x)`. Mirrors `cpu::elementwise::unary_bwd`.
pub fn unary_bwd(
    rt: &CudaRuntime,
    f: Unary,
    x: &CudaSlice<f32>,
    y: &CudaSlice<f32>,
    dy: &CudaSlice<f32>,
    dx: &mut CudaSlice<f32>,
) -> Result<()> {
    let n = dx.len();
    check_lens!(n, "unary_bwd", x, y, dy)?;
    let (code, p0, p1) = unary_code(f);
    // SAFETY: every buffer holds n elements.
    launch_elems!(
        rt,
        "elementwise",
        "unary_bwd",
        n,
        [&code, &p0, &p1, x, y, dy, dx]
    )
}

/// `out = a (+|-|*) b`. Mirrors `cpu::elementwise::binary`.
pub fn binary(
    rt: &CudaRuntime,
    f: Binary,
    a: &CudaSlice<f32>,
    b: &CudaSlice<f32>,
    out: &mut CudaSlice<f32>,
) -> Result<()> {
    let n = out.len();
    check_lens!(n, "binary", a, b)?;
    let code = binary_code(f);
    // SAFETY: every buffer holds n elements.
    launch_elems!(rt, "elementwise", "binary_fwd", n, [&code, a, b, out])
}

/// One side of the binary backward: `side` 0 is `d += dy * dout/da` (`other` = b), side 1 is
/// `d += dy * dout/db` (`other` = a). Mirrors `cpu::elementwise::binary_bwd`.
pub fn binary_bwd_side(
    rt: &CudaRuntime,
    f: Binary,
    side: i32,
    other: &CudaSlice<f32>,
    dy: &CudaSlice<f32>,
    d: &mut CudaSlice<f32>,
) -> Result<()> {
    let n = d.len();
    check_lens!(n, "binary_bwd", other, dy)?;
    let code = binary_code(f);
    // SAFETY: every buffer holds n elements.
    launch_elems!(
        rt,
        "elementwise",
        "binary_bwd_side",
        n,
        [&code, &side, other, dy, d]
    )
}

/// `dst[..] = value`.
pub fn fill(rt: &CudaRuntime, dst: &mut CudaSlice<f32>, value: f32) -> Result<()> {
    if value.to_bits() == 0 && !dst.is_empty() {
        rt.stream.memset_zeros(dst)?;
        return Ok(());
    }
    // SAFETY: dst holds n elements.
    launch_elems!(rt, "elementwise", "fill_value", dst.len(), [dst, &value])
}

/// `dst *= s`.
pub fn scale_inplace(rt: &CudaRuntime, dst: &mut CudaSlice<f32>, s: f32) -> Result<()> {
    // SAFETY: dst holds n elements.
    launch_elems!(rt, "elementwise", "scale_inplace", dst.len(), [dst, &s])
}

/// `y += alpha * x`. Mirrors `Cpu::axpy`.
pub fn axpy(
    rt: &CudaRuntime,
    alpha: f32,
    x: &CudaSlice<f32>,
    y: &mut CudaSlice<f32>,
) -> Result<()> {
    let n = y.len();
    check_lens!(n, "axpy", x)?;
    // SAFETY: x and y hold n elements.
    launch_elems!(rt, "elementwise", "axpy", n, [&alpha, x, y])
}

/// `dst += scale * g[0]` with `g` a 1-element device buffer. Mirrors `Cpu::broadcast_acc`.
pub fn broadcast_acc(
    rt: &CudaRuntime,
    g: &CudaSlice<f32>,
    scale: f32,
    dst: &mut CudaSlice<f32>,
) -> Result<()> {
    anyhow::ensure!(!g.is_empty(), "broadcast_acc: the upstream scalar is empty");
    // SAFETY: g holds at least one element, dst n.
    launch_elems!(
        rt,
        "elementwise",
        "broadcast_acc",
        dst.len(),
        [g, &scale, dst]
    )
}

/// `dx[i, j] += dy[i]`. Mirrors `cpu::reduce::sum_rows_bwd`.
pub fn sum_rows_bwd(
    rt: &CudaRuntime,
    dy: &CudaSlice<f32>,
    cols: usize,
    dx: &mut CudaSlice<f32>,
) -> Result<()> {
    let n = dx.len();
    if n == 0 || cols == 0 {
        return Ok(());
    }
    check_len(dy, n / cols, "sum_rows_bwd dy")?;
    check_len(dx, dy.len() * cols, "sum_rows_bwd dx")?;
    let c = super::as_i32(cols, "cols")?;
    // SAFETY: dx holds rows * cols elements, dy rows.
    launch_elems!(rt, "elementwise", "sum_rows_bwd", n, [dy, &c, dx])
}

/// `z = mean + sqrt(var) * eps`. Mirrors `cpu::random::reparam`.
pub fn reparam(
    rt: &CudaRuntime,
    mean: &CudaSlice<f32>,
    var: &CudaSlice<f32>,
    eps: &CudaSlice<f32>,
    z: &mut CudaSlice<f32>,
) -> Result<()> {
    let n = z.len();
    check_lens!(n, "reparam", mean, var, eps)?;
    // SAFETY: every buffer holds n elements.
    launch_elems!(rt, "elementwise", "reparam_fwd", n, [mean, var, eps, z])
}

/// `dvar += dz * eps * 0.5 / sqrt(var)`. Mirrors `cpu::random::reparam_bwd_var`.
pub fn reparam_bwd_var(
    rt: &CudaRuntime,
    var: &CudaSlice<f32>,
    eps: &CudaSlice<f32>,
    dz: &CudaSlice<f32>,
    dvar: &mut CudaSlice<f32>,
) -> Result<()> {
    let n = dvar.len();
    check_lens!(n, "reparam_bwd", var, eps, dz)?;
    // SAFETY: every buffer holds n elements.
    launch_elems!(
        rt,
        "elementwise",
        "reparam_bwd_var",
        n,
        [var, eps, dz, dvar]
    )
}

/// `mask[i] = 1/keep` with probability `keep`, else 0; the CPU's stream bit for bit.
/// Mirrors `cpu::random::dropout_mask`.
pub fn dropout_mask(
    rt: &CudaRuntime,
    seed: u64,
    keep: f32,
    mask: &mut CudaSlice<f32>,
) -> Result<()> {
    let inv = 1.0 / keep;
    // SAFETY: mask holds n elements.
    launch_elems!(
        rt,
        "random",
        "dropout_mask",
        mask.len(),
        [&seed, &keep, &inv, mask]
    )
}

/// `out[i] ~ N(0, 1)` from (seed, i). Mirrors `cpu::random::normal` (same bits in, f32
/// transcendental functions out: equal to a few ulps).
pub fn normal(rt: &CudaRuntime, seed: u64, out: &mut CudaSlice<f32>) -> Result<()> {
    // SAFETY: out holds n elements.
    launch_elems!(rt, "random", "normal_fill", out.len(), [&seed, out])
}
