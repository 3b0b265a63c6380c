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

    fn zeros(n_batches: usize, n_genes: usize) -> BatchSums {
        let len = n_batches * n_genes;
        BatchSums {
            n_genes,
            sum: vec![0.0; len],
            sum_sq: vec![0.0; len],
            n_positive: vec![0; len],
        }
    }

    /// The sums of the genes `genes` only (in that order), as if the matrix held only them.
    pub fn select_genes(&self, genes: &[usize]) -> BatchSums {
        let n_batches = self.sum.len() / self.n_genes.max(1);
        let mut out = BatchSums::zeros(n_batches, genes.len());
        for b in 0..n_batches {
            for (k, &j) in genes.iter().enumerate() {
                let (src, dst) = (self.at(b, j), out.at(b, k));
                out.sum[dst] = self.sum[src];
                out.sum_sq[dst] = self.sum_sq[src];
                out.n_positive[dst] = self.n_positive[src];
            }
        }
        out
    }
}

/// [`batch_sums`] fed one block of rows at a time (a matrix streamed from disk), with the same
/// floating-point result as one call on the whole matrix: the rows are split into the same
/// `CHUNKS` partitions by their ordinal among the rows summed, each partition is summed in row
/// order, and the partitions are added in order at the end.
pub struct SumsAccumulator {
    n_genes: usize,
    rows_per_part: usize,
    parts: Vec<BatchSums>,
}

impl SumsAccumulator {
    /// `n_rows`: how many rows will be added in all (it fixes the partitions).
    pub fn new(n_rows: usize, n_batches: usize, n_genes: usize) -> Self {
        SumsAccumulator {
            n_genes,
            rows_per_part: n_rows.div_ceil(CHUNKS).max(1),
            parts: (0..CHUNKS)
                .map(|_| BatchSums::zeros(n_batches, n_genes))
                .collect(),
        }
    }

    /// Adds `f(row, batch, gene, value) -> (term, squared term)` over the stored entries of the
    /// rows `rows` of `x` (local row indices, ascending); they are the rows number
    /// `first, first + 1, ...` of all rows summed. `batch[row]` is each local row's batch.
    pub fn add<F>(&mut self, x: &Csr, rows: &[usize], first: usize, batch: &[u32], f: F)
    where
        F: Fn(usize, usize, usize, f32) -> (f64, f64) + Sync,
    {
        let g = self.n_genes;
        let rpp = self.rows_per_part;
        self.parts.par_iter_mut().enumerate().for_each(|(p, part)| {
            // Positions in `rows` whose ordinal falls in partition p.
            let lo = (p * rpp).saturating_sub(first).min(rows.len());
            let hi = ((p + 1) * rpp).saturating_sub(first).min(rows.len());
            for &cell in &rows[lo..hi] {
                let b = batch[cell] as usize;
                let (idx, val) = x.row(cell);
                for (&j, &v) in idx.iter().zip(val) {
                    let k = b * g + j as usize;
                    let (t, t2) = f(cell, b, j as usize, v);
                    part.sum[k] += t;
                    part.sum_sq[k] += t2;
                    part.n_positive[k] += u32::from(v > 0.0);
                }
            }
        });
    }

    /// The sums over every row added.
    pub fn finish(self) -> BatchSums {
        let n_batches = self.parts[0].sum.len() / self.n_genes.max(1);
        let mut out = BatchSums::zeros(n_batches, self.n_genes);
        for p in self.parts {
            out.sum.iter_mut().zip(p.sum).for_each(|(a, b)| *a += b);
            out.sum_sq
                .iter_mut()
                .zip(p.sum_sq)
                .for_each(|(a, b)| *a += b);
            out.n_positive
                .iter_mut()
                .zip(p.n_positive)
                .for_each(|(a, b)| *a += b);
        }
        out
    }
}

/// Accumulate `f(batch, gene, value) -> (term, squared term)` over the stored
/// entries of `x`; `batch[cell]` gives each cell's batch.
pub fn batch_sums<F>(x: &Csr, batch: &[u32], n_batches: usize, f: F) -> BatchSums
where
    F: Fn(usize, usize, usize, f32) -> (f64, f64) + Sync,
{
    let mut acc = SumsAccumulator::new(x.n_rows, n_batches, x.n_cols);
    let rows: Vec<usize> = (0..x.n_rows.min(batch.len())).collect();
    acc.add(x, &rows, 0, batch, f);
    acc.finish()
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
