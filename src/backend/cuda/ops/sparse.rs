//! The dataset on the GPU (CSR + CSC, uploaded once) and the launchers of `kernels/spmm.cu`.

use anyhow::{Result, bail};
use cudarc::driver::{CudaSlice, LaunchConfig, PushKernelArg};

use super::{NULL_PTR, as_i32, blocks_for, cfg_1d, check_len, flag, opt};
use crate::backend::cuda::CudaRuntime;
use crate::csr::Csr;

/// `SPMM_BLOCK` in spmm.cu.
pub const SPMM_BLOCK: u32 = 128;
/// `SPMM_GRAD_BLOCK` in spmm.cu.
pub const SPMM_GRAD_BLOCK: u32 = 128;
/// Largest minibatch of the weight-gradient kernel (its hits live in 48 KiB of shared memory).
pub const MAX_SPMM_BATCH: usize = 4096;

/// Input transform applied to the counts inside the SpMM (`TRANSFORM_*` in spmm.cu), then
/// multiplied by the launch's `value_scale`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i32)]
pub enum InputTransform {
    /// x
    Identity = 0,
    /// ln(1 + x)
    Log1p = 1,
    /// ln(1 + x * row_scale[cell])
    Log1pScaled = 2,
    /// log2(1 + ln(1 + x * row_scale[cell])), the authors' double log
    Log2Log1pScaled = 3,
}

impl InputTransform {
    fn needs_row_scale(self) -> bool {
        matches!(
            self,
            InputTransform::Log1pScaled | InputTransform::Log2Log1pScaled
        )
    }
}

/// Compressed sparse column copy of a CSR matrix: `colptr` (n_cols + 1), row indices sorted
/// within each column, values; its shape is the CSR's. Built on the host once per dataset.
/// Mirrors nothing: it is layout only, and [`csr_to_csc`] is tested against the CSR directly.
#[derive(Clone, Debug, PartialEq)]
pub struct HostCsc {
    pub colptr: Vec<u64>,
    pub row_idx: Vec<u32>,
    pub data: Vec<f32>,
}

/// Transpose CSR to CSC by counting sort (O(nnz), rows stay sorted within each column because
/// rows are visited in order).
pub fn csr_to_csc(csr: &Csr) -> Result<HostCsc> {
    if csr.n_rows > u32::MAX as usize {
        bail!("{} cells exceed the GPU dataset limit of 2^32", csr.n_rows);
    }
    let mut colptr = vec![0u64; csr.n_cols + 1];
    for &j in &csr.indices {
        let j = j as usize;
        if j >= csr.n_cols {
            bail!("CSR column index {j} out of range (genes = {})", csr.n_cols);
        }
        colptr[j + 1] += 1;
    }
    for j in 0..csr.n_cols {
        colptr[j + 1] += colptr[j];
    }
    let mut next: Vec<u64> = colptr[..csr.n_cols].to_vec();
    let mut row_idx = vec![0u32; csr.nnz()];
    let mut data = vec![0f32; csr.nnz()];
    for r in 0..csr.n_rows {
        let (idx, val) = csr.row(r);
        for (&j, &v) in idx.iter().zip(val) {
            let p = next[j as usize] as usize;
            row_idx[p] = r as u32;
            data[p] = v;
            next[j as usize] += 1;
        }
    }
    Ok(HostCsc {
        colptr,
        row_idx,
        data,
    })
}

/// The count matrix on the GPU, in both orientations, plus an optional per-cell scale
/// (e.g. `1e4 / library size` for [`InputTransform::Log1pScaled`]).
pub struct DeviceDataset {
    pub n_rows: usize,
    pub n_cols: usize,
    indptr: CudaSlice<u64>,
    indices: CudaSlice<u32>,
    data: CudaSlice<f32>,
    colptr: CudaSlice<u64>,
    row_idx: CudaSlice<u32>,
    csc_data: CudaSlice<f32>,
    row_scale: Option<CudaSlice<f32>>,
}

