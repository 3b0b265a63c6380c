//! Elementwise, row-broadcast and row-gather kernels.

use super::par::{self, acc_into, chunks_mut, map_into};
use super::special::{digamma, lgamma, sigmoid, softplus};
use crate::backend::{Binary, Unary};

#[inline(always)]
fn unary_f(f: Unary, x: f32) -> f32 {
    match f {
        Unary::Relu => x.max(0.0),
        Unary::LeakyRelu(a) => {
            if x > 0.0 {
                x
            } else {
                a * x
            }
        }
        Unary::Softplus => softplus(x),
        Unary::Sigmoid => sigmoid(x),
        Unary::Exp => x.exp(),
        Unary::Log => x.ln(),
        Unary::Sqrt => x.sqrt(),
        Unary::Square => x * x,
        Unary::Scale(s) => s * x,
        Unary::AddScalar(s) => x + s,
        Unary::Clamp(lo, hi) => x.clamp(lo, hi),
        Unary::Lgamma => lgamma(x as f64) as f32,
    }
}

/// dy/dx given x and y = f(x).
#[inline(always)]
fn unary_df(f: Unary, x: f32, y: f32) -> f32 {
    match f {
        Unary::Relu => {
            if x > 0.0 {
                1.0
            } else {
                0.0
            }
        }
        Unary::LeakyRelu(a) => {
            if x > 0.0 {
                1.0
            } else {
                a
            }
        }
        Unary::Softplus => sigmoid(x),
        Unary::Sigmoid => y * (1.0 - y),
        Unary::Exp => y,
        Unary::Log => 1.0 / x,
        Unary::Sqrt => 0.5 / y,
        Unary::Square => 2.0 * x,
        Unary::Scale(s) => s,
        Unary::AddScalar(_) => 1.0,
        Unary::Clamp(lo, hi) => {
            if x >= lo && x <= hi {
                1.0
            } else {
                0.0
            }
        }
        Unary::Lgamma => digamma(x as f64) as f32,
    }
}

pub fn unary(f: Unary, x: &[f32], y: &mut [f32]) {
    assert_eq!(x.len(), y.len());
    map_into(y, |i| unary_f(f, x[i]));
}

pub fn unary_bwd(f: Unary, x: &[f32], y: &[f32], dy: &[f32], dx: &mut [f32]) {
    assert_eq!(dx.len(), dy.len());
    acc_into(dx, |i| dy[i] * unary_df(f, x[i], y[i]));
}

pub fn binary(f: Binary, a: &[f32], b: &[f32], out: &mut [f32]) {
    assert!(a.len() == out.len() && b.len() == out.len());
    match f {
        Binary::Add => map_into(out, |i| a[i] + b[i]),
        Binary::Sub => map_into(out, |i| a[i] - b[i]),
        Binary::Mul => map_into(out, |i| a[i] * b[i]),
    }
}

pub fn binary_bwd(
    f: Binary,
    a: &[f32],
    b: &[f32],
    dy: &[f32],
    da: Option<&mut [f32]>,
    db: Option<&mut [f32]>,
) {
    if let Some(da) = da {
        match f {
            Binary::Add | Binary::Sub => acc_into(da, |i| dy[i]),
            Binary::Mul => acc_into(da, |i| dy[i] * b[i]),
        }
    }
    if let Some(db) = db {
        match f {
            Binary::Add => acc_into(db, |i| dy[i]),
            Binary::Sub => acc_into(db, |i| -dy[i]),
            Binary::Mul => acc_into(db, |i| dy[i] * a[i]),
        }
    }
}

/// Row-wise helper: `f(row index, input row, output row)` over whole rows, in parallel
/// chunks of rows (no per-element index division, so the inner loops vectorise).
fn rows_into(out: &mut [f32], cols: usize, f: impl Fn(usize, &mut [f32]) + Sync + Send) {
    let cols = cols.max(1);
    chunks_mut(out, par::row_chunk(cols), |off, o| {
        for (k, orow) in o.chunks_mut(cols).enumerate() {
            f(off / cols + k, orow);
        }
    });
}

