//! Typed launchers of the kernels in `kernels/*.cu`. Each function names the CPU op it mirrors
//! (the reference in `tests/cuda_ops.rs`), checks every length before launching (a wrong length
//! is an error here, never an out-of-bounds write on the GPU), and queues work on the runtime's
//! stream without synchronising.
//!
//! Block sizes repeat the `#define`s of the kernels; keep both in sync.

pub mod dense;
pub mod elementwise;
pub mod kl_ce;
pub mod loss;
pub mod multi_tensor;
pub mod reduce;
pub mod rows;
pub mod sparse;
pub mod step;

use anyhow::{Result, bail};
use cudarc::driver::{DeviceSlice, LaunchConfig};

/// Passed where a kernel takes an optional pointer and the caller has none (a null pointer).
pub(crate) static NULL_PTR: u64 = 0;

/// A grid-stride launch never needs more blocks than this (the kernels loop over the rest).
pub(crate) const MAX_GRID_BLOCKS: usize = 65_535;

/// A launch of `blocks` 1-D blocks of `threads` threads.
pub(crate) fn cfg_1d(blocks: usize, threads: u32) -> LaunchConfig {
    LaunchConfig {
        grid_dim: (blocks.clamp(1, MAX_GRID_BLOCKS) as u32, 1, 1),
        block_dim: (threads, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// Blocks for `n` elements at `threads` per block, capped (grid-stride loops do the rest).
pub(crate) fn blocks_for(n: usize, threads: u32) -> usize {
    n.div_ceil(threads as usize).clamp(1, MAX_GRID_BLOCKS)
}

/// `n` as the `int` the kernels take, or an error naming `what`.
pub(crate) fn as_i32(n: usize, what: &str) -> Result<i32> {
    i32::try_from(n)
        .map_err(|_| anyhow::anyhow!("{what} = {n} exceeds the GPU kernels' 2^31 limit"))
}

/// Fail unless `slice` holds exactly `expected` elements.
pub(crate) fn check_len<T>(slice: &impl DeviceSlice<T>, expected: usize, what: &str) -> Result<()> {
    if slice.len() != expected {
        bail!(
            "{what}: expected {expected} elements on the GPU, got {}",
            slice.len()
        );
    }
    Ok(())
}

/// The kernels' `int accumulate` flag.
pub(crate) fn flag(b: bool) -> i32 {
    i32::from(b)
}
