//! Elementwise, row-broadcast and row-gather kernels.

use super::par::{self, chunks_mut, rows_into};
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

/// Runs `$body` with `$g` a copy of `f` whose variant is a constant in each arm: the
/// per-element `match` of [`unary_f`]/[`unary_df`] folds away and the loop vectorises.
macro_rules! per_variant {
    ($f:expr, |$g:ident| $body:expr) => {
        match $f {
            Unary::Relu => {
                let $g = Unary::Relu;
                $body
            }
            Unary::LeakyRelu(a) => {
                let $g = Unary::LeakyRelu(a);
                $body
            }
            Unary::Softplus => {
                let $g = Unary::Softplus;
                $body
            }
            Unary::Sigmoid => {
                let $g = Unary::Sigmoid;
                $body
            }
            Unary::Exp => {
                let $g = Unary::Exp;
                $body
            }
            Unary::Log => {
                let $g = Unary::Log;
                $body
            }
            Unary::Sqrt => {
                let $g = Unary::Sqrt;
                $body
            }
            Unary::Square => {
                let $g = Unary::Square;
                $body
            }
            Unary::Scale(s) => {
                let $g = Unary::Scale(s);
                $body
            }
            Unary::AddScalar(s) => {
                let $g = Unary::AddScalar(s);
                $body
            }
            Unary::Clamp(lo, hi) => {
                let $g = Unary::Clamp(lo, hi);
                $body
            }
            Unary::Lgamma => {
                let $g = Unary::Lgamma;
                $body
            }
        }
    };
}

pub fn unary(f: Unary, x: &[f32], y: &mut [f32]) {
    per_variant!(f, |g| par::zip1(y, x, |y, x| *y = unary_f(g, x)))
}

pub fn unary_bwd(f: Unary, x: &[f32], y: &[f32], dy: &[f32], dx: &mut [f32]) {
    let df = |g| move |dx: &mut f32, d: f32, x: f32, y: f32| *dx += d * unary_df(g, x, y);
    per_variant!(f, |g| par::zip3(dx, dy, x, y, df(g)))
}

pub fn binary(f: Binary, a: &[f32], b: &[f32], out: &mut [f32]) {
    match f {
        Binary::Add => par::zip2(out, a, b, |o, a, b| *o = a + b),
        Binary::Sub => par::zip2(out, a, b, |o, a, b| *o = a - b),
        Binary::Mul => par::zip2(out, a, b, |o, a, b| *o = a * b),
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
            Binary::Add | Binary::Sub => par::zip1(da, dy, |da, d| *da += d),
            Binary::Mul => par::zip2(da, dy, b, |da, d, b| *da += d * b),
        }
    }
    if let Some(db) = db {
        match f {
            Binary::Add => par::zip1(db, dy, |db, d| *db += d),
            Binary::Sub => par::zip1(db, dy, |db, d| *db += -d),
            Binary::Mul => par::zip2(db, dy, a, |db, d, a| *db += d * a),
        }
    }
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
        rows_into(da, ca, |r, d| {
            for (d, &g) in d.iter_mut().zip(&dy[r * w..r * w + ca]) {
                *d += g;
            }
        });
    }
    if let Some(db) = db {
        rows_into(db, cb, |r, d| {
            for (d, &g) in d.iter_mut().zip(&dy[r * w + ca..(r + 1) * w]) {
                *d += g;
            }
        });
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
