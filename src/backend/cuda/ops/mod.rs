//! Typed launchers of the kernels in `kernels/*.cu`. Each function names the CPU op it mirrors
//! (the reference in `tests/cuda_ops.rs`), checks every length before launching (a wrong length
//! is an error here, never an out-of-bounds write on the GPU), and queues work on the runtime's
//! stream without synchronising.
//!
//! Block sizes repeat the `#define`s of the kernels; keep both in sync.

/// Launches `kernel` of `module` (as [`CudaRuntime::function`] names them) on `rt`'s stream
/// with `cfg` and the arguments in the kernel's order, and evaluates to `anyhow::Result<()>`.
/// Each argument is what `PushKernelArg::arg` takes: `&scalar`, a device slice, or
/// [`opt`] for an optional pointer. The launch is unsafe: every call site says in a
/// `// SAFETY:` comment why the arguments match the kernel's signature and bounds.
///
/// [`CudaRuntime::function`]: crate::backend::cuda::CudaRuntime::function
macro_rules! launch {
    ($rt:expr, $module:expr, $kernel:expr, $cfg:expr, [$($arg:expr),+ $(,)?]) => {
        match $rt.function($module, $kernel) {
            Err(e) => Err(e),
            Ok(func) => {
                let cfg: ::cudarc::driver::LaunchConfig = $cfg;
                let mut builder = $rt.stream.launch_builder(&func);
                $(::cudarc::driver::PushKernelArg::arg(&mut builder, $arg);)+
                // SAFETY: the caller's SAFETY comment (this macro's contract, above).
                unsafe { builder.launch(cfg) }
                    .map(|_| ())
                    .map_err(::anyhow::Error::from)
            }
        }
    };
}

/// [`launch!`] of a grid-stride kernel over `n` elements (a `usize`), `n` appended to the
/// arguments as the kernel's trailing `long long n`: nothing to launch when `n` is 0.
macro_rules! launch_elems {
    ($rt:expr, $module:expr, $kernel:expr, $n:expr, [$($arg:expr),+ $(,)?]) => {{
        let n: usize = $n;
        if n == 0 {
            Ok(())
        } else {
            let n_i64 = n as i64;
            let cfg = $crate::backend::cuda::ops::elementwise::elem_cfg(n);
            launch!($rt, $module, $kernel, cfg, [$($arg,)+ &n_i64])
        }
    }};
}

/// Fails unless each named device slice holds `n` elements: [`check_len`] with `what` = `op`
/// and the slice's name. Evaluates to `anyhow::Result<()>`.
macro_rules! check_lens {
    ($n:expr, $op:literal, $($slice:ident),+ $(,)?) => {{
        let n: usize = $n;
        Ok::<(), ::anyhow::Error>(())
            $(.and_then(|()| {
                let what = concat!($op, " ", stringify!($slice));
                $crate::backend::cuda::ops::check_len(&*$slice, n, what)
            }))+
    }};
}

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
use cudarc::driver::{CudaSlice, DeviceSlice, LaunchArgs, LaunchConfig, PushKernelArg};

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

/// A kernel's optional pointer argument: the buffer, or a null pointer where there is none.
pub(crate) struct OptSlice<'b, T>(Option<&'b CudaSlice<T>>);

/// `slice` as an optional pointer argument of [`launch!`].
pub(crate) fn opt<T>(slice: Option<&CudaSlice<T>>) -> OptSlice<'_, T> {
    OptSlice(slice)
}

// SAFETY: pushes exactly one pointer argument, through cudarc's own impls for a device
// slice (which record the access for synchronisation) or for a `u64` zero.
unsafe impl<'a, 'b: 'a, T> PushKernelArg<OptSlice<'b, T>> for LaunchArgs<'a> {
    fn arg(&mut self, arg: OptSlice<'b, T>) -> &mut Self {
        match arg.0 {
            Some(slice) => self.arg(slice),
            None => self.arg(&NULL_PTR),
        }
    }
}
