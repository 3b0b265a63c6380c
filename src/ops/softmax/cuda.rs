//! The softmax kernels on CUDA: launches of `softmax.cu` (one block per row).

use super::SoftmaxKernels;
use crate::backend::cuda::CudaBackend;
use crate::backend::cuda::ops::{as_i32, cfg_1d, check_len};
use anyhow::Result;
use cudarc::driver::{CudaSlice, PushKernelArg};

/// `SOFTMAX_BLOCK` in softmax.cu.
const SOFTMAX_BLOCK: u32 = 256;

impl SoftmaxKernels for CudaBackend {
    fn softmax_rows(&self, x: &CudaSlice<f32>, cols: usize, y: &mut CudaSlice<f32>) {
        self.ok(
            launch(self, "softmax_rows_fwd", &[x], cols, y),
            "softmax_rows",
        );
    }
    fn softmax_rows_bwd(
        &self,
        y: &CudaSlice<f32>,
        dy: &CudaSlice<f32>,
        cols: usize,
        dx: &mut CudaSlice<f32>,
    ) {
        self.ok(
            launch(self, "softmax_rows_bwd", &[y, dy], cols, dx),
            "softmax_rows_bwd",
        );
    }
}

/// `kernel(inputs.., rows, cols, out)`, one block per row; every buffer is `rows x cols`.
/// Nothing to do when `cols` is 0.
fn launch(
    b: &CudaBackend,
    kernel: &str,
    inputs: &[&CudaSlice<f32>],
    cols: usize,
    out: &mut CudaSlice<f32>,
) -> Result<()> {
    if cols == 0 {
        return Ok(());
    }
    let rows = out.len() / cols;
    check_len(out, rows * cols, kernel)?;
    for x in inputs {
        check_len(*x, rows * cols, kernel)?;
    }
    let rt = b.runtime();
    let f = rt.function("softmax", kernel)?;
    let (r, c) = (as_i32(rows, "rows")?, as_i32(cols, "cols")?);
    let mut l = rt.stream.launch_builder(&f);
    for x in inputs {
        l.arg(*x);
    }
    l.arg(&r).arg(&c).arg(out);
    // SAFETY: every input holds rows * cols values and so does `out` (rows is its length over
    // cols); the kernels touch row r < rows only.
    unsafe { l.launch(cfg_1d(rows, SOFTMAX_BLOCK)) }?;
    Ok(())
}
