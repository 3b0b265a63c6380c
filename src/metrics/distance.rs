//! All-pairs squared Euclidean distances in row blocks through a matrix product
//! (|x|^2 + |y|^2 - 2 x.y), for the O(n^2) metrics (silhouettes, exact kNN in many dimensions):
//! one GEMM per block instead of a scalar loop per pair. The data are centred first so the
//! expansion loses little precision.

use rayon::prelude::*;

use crate::backend::GemmSpec;
use crate::backend::cpu::gemm::gemm;

/// Rows per block: a block of distances is `BLOCK x n` f32.
const BLOCK: usize = 256;

/// `x` centred per column (f64 means), as a new row-major buffer.
pub fn centred(x: &[f32], n: usize, d: usize) -> Vec<f32> {
    let mut mean = vec![0f64; d];
    for row in x.chunks(d) {
        mean.iter_mut().zip(row).for_each(|(m, &v)| *m += v as f64);
    }
    mean.iter_mut().for_each(|m| *m /= n.max(1) as f64);
    x.chunks(d)
        .flat_map(|row| row.iter().zip(&mean).map(|(&v, &m)| (v as f64 - m) as f32))
        .collect()
}

/// Calls `f(first_row, rows, d2)` for consecutive blocks of rows (in parallel), where `d2` is
/// the `rows x n` block of squared distances from those rows to every row of `x`; returns the
/// results in row order.
pub fn map_row_blocks<T: Send>(
    x: &[f32],
    n: usize,
    d: usize,
    f: impl Fn(usize, usize, &[f32]) -> Vec<T> + Sync,
) -> Vec<T> {
    let norms: Vec<f32> = x.chunks(d).map(|r| r.iter().map(|v| v * v).sum()).collect();
    let parts: Vec<Vec<T>> = par_row_blocks(n, BLOCK, |r0, rows| {
        let mut g = vec![0f32; rows * n];
        gemm(
            GemmSpec {
                m: rows,
                n,
                k: d,
                trans_a: false,
                trans_b: true,
                alpha: -2.0,
                beta: 0.0,
            },
            &x[r0 * d..(r0 + rows) * d],
            x,
            &mut g,
        );
        for (i, row) in g.chunks_mut(n).enumerate() {
            let ni = norms[r0 + i];
            for (v, &nj) in row.iter_mut().zip(&norms) {
                *v = (*v + ni + nj).max(0.0);
            }
            row[r0 + i] = 0.0;
        }
        f(r0, rows, &g)
    });
    parts.into_iter().flatten().collect()
}

/// `f(first_row, rows)` for consecutive blocks of `block` rows out of `n`, in parallel; the
/// results in row order.
pub fn par_row_blocks<R: Send>(
    n: usize,
    block: usize,
    f: impl Fn(usize, usize) -> R + Sync,
) -> Vec<R> {
    let starts: Vec<usize> = (0..n).step_by(block).collect();
    starts
        .par_iter()
        .map(|&r0| f(r0, block.min(n - r0)))
        .collect()
}
