//! Reductions in a fixed order with f64 accumulation where it is cheap.

use super::par::{map_into, rows_into};

pub fn sum_all(x: &[f32]) -> f32 {
    // Fixed 8-lane f64 accumulation: vectorises and is order-deterministic.
    let mut lanes = [0f64; 8];
    let mut it = x.chunks_exact(8);
    for c in &mut it {
        for (l, &v) in lanes.iter_mut().zip(c) {
            *l += v as f64;
        }
    }
    let mut s: f64 = lanes.iter().sum();
    for &v in it.remainder() {
        s += v as f64;
    }
    s as f32
}

pub fn sq_norm(x: &[f32]) -> f64 {
    x.iter().map(|&v| (v as f64) * (v as f64)).sum()
}

pub fn sum_rows(x: &[f32], cols: usize, out: &mut [f32]) {
    map_into(out, |r| sum_all(&x[r * cols..(r + 1) * cols]));
}

pub fn sum_rows_bwd(dy: &[f32], cols: usize, dx: &mut [f32]) {
    rows_into(dx, cols, |r, d| {
        let g = dy[r];
        d.iter_mut().for_each(|d| *d += g);
    });
}

pub fn col_sum_acc(dy: &[f32], cols: usize, db: &mut [f32]) {
    // Row-order accumulation: deterministic and cache friendly.
    for row in dy.chunks_exact(cols.max(1)) {
        for (d, &g) in db.iter_mut().zip(row) {
            *d += g;
        }
    }
}

/// dst[j] += sum_i g[i] * src[i,j].
pub fn row_weighted_col_sum(g: &[f32], src: &[f32], cols: usize, dst: &mut [f32]) {
    for (r, row) in src.chunks_exact(cols.max(1)).enumerate() {
        let w = g[r];
        for (d, &s) in dst.iter_mut().zip(row) {
            *d += w * s;
        }
    }
}

/// dst[i,j] += g[i] * src[i,j].
pub fn row_scaled_acc(g: &[f32], src: &[f32], cols: usize, dst: &mut [f32]) {
    rows_into(dst, cols, |r, d| {
        let w = g[r];
        for (d, &s) in d.iter_mut().zip(&src[r * cols..(r + 1) * cols]) {
            *d += w * s;
        }
    });
}