impl DeviceDataset {
    /// Upload `csr` (and its CSC copy) and `row_scale` (one value per cell) once.
    pub fn upload(rt: &CudaRuntime, csr: &Csr, row_scale: Option<&[f32]>) -> Result<Self> {
        if let Some(s) = row_scale
            && s.len() != csr.n_rows
        {
            bail!("row scale has {} values for {} cells", s.len(), csr.n_rows);
        }
        if csr.indptr.len() != csr.n_rows + 1 {
            bail!(
                "CSR indptr has {} entries for {} rows",
                csr.indptr.len(),
                csr.n_rows
            );
        }
        let csc = csr_to_csc(csr)?;
        let s = &rt.stream;
        Ok(DeviceDataset {
            n_rows: csr.n_rows,
            n_cols: csr.n_cols,
            indptr: s.clone_htod(&csr.indptr)?,
            indices: s.clone_htod(&csr.indices)?,
            data: s.clone_htod(&csr.data)?,
            colptr: s.clone_htod(&csc.colptr)?,
            row_idx: s.clone_htod(&csc.row_idx)?,
            csc_data: s.clone_htod(&csc.data)?,
            row_scale: match row_scale {
                Some(v) => Some(s.clone_htod(v)?),
                None => None,
            },
        })
    }

    fn check_transform(&self, t: InputTransform) -> Result<()> {
        if t.needs_row_scale() && self.row_scale.is_none() {
            bail!("input transform {t:?} needs a per-cell scale, but the dataset has none");
        }
        Ok(())
    }
}

/// One SpMM launch: which minibatch rows, which transform, which gene mask.
pub struct SpmmBatch<'a> {
    /// Dataset rows of the minibatch, `[n_batch]`, each `< n_rows`.
    pub rows: &'a CudaSlice<u32>,
    /// Per-gene multiplier `[n_cols]` (0/1 mask of the consistency term), or None.
    pub col_keep: Option<&'a CudaSlice<f32>>,
    pub transform: InputTransform,
    /// Multiplies the transformed value (e.g. 1 / global max in the authors' preprocessing).
    pub value_scale: f32,
}

/// `y (+)= T(X[rows]) * keep @ w` with `w` `[n_cols, hidden]` and `y` `[n_batch, hidden]`.
/// Mirrors `ops::sparse::csr_matmul_transformed`.
pub fn csr_spmm(
    rt: &CudaRuntime,
    ds: &DeviceDataset,
    batch: &SpmmBatch,
    w: &CudaSlice<f32>,
    hidden: usize,
    y: &mut CudaSlice<f32>,
    accumulate: bool,
) -> Result<()> {
    ds.check_transform(batch.transform)?;
    let n_batch = batch.rows.len();
    check_len(w, ds.n_cols * hidden, "spmm weight")?;
    check_len(y, n_batch * hidden, "spmm output")?;
    if let Some(k) = batch.col_keep {
        check_len(k, ds.n_cols, "spmm gene mask")?;
    }
    if n_batch == 0 || hidden == 0 {
        return Ok(());
    }
    let f = rt.function("spmm", "csr_spmm_transform")?;
    let (nb, h, t, acc) = (
        as_i32(n_batch, "minibatch")?,
        as_i32(hidden, "hidden")?,
        batch.transform as i32,
        flag(accumulate),
    );
    let mut l = rt.stream.launch_builder(&f);
    l.arg(&ds.indptr).arg(&ds.indices).arg(&ds.data);
    match &ds.row_scale {
        Some(s) => l.arg(s),
        None => l.arg(&NULL_PTR),
    };
    l.arg(batch.rows).arg(&nb);
    match batch.col_keep {
        Some(k) => l.arg(k),
        None => l.arg(&NULL_PTR),
    };
    l.arg(&t)
        .arg(&batch.value_scale)
        .arg(w)
        .arg(&h)
        .arg(y)
        .arg(&acc);
    let cfg = LaunchConfig {
        grid_dim: (
            n_batch.min(65_535) as u32,
            hidden.div_ceil(SPMM_BLOCK as usize) as u32,
            1,
        ),
        block_dim: (SPMM_BLOCK, 1, 1),
        shared_mem_bytes: 0,
    };
    // SAFETY: lengths checked; the minibatch row indices are trusted to be < n_rows (the
    // caller builds them from the dataset's own row count).
    unsafe { l.launch(cfg) }?;
    Ok(())
}

