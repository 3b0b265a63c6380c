//! CSR x dense kernels for the encoder's first layer, transform applied on the fly.

use super::par;
use crate::backend::InputTransform;
use crate::csr::Csr;
use rayon::prelude::*;
use std::sync::Mutex;

/// A CSR matrix held by the CPU backend: the host CSR itself (moved in, or copied when the
/// caller keeps its own) plus an optional row scale.
pub struct CpuCsr {
    pub csr: Csr,
    pub row_scale: Option<Vec<f32>>,
}

/// Field access (`x.indptr`, `x.n_rows`, ...) reads the wrapped matrix.
impl std::ops::Deref for CpuCsr {
    type Target = Csr;
    fn deref(&self) -> &Csr {
        &self.csr
    }
}

impl CpuCsr {
    /// Validate and copy a host CSR.
    pub fn new(csr: &Csr, row_scale: Option<&[f32]>) -> anyhow::Result<Self> {
        Self::from_owned(csr.clone(), row_scale)
    }

    /// Validate and take a host CSR without copying it (atlas-scale memory: the counts are
    /// held once, not twice).
    pub fn from_owned(csr: Csr, row_scale: Option<&[f32]>) -> anyhow::Result<Self> {
        crate::backend::validate_csr(&csr, row_scale)?;
        Ok(CpuCsr {
            csr,
            row_scale: row_scale.map(|s| s.to_vec()),
        })
    }

    #[inline]
    fn row(&self, r: usize) -> (&[u32], &[f32], f32) {
        let (a, b) = (self.indptr[r] as usize, self.indptr[r + 1] as usize);
        let s = self.row_scale.as_ref().map_or(1.0, |s| s[r]);
        (&self.indices[a..b], &self.data[a..b], s)
    }
}

/// Reusable scratch for the transposed (CSC) view of one minibatch.
#[derive(Default)]
pub struct CscScratch {
    col_ptr: Vec<u32>,
    /// (batch row, transformed value) per stored entry, grouped by column, in row order.
    entries: Vec<(u32, f32)>,
}

/// Output columns accumulated in registers at once (8 AVX2 vectors).
const TILE: usize = 64;
/// Stored values transformed at once (a stack buffer: no allocation).
const VBLOCK: usize = 256;

/// acc[..] += sum_e tv[e] * m[rows[e] * stride + c0 ..][..TILE]: the register-blocked inner
/// loop shared by the forward and the weight gradient.
#[inline(always)]
fn tile_accumulate(
    acc: &mut [f32; TILE],
    rows: &[u32],
    tv: &[f32],
    m: &[f32],
    stride: usize,
    c0: usize,
) {
    for (&r, &t) in rows.iter().zip(tv) {
        let src: &[f32; TILE] = m[r as usize * stride + c0..][..TILE].try_into().unwrap();
        for k in 0..TILE {
            acc[k] += t * src[k];
        }
    }
}

/// out_row (len n) = sum_e tv[e] * m[rows[e], :], the row overwritten when `first`.
#[inline]
fn combine_rows(out_row: &mut [f32], rows: &[u32], tv: &[f32], m: &[f32], n: usize, first: bool) {
    let mut c0 = 0;
    while c0 + TILE <= n {
        let mut acc = [0f32; TILE];
        if !first {
            acc.copy_from_slice(&out_row[c0..c0 + TILE]);
        }
        tile_accumulate(&mut acc, rows, tv, m, n, c0);
        out_row[c0..c0 + TILE].copy_from_slice(&acc);
        c0 += TILE;
    }
    if c0 < n {
        let rest = &mut out_row[c0..];
        if first {
            rest.fill(0.0);
        }
        for (&r, &t) in rows.iter().zip(tv) {
            let src = &m[r as usize * n + c0..(r as usize + 1) * n];
            for (a, &b) in rest.iter_mut().zip(src) {
                *a += t * b;
            }
        }
    }
}

