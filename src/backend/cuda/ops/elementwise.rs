//! Launchers of `kernels/elementwise.cu` and `kernels/random.cu`: the elementwise ops of the
//! CUDA backend. Every `*_bwd` ADDS into its gradient, like the CPU ops it mirrors
//! (`backend::cpu::elementwise`, `random`).

use anyhow::Result;
use cudarc::driver::{CudaSlice, LaunchConfig, PushKernelArg};

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
    check_len(y, n, "unary output")?;
    if n == 0 {
        return Ok(());
    }
    let (code, p0, p1) = unary_code(f);
    let func = rt.function("elementwise", "unary_fwd")?;
    let ni = n as i64;
    let mut l = rt.stream.launch_builder(&func);
    l.arg(&code).arg(&p0).arg(&p1).arg(x).arg(y).arg(&ni);
    // SAFETY: x and y hold n elements.
    unsafe { l.launch(elem_cfg(n)) }?;
    Ok(())
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
    check_len(x, n, "unary_bwd x")?;
    check_len(y, n, "unary_bwd y")?;
    check_len(dy, n, "unary_bwd dy")?;
    if n == 0 {
        return Ok(());
    }
    let (code, p0, p1) = unary_code(f);
    let func = rt.function("elementwise", "unary_bwd")?;
    let ni = n as i64;
    let mut l = rt.stream.launch_builder(&func);
    l.arg(&code)
        .arg(&p0)
        .arg(&p1)
        .arg(x)
        .arg(y)
        .arg(dy)
        .arg(dx)
        .arg(&ni);
    // SAFETY: every buffer holds n elements.
    unsafe { l.launch(elem_cfg(n)) }?;
    Ok(())
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
    check_len(a, n, "binary a")?;
    check_len(b, n, "binary b")?;
    if n == 0 {
        return Ok(());
    }
    let code = binary_code(f);
    let func = rt.function("elementwise", "binary_fwd")?;
    let ni = n as i64;
    let mut l = rt.stream.launch_builder(&func);
    l.arg(&code).arg(a).arg(b).arg(out).arg(&ni);
    // SAFETY: every buffer holds n elements.
    unsafe { l.launch(elem_cfg(n)) }?;
    Ok(())
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
    check_len(other, n, "binary_bwd operand")?;
    check_len(dy, n, "binary_bwd dy")?;
    if n == 0 {
        return Ok(());
    }
    let code = binary_code(f);
    let func = rt.function("elementwise", "binary_bwd_side")?;
    let ni = n as i64;
    let mut l = rt.stream.launch_builder(&func);
    l.arg(&code).arg(&side).arg(other).arg(dy).arg(d).arg(&ni);
    // SAFETY: every buffer holds n elements.
    unsafe { l.launch(elem_cfg(n)) }?;
    Ok(())
}

/// `dst[..] = value`.
pub fn fill(rt: &CudaRuntime, dst: &mut CudaSlice<f32>, value: f32) -> Result<()> {
    let n = dst.len();
    if n == 0 {
        return Ok(());
    }
    if value.to_bits() == 0 {
        rt.stream.memset_zeros(dst)?;
        return Ok(());
    }
    let func = rt.function("elementwise", "fill_value")?;
    let ni = n as i64;
    let mut l = rt.stream.launch_builder(&func);
    l.arg(dst).arg(&value).arg(&ni);
    // SAFETY: dst holds n elements.
    unsafe { l.launch(elem_cfg(n)) }?;
    Ok(())
}

/// `dst *= s`.
pub fn scale_inplace(rt: &CudaRuntime, dst: &mut CudaSlice<f32>, s: f32) -> Result<()> {
    let n = dst.len();
    if n == 0 {
        return Ok(());
    }
    let func = rt.function("elementwise", "scale_inplace")?;
    let ni = n as i64;
    let mut l = rt.stream.launch_builder(&func);
    l.arg(dst).arg(&s).arg(&ni);
    // SAFETY: dst holds n elements.
    unsafe { l.launch(elem_cfg(n)) }?;
    Ok(())
}

/// `y += alpha * x`. Mirrors `Cpu::axpy`.
pub fn axpy(
    rt: &CudaRuntime,
    alpha: f32,
    x: &CudaSlice<f32>,
    y: &mut CudaSlice<f32>,
) -> Result<()> {
    let n = y.len();
    check_len(x, n, "axpy x")?;
    if n == 0 {
        return Ok(());
    }
    let func = rt.function("elementwise", "axpy")?;
    let ni = n as i64;
    let mut l = rt.stream.launch_builder(&func);
    l.arg(&alpha).arg(x).arg(y).arg(&ni);
    // SAFETY: x and y hold n elements.
    unsafe { l.launch(elem_cfg(n)) }?;
    Ok(())
}

