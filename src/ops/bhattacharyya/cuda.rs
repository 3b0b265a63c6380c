//! The Bhattacharyya kernels on CUDA: one launch of `bhattacharyya.cu` (one block) computes the
//! value and both gradients.

use super::BhattacharyyaKernels;
use crate::backend::cuda::ops::{NULL_PTR, as_i32, cfg_1d, check_len, flag};
use crate::backend::cuda::{CudaBackend, CudaRuntime};
use anyhow::Result;
use cudarc::driver::{CudaSlice, PushKernelArg};

/// `BHATT_BLOCK` in bhattacharyya.cu.
const BHATT_BLOCK: u32 = 256;
/// The clip of BC inside its log, as the kernel takes it (`cpu.rs`'s `BC_CLIP`).
const CLIP: (f32, f32) = (1e-4, 1e4);

impl BhattacharyyaKernels for CudaBackend {
    fn bhattacharyya_fwd(
        &self,
        a: &CudaSlice<f32>,
        b: &CudaSlice<f32>,
        loss_out: &mut CudaSlice<f32>,
    ) {
        let (mut out, mut da, mut db) = (
            self.scratch(2),
            self.scratch(a.len()),
            self.scratch(a.len()),
        );
        let rt = self.runtime();
        let r = launch(rt, a, b, CLIP, 1.0, None, &mut out, &mut da, &mut db, false);
        self.ok(r, "bhattacharyya_fwd");
        // out = [BC, ln clip(BC)]: the loss is the second entry.
        let r = rt.stream.memcpy_dtod(&out.slice(1..2), loss_out);
        self.ok(r.map_err(Into::into), "bhattacharyya_fwd");
    }
    fn bhattacharyya_bwd(
        &self,
        a: &CudaSlice<f32>,
        b: &CudaSlice<f32>,
        g: &CudaSlice<f32>,
        da: &mut CudaSlice<f32>,
        db: &mut CudaSlice<f32>,
    ) {
        let mut out = self.scratch(2);
        let r = launch(
            self.runtime(),
            a,
            b,
            CLIP,
            1.0,
            Some(g),
            &mut out,
            da,
            db,
            false,
        );
        self.ok(r, "bhattacharyya_bwd");
    }
}

/// Bhattacharyya coefficient of the discriminator outputs `a` (real) and `b` (reconstructed),
/// forward and backward. `out` = `[BC, ln clip(BC)]`; `da`, `db` get
/// `upstream * upstream_dev[0] * d ln clip(BC) / d(a, b)` (`upstream_dev`, a 1-element device
/// buffer, is optional). Mirrors `cpu.rs`'s `bhattacharyya_fwd_bwd`.
#[allow(clippy::too_many_arguments)]
fn launch(
    rt: &CudaRuntime,
    a: &CudaSlice<f32>,
    b: &CudaSlice<f32>,
    clip: (f32, f32),
    upstream: f32,
    upstream_dev: Option<&CudaSlice<f32>>,
    out: &mut CudaSlice<f32>,
    da: &mut CudaSlice<f32>,
    db: &mut CudaSlice<f32>,
    accumulate: bool,
) -> Result<()> {
    let n = a.len();
    check_len(b, n, "bhattacharyya b")?;
    check_len(da, n, "bhattacharyya da")?;
    check_len(db, n, "bhattacharyya db")?;
    check_len(out, 2, "bhattacharyya out")?;
    if let Some(u) = upstream_dev {
        check_len(u, 1, "bhattacharyya upstream")?;
    }
    let f = rt.function("bhattacharyya", "bhattacharyya_fwd_bwd")?;
    let (ni, acc) = (as_i32(n, "cells")?, flag(accumulate));
    let mut l = rt.stream.launch_builder(&f);
    l.arg(a)
        .arg(b)
        .arg(&ni)
        .arg(&clip.0)
        .arg(&clip.1)
        .arg(&upstream);
    match upstream_dev {
        Some(u) => l.arg(u),
        None => l.arg(&NULL_PTR),
    };
    l.arg(out).arg(da).arg(db).arg(&acc);
    // SAFETY: lengths checked; one block strides over n.
    unsafe { l.launch(cfg_1d(1, BHATT_BLOCK)) }?;
    Ok(())
}