/// out[r,:] = sum_j t(X[rows[r], j]) w[j,:]. Row-parallel; each output row is one thread's.
/// Values are transformed once per block of stored entries, then the output row is
/// accumulated TILE columns at a time in registers.
pub fn csr_matmul(
    x: &CpuCsr,
    rows: &[u32],
    t: InputTransform,
    w: &[f32],
    n_out: usize,
    out: &mut [f32],
) {
    assert_eq!(
        w.len(),
        x.n_cols * n_out,
        "csr_matmul: weight is not {}x{n_out}",
        x.n_cols
    );
    assert_eq!(out.len(), rows.len() * n_out);
    let chunk = par::row_chunk(n_out);
    par::chunks_mut(out, chunk, |off, o| {
        let r0 = off / n_out.max(1);
        let mut tv = [0f32; VBLOCK];
        for (k, orow) in o.chunks_mut(n_out.max(1)).enumerate() {
            let (idx, val, s) = x.row(rows[r0 + k] as usize);
            if idx.is_empty() {
                orow.fill(0.0);
            }
            for (blk, (ib, vb)) in idx.chunks(VBLOCK).zip(val.chunks(VBLOCK)).enumerate() {
                for (d, &v) in tv.iter_mut().zip(vb) {
                    *d = t.apply(v, s);
                }
                combine_rows(orow, ib, &tv[..ib.len()], w, n_out, blk == 0);
            }
        }
    });
}

/// dw += t(X[rows])^T dy. Builds a CSC view of the minibatch (counting sort, in row order),
/// then each gene's weight row is owned by one thread: no partial buffers, no reduction,
/// and a fixed summation order (bit-identical across runs and thread counts).
pub fn csr_matmul_wgrad(
    x: &CpuCsr,
    rows: &[u32],
    t: InputTransform,
    dy: &[f32],
    n_out: usize,
    dw: &mut [f32],
    scratch: &Mutex<CscScratch>,
) {
    assert_eq!(dw.len(), x.n_cols * n_out);
    assert_eq!(dy.len(), rows.len() * n_out);
    if n_out == 0 {
        return;
    }
    let mut guard = scratch.lock().unwrap_or_else(|e| e.into_inner());
    let CscScratch { col_ptr, entries } = &mut *guard;
    col_ptr.clear();
    col_ptr.resize(x.n_cols + 1, 0);
    let mut nnz = 0usize;
    for &r in rows {
        let (idx, _, _) = x.row(r as usize);
        nnz += idx.len();
        for &j in idx {
            col_ptr[j as usize + 1] += 1;
        }
    }
    for j in 0..x.n_cols {
        col_ptr[j + 1] += col_ptr[j];
    }
    entries.clear();
    entries.resize(nnz, (0, 0.0));
    // Fill using col_ptr[j] as a cursor, then shift back.
    for (b, &r) in rows.iter().enumerate() {
        let (idx, val, s) = x.row(r as usize);
        for (&j, &v) in idx.iter().zip(val) {
            let p = &mut col_ptr[j as usize];
            entries[*p as usize] = (b as u32, t.apply(v, s));
            *p += 1;
        }
    }
    for j in (1..=x.n_cols).rev() {
        col_ptr[j] = col_ptr[j - 1];
    }
    col_ptr[0] = 0;
    let (col_ptr, entries) = (&*col_ptr, &*entries);
    let genes_per_task = (par::CHUNK / n_out).max(1);
    // Entries as two parallel arrays for the shared tile kernel.
    let body = |g0: usize, block: &mut [f32]| {
        let mut bs = [0u32; VBLOCK];
        let mut tv = [0f32; VBLOCK];
        for (k, wrow) in block.chunks_mut(n_out).enumerate() {
            let j = g0 + k;
            let es = &entries[col_ptr[j] as usize..col_ptr[j + 1] as usize];
            for eb in es.chunks(VBLOCK) {
                for (e, (b, t)) in eb.iter().enumerate() {
                    bs[e] = *b;
                    tv[e] = *t;
                }
                combine_rows(wrow, &bs[..eb.len()], &tv[..eb.len()], dy, n_out, false);
            }
        }
    };
    if nnz * n_out < par::PAR_MIN {
        body(0, dw);
    } else {
        dw.par_chunks_mut(genes_per_task * n_out)
            .enumerate()
            .for_each(|(c, block)| body(c * genes_per_task, block));
    }
}

/// out[r,:] = t(X[rows[r],:]) densely.
pub fn csr_gather_dense(x: &CpuCsr, rows: &[u32], t: InputTransform, out: &mut [f32]) {
    let g = x.n_cols;
    assert_eq!(out.len(), rows.len() * g);
    par::chunks_mut(out, par::row_chunk(g), |off, o| {
        let r0 = off / g.max(1);
        for (k, orow) in o.chunks_mut(g.max(1)).enumerate() {
            orow.fill(0.0);
            let (idx, val, s) = x.row(rows[r0 + k] as usize);
            for (&j, &v) in idx.iter().zip(val) {
                orow[j as usize] = t.apply(v, s);
            }
        }
    });
}
