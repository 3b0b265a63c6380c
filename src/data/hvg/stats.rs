//! Per-batch, per-gene sums over a CSR matrix in one pass, O(genes x batches) memory.

use rayon::prelude::*;

use crate::data::csr::Csr;

/// Rows are summed in this many fixed chunks (in parallel), then the chunk results
/// are added in chunk order. A fixed count, not the thread count, keeps the
/// floating-point result identical on every machine.
const CHUNKS: usize = 4;

/// Sums indexed `[batch * n_genes + gene]`.
pub struct BatchSums {
    pub n_genes: usize,
    pub sum: Vec<f64>,
    pub sum_sq: Vec<f64>,
    /// Cells with a value > 0 (scanpy's `filter_genes(min_cells=1)` test).
    pub n_positive: Vec<u32>,
}

impl BatchSums {
    pub fn at(&self, batch: usize, gene: usize) -> usize {
        batch * self.n_genes + gene
    }
}

/// Accumulate `f(batch, gene, value) -> (term, squared term)` over the stored
/// entries of `x`; `batch[cell]` gives each cell's batch.
pub fn batch_sums<F>(x: &Csr, batch: &[u32], n_batches: usize, f: F) -> BatchSums
where
    F: Fn(usize, usize, usize, f32) -> (f64, f64) + Sync,
{
    let g = x.n_cols;
    let len = n_batches * g;
    let rows_per_chunk = x.n_rows.div_ceil(CHUNKS).max(1);
    let parts: Vec<(Vec<f64>, Vec<f64>, Vec<u32>)> = (0..CHUNKS)
        .into_par_iter()
        .map(|c| {
            let (mut s, mut s2, mut pos) = (vec![0.0; len], vec![0.0; len], vec![0u32; len]);
            let start = (c * rows_per_chunk).min(x.n_rows);
            let end = ((c + 1) * rows_per_chunk).min(x.n_rows);
            for (cell, &b) in batch.iter().enumerate().take(end).skip(start) {
                let b = b as usize;
                let (idx, val) = x.row(cell);
                for (&j, &v) in idx.iter().zip(val) {
                    let k = b * g + j as usize;
                    let (t, t2) = f(cell, b, j as usize, v);
                    s[k] += t;
                    s2[k] += t2;
                    pos[k] += u32::from(v > 0.0);
                }
            }
            (s, s2, pos)
        })
        .collect();
    let mut out = BatchSums {
        n_genes: g,
        sum: vec![0.0; len],
        sum_sq: vec![0.0; len],
        n_positive: vec![0; len],
    };
    for (s, s2, pos) in parts {
        out.sum.iter_mut().zip(s).for_each(|(a, b)| *a += b);
        out.sum_sq.iter_mut().zip(s2).for_each(|(a, b)| *a += b);
        out.n_positive
            .iter_mut()
            .zip(pos)
            .for_each(|(a, b)| *a += b);
    }
    out
}

/// Mean and variance exactly as scanpy's `_get_mean_var` on a sparse matrix:
/// `E[x^2] - E[x]^2`, then times `n / (n - 1)` unless `n == 1`.
pub fn mean_var(sum: f64, sum_sq: f64, n: usize) -> (f64, f64) {
    let nf = n as f64;
    let mean = sum / nf;
    let mut var = sum_sq / nf - mean * mean;
    if n != 1 {
        var *= nf / (nf - 1.0);
    }
    (mean, var)
}
