//! Launchers of `kernels/multi_tensor.cu`: Adam and the squared gradient norm over many tensors
//! in one launch each. Mirrors `cpu::adam::adam` per tensor and `cpu::reduce::sq_norm` summed
//! into the accumulator in tensor order.
//!
//! The kernels read the tensors' device addresses from a table in device memory. A
//! [`TensorTable`] collects the rows on the host (`push_*`, no device work), and `flush_*`
//! uploads the table only when a row differs from the copy already on the device: an optimiser
//! whose buffers never move uploads it once, so a steady training step copies nothing.

use anyhow::{Result, bail};
use cudarc::driver::{CudaSlice, DevicePtr, LaunchConfig, PushKernelArg};

use super::{NULL_PTR, as_i32, check_len};
use crate::backend::AdamStep;
use crate::backend::cuda::runtime::CudaRuntime;

/// `MT_BLOCK` in multi_tensor.cu.
const MT_BLOCK: u32 = 256;
/// `MT_NORM_BLOCKS` in multi_tensor.cu.
const MT_NORM_BLOCKS: usize = 64;
/// `MT_ROW` in multi_tensor.cu: p, g, m, v, n.
const MT_ROW: usize = 5;
/// Adam blocks per tensor at most (grid-stride loops do the rest).
const MT_ADAM_BLOCKS: usize = 1024;

/// The tensors of one multi-tensor call: rows built on the host, the device copy kept between
/// calls. Every buffer pushed must stay allocated until the flush that launches on it.
#[derive(Default)]
pub struct TensorTable {
    rows: Vec<[u64; MT_ROW]>,
    on_device: Vec<[u64; MT_ROW]>,
    table: Option<CudaSlice<u64>>,
    partials: Option<CudaSlice<f64>>,
}

impl TensorTable {
    fn push(&mut self, row: [u64; MT_ROW]) {
        self.rows.push(row);
    }

    /// The device table holding `rows` (uploaded when they changed), and the row count.
    fn sync(&mut self, rt: &CudaRuntime) -> Result<(usize, i32)> {
        let n = self.rows.len();
        if n > 0 && (self.on_device != self.rows || self.table.is_none()) {
            let flat: Vec<u64> = self.rows.iter().flatten().copied().collect();
            let fits = self.table.as_ref().is_some_and(|t| t.len() >= flat.len());
            if !fits {
                self.table = Some(rt.stream.alloc_zeros::<u64>(flat.len().max(MT_ROW))?);
            }
            if let Some(t) = self.table.as_mut() {
                let mut view = t.slice_mut(0..flat.len());
                rt.stream.memcpy_htod(&flat, &mut view)?;
            }
            self.on_device.clone_from(&self.rows);
        }
        self.rows.clear();
        Ok((n, as_i32(n, "tensors in one multi-tensor launch")?))
    }
}

fn address(rt: &CudaRuntime, b: &CudaSlice<f32>) -> u64 {
    // One stream: the recorded read event (dropped here) orders nothing the stream does not.
    let (ptr, _read) = b.device_ptr(&rt.stream);
    ptr
}

/// Queue one tensor of an Adam update (no device work).
pub fn push_adam(
    rt: &CudaRuntime,
    table: &mut TensorTable,
    p: &CudaSlice<f32>,
    g: &CudaSlice<f32>,
    m: &CudaSlice<f32>,
    v: &CudaSlice<f32>,
) -> Result<()> {
    let n = p.len();
    check_len(g, n, "adam grad")?;
    check_len(m, n, "adam m")?;
    check_len(v, n, "adam v")?;
    let row = [
        address(rt, p),
        address(rt, g),
        address(rt, m),
        address(rt, v),
        n as u64,
    ];
    table.push(row);
    Ok(())
}

