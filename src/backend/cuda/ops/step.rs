//! Launchers of `kernels/step.cu`: the device-resident training step (minibatch gathers from
//! per-cell tables, the training log's f64 running sums, the clipping factor). Each mirrors the
//! function of `backend::cpu::step` it names.

use anyhow::{Result, ensure};
use cudarc::driver::{CudaSlice, LaunchConfig, PushKernelArg};

use super::kl_ce::CeInputs;
use super::{NULL_PTR, as_i32, blocks_for, cfg_1d, check_len, opt};
use crate::backend::cuda::CudaRuntime;

/// `STEP_BLOCK` in step.cu.
pub const STEP_BLOCK: u32 = 256;
/// Values `acc_values` takes per launch.
pub const ACC_VALUES_MAX: usize = 8;

/// Fails unless a device buffer of `len` elements holds at least `n`.
fn check_min(len: usize, n: usize, what: &str) -> Result<()> {
    ensure!(
        len >= n,
        "{what}: {n} elements needed on the GPU, {len} held"
    );
    Ok(())
}

/// A grid-stride launch over `n` elements.
fn step_cfg(n: usize) -> LaunchConfig {
    cfg_1d(blocks_for(n, STEP_BLOCK), STEP_BLOCK)
}

fn check_slot(acc: &CudaSlice<f64>, slot: usize) -> Result<i32> {
    ensure!(
        slot < acc.len(),
        "accumulator slot {slot} of {} slots",
        acc.len()
    );
    as_i32(slot, "slot")
}

/// `out[i] = table[idx[i]]` for i < n, u32 or f32 (`kernel` = "gather_u32" / "gather_f32").
/// Mirrors `cpu::step::gather`.
pub fn gather<T: cudarc::driver::DeviceRepr>(
    rt: &CudaRuntime,
    kernel: &str,
    table: &CudaSlice<T>,
    idx: &CudaSlice<u32>,
    n: usize,
    out: &mut CudaSlice<T>,
) -> Result<()> {
    for (len, what) in [(idx.len(), "gather indices"), (out.len(), "gather output")] {
        check_min(len, n, what)?;
    }
    if n == 0 {
        return Ok(());
    }
    let (nt, ni) = (as_i32(table.len(), "table rows")?, as_i32(n, "n")?);
    // SAFETY: idx and out hold at least n elements; table reads are bounds-checked in the kernel.
    launch!(rt, "step", kernel, step_cfg(n), [table, &nt, idx, out, &ni])
}

/// Labels and mask (the cells' label-loss weights) of a minibatch, in one launch. Mirrors
/// `cpu::step::gather_labels`.
pub fn gather_labels(
    rt: &CudaRuntime,
    codes: &CudaSlice<u32>,
    weights: &CudaSlice<f32>,
    idx: &CudaSlice<u32>,
    n: usize,
    labels: &mut CudaSlice<u32>,
    mask: &mut CudaSlice<f32>,
) -> Result<()> {
    check_min(idx.len(), n, "gather_labels indices")?;
    check_min(labels.len(), n, "gather_labels labels")?;
    check_min(mask.len(), n, "gather_labels mask")?;
    ensure!(
        codes.len() == weights.len(),
        "gather_labels: {} label codes but {} weights",
        codes.len(),
        weights.len()
    );
    if n == 0 {
        return Ok(());
    }
    let (nt, ni) = (as_i32(codes.len(), "table rows")?, as_i32(n, "n")?);
    // SAFETY: lengths checked above (both tables hold nt rows); table reads are bounds-checked
    // in the kernel.
    launch!(
        rt,
        "step",
        "gather_labels",
        step_cfg(n),
        [codes, weights, &nt, idx, labels, mask, &ni]
    )
}

/// `acc[slot] += x[0]` for each pair, up to [`ACC_VALUES_MAX`] per launch.
pub fn acc_values(
    rt: &CudaRuntime,
    acc: &mut CudaSlice<f64>,
    values: &[(usize, &CudaSlice<f32>)],
) -> Result<()> {
    for chunk in values.chunks(ACC_VALUES_MAX) {
        let mut slots = [0i32; ACC_VALUES_MAX];
        for (k, &(slot, x)) in chunk.iter().enumerate() {
            slots[k] = check_slot(acc, slot)?;
            check_min(x.len(), 1, "acc_values value")?;
        }
        let f = rt.function("step", "acc_values")?;
        let count = chunk.len() as i32;
        let mut l = rt.stream.launch_builder(&f);
        l.arg(&mut *acc).arg(&count);
        for (k, slot) in slots.iter().enumerate() {
            l.arg(slot);
            match chunk.get(k) {
                Some(&(_, x)) => l.arg(x),
                None => l.arg(&NULL_PTR),
            };
        }
        // SAFETY: slots checked against acc; each value holds at least one element.
        unsafe { l.launch(cfg_1d(1, 32)) }?;
    }
    Ok(())
}

/// `acc[slot] += #(a > b) / n`. Mirrors `cpu::step::greater_frac`.
pub fn acc_greater_frac(
    rt: &CudaRuntime,
    acc: &mut CudaSlice<f64>,
    slot: usize,
    a: &CudaSlice<f32>,
    b: &CudaSlice<f32>,
) -> Result<()> {
    let s = check_slot(acc, slot)?;
    check_len(b, a.len(), "acc_greater_frac b")?;
    let n = as_i32(a.len(), "n")?;
    // SAFETY: a and b hold n elements; one block.
    launch!(
        rt,
        "step",
        "acc_greater_frac",
        cfg_1d(1, STEP_BLOCK),
        [acc, &s, a, b, &n]
    )
}

/// Argmax hits of `i.logits` [rows, cols] against `i.labels` (selected rows only). Mirrors
/// `cpu::step::argmax_hit_frac`.
pub fn acc_argmax_hits(
    rt: &CudaRuntime,
    acc: &mut CudaSlice<f64>,
    slot: usize,
    i: &CeInputs,
) -> Result<()> {
    let s = check_slot(acc, slot)?;
    check_min(i.logits.len(), i.rows * i.cols, "acc_argmax_hits logits")?;
    check_min(i.labels.len(), i.rows, "acc_argmax_hits labels")?;
    if let Some(m) = i.mask {
        check_min(m.len(), i.rows, "acc_argmax_hits mask")?;
    }
    let (r, c) = (as_i32(i.rows, "rows")?, as_i32(i.cols, "cols")?);
    // SAFETY: lengths checked above; one block.
    launch!(
        rt,
        "step",
        "acc_argmax_hits",
        cfg_1d(1, STEP_BLOCK),
        [acc, &s, i.logits, i.labels, opt(i.mask), &r, &c]
    )
}

/// The clipping factor from the squared norm in `acc[slot]`. Mirrors `cpu::step::clip_scale`.
pub fn clip_scale(
    rt: &CudaRuntime,
    acc: &CudaSlice<f64>,
    slot: usize,
    clip: f32,
    out: &mut CudaSlice<f32>,
) -> Result<()> {
    let s = check_slot(acc, slot)?;
    check_len(out, 1, "clip_scale output")?;
    // SAFETY: one thread writes out[0].
    launch!(
        rt,
        "step",
        "clip_scale",
        cfg_1d(1, 32),
        [acc, &s, &clip, out]
    )
}