/// `dw (+)= (T(X[rows]) * keep)^T @ dy` with `dy` `[n_batch, hidden]`, `dw` `[n_cols, hidden]`.
/// Minibatches above [`MAX_SPMM_BATCH`] cells run as several accumulating launches (the kernel
/// keeps one chunk's hits in shared memory). Mirrors
/// `ops::sparse::csr_matmul_transformed_weight_grad`.
pub fn csc_spmm_weight_grad(
    rt: &CudaRuntime,
    ds: &DeviceDataset,
    batch: &SpmmBatch,
    dy: &CudaSlice<f32>,
    hidden: usize,
    dw: &mut CudaSlice<f32>,
    accumulate: bool,
) -> Result<()> {
    ds.check_transform(batch.transform)?;
    let n_batch = batch.rows.len();
    check_len(dy, n_batch * hidden, "spmm grad dy")?;
    check_len(dw, ds.n_cols * hidden, "spmm grad dw")?;
    if let Some(k) = batch.col_keep {
        check_len(k, ds.n_cols, "spmm gene mask")?;
    }
    if ds.n_cols == 0 || hidden == 0 {
        return Ok(());
    }
    if n_batch == 0 {
        if !accumulate {
            rt.stream.memset_zeros(dw)?;
        }
        return Ok(());
    }
    let f = rt.function("spmm", "csc_spmm_transform_weight_grad")?;
    let (h, g, t) = (
        as_i32(hidden, "hidden")?,
        as_i32(ds.n_cols, "genes")?,
        batch.transform as i32,
    );
    for start in (0..n_batch).step_by(MAX_SPMM_BATCH) {
        let end = (start + MAX_SPMM_BATCH).min(n_batch);
        let rows = batch.rows.slice(start..end);
        let dy_chunk = dy.slice(start * hidden..end * hidden);
        let (nb, acc) = (
            as_i32(end - start, "minibatch")?,
            flag(accumulate || start > 0),
        );
        let mut l = rt.stream.launch_builder(&f);
        l.arg(&ds.colptr).arg(&ds.row_idx).arg(&ds.csc_data);
        match &ds.row_scale {
            Some(s) => l.arg(s),
            None => l.arg(&NULL_PTR),
        };
        l.arg(&rows).arg(&nb);
        match batch.col_keep {
            Some(k) => l.arg(k),
            None => l.arg(&NULL_PTR),
        };
        l.arg(&t)
            .arg(&batch.value_scale)
            .arg(&dy_chunk)
            .arg(&h)
            .arg(&g)
            .arg(&mut *dw)
            .arg(&acc);
        let mut cfg = cfg_1d(ds.n_cols, SPMM_GRAD_BLOCK);
        cfg.shared_mem_bytes = (2 * (end - start) * 4) as u32;
        // SAFETY: lengths checked; shared memory sized to the chunk (<= 32 KiB).
        unsafe { l.launch(cfg) }?;
    }
    Ok(())
}

/// `out[b, :] = T(X[rows[b], :])` densely (`[n_batch, n_cols]`, overwritten).
/// Mirrors `cpu::csr::csr_gather_dense`.
pub fn csr_gather_dense(
    rt: &CudaRuntime,
    ds: &DeviceDataset,
    rows: &CudaSlice<u32>,
    transform: InputTransform,
    out: &mut CudaSlice<f32>,
) -> Result<()> {
    ds.check_transform(transform)?;
    let n_batch = rows.len();
    check_len(out, n_batch * ds.n_cols, "csr_gather_dense output")?;
    if n_batch == 0 || ds.n_cols == 0 {
        return Ok(());
    }
    let (nb, t, g) = (
        as_i32(n_batch, "minibatch")?,
        transform as i32,
        as_i32(ds.n_cols, "genes")?,
    );
    // SAFETY: lengths checked; row indices are trusted to be < n_rows (the caller's own rows).
    launch!(
        rt,
        "spmm",
        "csr_gather_dense",
        cfg_1d(n_batch, SPMM_BLOCK),
        [
            &ds.indptr,
            &ds.indices,
            &ds.data,
            opt(ds.row_scale.as_ref()),
            rows,
            &nb,
            &t,
            &g,
            out
        ]
    )
}

/// `dw[s, :] (+)= sum_{b: index[b] = s} dy[b, :]`. Mirrors `ops::scatter_rows_add`.
pub fn scatter_rows_grad(
    rt: &CudaRuntime,
    dy: &CudaSlice<f32>,
    index: &CudaSlice<u32>,
    cols: usize,
    n_classes: usize,
    dw: &mut CudaSlice<f32>,
    accumulate: bool,
) -> Result<()> {
    let n = index.len();
    check_len(dy, n * cols, "one-hot dy")?;
    check_len(dw, n_classes * cols, "one-hot dw")?;
    let (ni, c, k, acc) = (
        as_i32(n, "rows")?,
        as_i32(cols, "cols")?,
        as_i32(n_classes, "classes")?,
        flag(accumulate),
    );
    // SAFETY: lengths checked above.
    launch!(
        rt,
        "spmm",
        "scatter_rows_grad",
        cfg_1d(blocks_for(n_classes * cols, SPMM_BLOCK), SPMM_BLOCK),
        [dy, index, &ni, &c, &k, dw, &acc]
    )
}