/// `dst += scale * g[0]` with `g` a 1-element device buffer. Mirrors `Cpu::broadcast_acc`.
pub fn broadcast_acc(
    rt: &CudaRuntime,
    g: &CudaSlice<f32>,
    scale: f32,
    dst: &mut CudaSlice<f32>,
) -> Result<()> {
    anyhow::ensure!(!g.is_empty(), "broadcast_acc: the upstream scalar is empty");
    let n = dst.len();
    if n == 0 {
        return Ok(());
    }
    let func = rt.function("elementwise", "broadcast_acc")?;
    let ni = n as i64;
    let mut l = rt.stream.launch_builder(&func);
    l.arg(g).arg(&scale).arg(dst).arg(&ni);
    // SAFETY: g holds at least one element, dst n.
    unsafe { l.launch(elem_cfg(n)) }?;
    Ok(())
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
    let func = rt.function("elementwise", "sum_rows_bwd")?;
    let (c, ni) = (super::as_i32(cols, "cols")?, n as i64);
    let mut l = rt.stream.launch_builder(&func);
    l.arg(dy).arg(&c).arg(dx).arg(&ni);
    // SAFETY: dx holds rows * cols elements, dy rows.
    unsafe { l.launch(elem_cfg(n)) }?;
    Ok(())
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
    check_len(mean, n, "reparam mean")?;
    check_len(var, n, "reparam var")?;
    check_len(eps, n, "reparam eps")?;
    if n == 0 {
        return Ok(());
    }
    let func = rt.function("elementwise", "reparam_fwd")?;
    let ni = n as i64;
    let mut l = rt.stream.launch_builder(&func);
    l.arg(mean).arg(var).arg(eps).arg(z).arg(&ni);
    // SAFETY: every buffer holds n elements.
    unsafe { l.launch(elem_cfg(n)) }?;
    Ok(())
}

/// `dvar += dz * eps * 0.5 / sqrt(var)`. Mirrors the dvar half of `cpu::random::reparam_bwd`.
pub fn reparam_bwd_var(
    rt: &CudaRuntime,
    var: &CudaSlice<f32>,
    eps: &CudaSlice<f32>,
    dz: &CudaSlice<f32>,
    dvar: &mut CudaSlice<f32>,
) -> Result<()> {
    let n = dvar.len();
    check_len(var, n, "reparam_bwd var")?;
    check_len(eps, n, "reparam_bwd eps")?;
    check_len(dz, n, "reparam_bwd dz")?;
    if n == 0 {
        return Ok(());
    }
    let func = rt.function("elementwise", "reparam_bwd_var")?;
    let ni = n as i64;
    let mut l = rt.stream.launch_builder(&func);
    l.arg(var).arg(eps).arg(dz).arg(dvar).arg(&ni);
    // SAFETY: every buffer holds n elements.
    unsafe { l.launch(elem_cfg(n)) }?;
    Ok(())
}

/// `mask[i] = 1/keep` with probability `keep`, else 0; the CPU's stream bit for bit.
/// Mirrors `cpu::random::dropout_mask`.
pub fn dropout_mask(
    rt: &CudaRuntime,
    seed: u64,
    keep: f32,
    mask: &mut CudaSlice<f32>,
) -> Result<()> {
    let n = mask.len();
    if n == 0 {
        return Ok(());
    }
    let inv = 1.0 / keep;
    let func = rt.function("random", "dropout_mask")?;
    let ni = n as i64;
    let mut l = rt.stream.launch_builder(&func);
    l.arg(&seed).arg(&keep).arg(&inv).arg(mask).arg(&ni);
    // SAFETY: mask holds n elements.
    unsafe { l.launch(elem_cfg(n)) }?;
    Ok(())
}

/// `out[i] ~ N(0, 1)` from (seed, i). Mirrors `cpu::random::normal` (same bits in, f32
/// transcendental functions out: equal to a few ulps).
pub fn normal(rt: &CudaRuntime, seed: u64, out: &mut CudaSlice<f32>) -> Result<()> {
    let n = out.len();
    if n == 0 {
        return Ok(());
    }
    let func = rt.function("random", "normal_fill")?;
    let ni = n as i64;
    let mut l = rt.stream.launch_builder(&func);
    l.arg(&seed).arg(out).arg(&ni);
    // SAFETY: out holds n elements.
    unsafe { l.launch(elem_cfg(n)) }?;
    Ok(())
}
