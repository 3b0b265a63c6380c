//! A structureless random count matrix (no cell types, no batches): the fixed-shape input of
//! the op tests, the tape tests and the CPU benchmarks.

use rand::Rng;

use crate::csr::Csr;

/// `rows x cols` counts: each entry is stored with probability `density`, its value drawn
/// uniformly from `1..max_count`, in row-major order from `rng`.
pub fn uniform_counts(
    rng: &mut impl Rng,
    rows: usize,
    cols: usize,
    density: f64,
    max_count: i32,
) -> Csr {
    let (mut indptr, mut indices, mut data) = (vec![0u64], Vec::new(), Vec::new());
    for _ in 0..rows {
        for j in 0..cols {
            if rng.gen_bool(density) {
                indices.push(j as u32);
                data.push(rng.gen_range(1..max_count) as f32);
            }
        }
        indptr.push(indices.len() as u64);
    }
    Csr {
        n_rows: rows,
        n_cols: cols,
        indptr,
        indices,
        data,
    }
}