/// One launch updating every queued tensor. Mirrors `cpu::adam::adam` (the host scalars are
/// computed in the same f32 expressions).
pub fn flush_adam(
    rt: &CudaRuntime,
    table: &mut TensorTable,
    s: AdamStep,
    grad_scale: Option<&CudaSlice<f32>>,
) -> Result<()> {
    if let Some(b) = grad_scale {
        check_len(b, 1, "adam gradient scale")?;
    }
    let largest = table.rows.iter().map(|r| r[4]).max().unwrap_or(0) as usize;
    let (n, ni) = table.sync(rt)?;
    if n == 0 || largest == 0 {
        return Ok(());
    }
    let step = s.lr / s.bias_c1;
    let inv_sqrt_c2 = 1.0 / s.bias_c2.sqrt();
    let decay = 1.0 - s.lr * s.weight_decay;
    let f = rt.function("multi_tensor", "adam_many")?;
    let Some(dev) = table.table.as_ref() else {
        bail!("adam_many: no device table");
    };
    let mut l = rt.stream.launch_builder(&f);
    l.arg(dev)
        .arg(&ni)
        .arg(&s.beta1)
        .arg(&s.beta2)
        .arg(&s.eps)
        .arg(&s.grad_scale);
    match grad_scale {
        Some(b) => l.arg(b),
        None => l.arg(&NULL_PTR),
    };
    l.arg(&step).arg(&inv_sqrt_c2).arg(&decay);
    let cfg = grid(largest.div_ceil(MT_BLOCK as usize).min(MT_ADAM_BLOCKS), n)?;
    // SAFETY: every row was checked when pushed (four buffers of n elements each); the caller
    // keeps them allocated until this launch is queued.
    unsafe { l.launch(cfg) }?;
    Ok(())
}

/// Queue one tensor of a squared norm (no device work).
pub fn push_sq_norm(rt: &CudaRuntime, table: &mut TensorTable, x: &CudaSlice<f32>) {
    table.push([address(rt, x), 0, 0, 0, x.len() as u64]);
}

/// `acc[slot] +=` each queued tensor's sum of squares in f64, in queue order: two launches.
pub fn flush_sq_norm(
    rt: &CudaRuntime,
    table: &mut TensorTable,
    acc: &mut CudaSlice<f64>,
    slot: usize,
) -> Result<()> {
    if slot >= acc.len() {
        bail!("sq_norm: accumulator slot {slot} of {}", acc.len());
    }
    let (n, ni) = table.sync(rt)?;
    if n == 0 {
        return Ok(());
    }
    let need = n * MT_NORM_BLOCKS;
    if table.partials.as_ref().is_none_or(|p| p.len() < need) {
        table.partials = Some(rt.stream.alloc_zeros::<f64>(need)?);
    }
    let (Some(dev), Some(partials)) = (table.table.as_ref(), table.partials.as_mut()) else {
        bail!("sq_norm_many: no device table");
    };
    // SAFETY: partials hold MT_NORM_BLOCKS per tensor; rows were built from live buffers.
    launch!(
        rt,
        "multi_tensor",
        "sq_norm_many_partials",
        grid(MT_NORM_BLOCKS, n)?,
        [dev, &ni, &mut *partials]
    )?;
    let s = as_i32(slot, "accumulator slot")?;
    // SAFETY: one thread reads n * MT_NORM_BLOCKS partials and writes acc[slot] (checked).
    launch!(
        rt,
        "multi_tensor",
        "acc_partials_many",
        LaunchConfig {
            grid_dim: (1, 1, 1),
            block_dim: (32, 1, 1),
            shared_mem_bytes: 0,
        },
        [acc, &s, &*partials, &ni]
    )
}

/// `blocks` blocks per tensor (x) for `tensors` tensors (y).
fn grid(blocks: usize, tensors: usize) -> Result<LaunchConfig> {
    if tensors > 65_535 {
        bail!("{tensors} tensors in one multi-tensor launch (at most 65,535)");
    }
    Ok(LaunchConfig {
        grid_dim: (blocks.max(1) as u32, tensors as u32, 1),
        block_dim: (MT_BLOCK, 1, 1),
        shared_mem_bytes: 0,
    })
}