pub fn mul_rows(x: &[f32], c: &[f32], cols: usize, out: &mut [f32]) {
    assert_eq!(x.len(), c.len() * cols);
    rows_into(out, cols, |r, o| {
        let (xr, cr) = (&x[r * cols..(r + 1) * cols], c[r]);
        for (o, &v) in o.iter_mut().zip(xr) {
            *o = v * cr;
        }
    });
}

pub fn mul_rows_bwd(
    x: &[f32],
    c: &[f32],
    dy: &[f32],
    cols: usize,
    dx: Option<&mut [f32]>,
    dc: Option<&mut [f32]>,
) {
    if let Some(dx) = dx {
        rows_into(dx, cols, |r, d| {
            let (gr, cr) = (&dy[r * cols..(r + 1) * cols], c[r]);
            for (d, &g) in d.iter_mut().zip(gr) {
                *d += g * cr;
            }
        });
    }
    if let Some(dc) = dc {
        for (r, d) in dc.iter_mut().enumerate() {
            let s = r * cols;
            let mut acc = 0.0f32;
            for j in 0..cols {
                acc += dy[s + j] * x[s + j];
            }
            *d += acc;
        }
    }
}

pub fn concat_cols(a: &[f32], ca: usize, b: &[f32], cb: usize, out: &mut [f32]) {
    let w = ca + cb;
    chunks_mut(out, par::row_chunk(w), |off, o| {
        let r0 = off / w.max(1);
        for (k, row) in o.chunks_mut(w.max(1)).enumerate() {
            let r = r0 + k;
            row[..ca].copy_from_slice(&a[r * ca..(r + 1) * ca]);
            row[ca..].copy_from_slice(&b[r * cb..(r + 1) * cb]);
        }
    });
}

pub fn concat_cols_bwd(
    dy: &[f32],
    ca: usize,
    cb: usize,
    da: Option<&mut [f32]>,
    db: Option<&mut [f32]>,
) {
    let w = ca + cb;
    if let Some(da) = da {
        acc_into(da, |i| dy[(i / ca) * w + i % ca]);
    }
    if let Some(db) = db {
        acc_into(db, |i| dy[(i / cb) * w + ca + i % cb]);
    }
}

pub fn add_bias(x: &[f32], b: &[f32], cols: usize, out: &mut [f32]) {
    assert_eq!(b.len(), cols);
    rows_into(out, cols, |r, o| {
        for ((o, &v), &bv) in o.iter_mut().zip(&x[r * cols..(r + 1) * cols]).zip(b) {
            *o = v + bv;
        }
    });
}

pub fn gather_add_rows(x: &[f32], table: &[f32], idx: &[u32], cols: usize, out: &mut [f32]) {
    let n_table = table.len() / cols.max(1);
    for &t in idx {
        assert!(
            (t as usize) < n_table,
            "row gather: index {t} >= table rows {n_table}"
        );
    }
    chunks_mut(out, par::row_chunk(cols), |off, o| {
        let r0 = off / cols.max(1);
        for (k, row) in o.chunks_mut(cols.max(1)).enumerate() {
            let r = r0 + k;
            let t = idx[r] as usize;
            let (xr, tr) = (
                &x[r * cols..(r + 1) * cols],
                &table[t * cols..(t + 1) * cols],
            );
            for ((o, &a), &b) in row.iter_mut().zip(xr).zip(tr) {
                *o = a + b;
            }
        }
    });
}

pub fn scatter_add_rows(dy: &[f32], idx: &[u32], cols: usize, dtable: &mut [f32]) {
    for (r, &t) in idx.iter().enumerate() {
        let t = t as usize;
        let (d, g) = (
            &mut dtable[t * cols..(t + 1) * cols],
            &dy[r * cols..(r + 1) * cols],
        );
        for (a, &b) in d.iter_mut().zip(g) {
            *a += b;
        }
    }
}
