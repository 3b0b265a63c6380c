//! Symmetric eigenproblems for the metrics: cyclic Jacobi for small dense matrices and
//! Lanczos with full reorthogonalisation for the leading eigenpairs of large ones (given as
//! a matrix-vector product). f64 throughout: these are small next to the kNN work.
// Index loops mirror the EISPACK/JAMA algorithms line by line, which keeps them checkable.
#![allow(clippy::needless_range_loop)]

use rayon::prelude::*;

use super::distance::par_row_blocks;

/// Eigenvalues (descending) and eigenvectors (column `j` of the row-major `n x n` result is
/// the eigenvector of value `j`) of the symmetric `a` (row-major `n x n`), by cyclic Jacobi.
pub fn jacobi_eigen(a: &[f64], n: usize) -> (Vec<f64>, Vec<f64>) {
    let mut m = a.to_vec();
    let mut v = vec![0f64; n * n];
    for i in 0..n {
        v[i * n + i] = 1.0;
    }
    for _sweep in 0..100 {
        let off: f64 = (0..n)
            .flat_map(|i| (0..n).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| m[i * n + j] * m[i * n + j])
            .sum();
        let scale: f64 = (0..n).map(|i| m[i * n + i] * m[i * n + i]).sum::<f64>() + off;
        if off <= 1e-30 * scale.max(1e-300) {
            break;
        }
        for p in 0..n {
            for q in p + 1..n {
                let apq = m[p * n + q];
                if apq.abs() < 1e-300 {
                    continue;
                }
                let theta = (m[q * n + q] - m[p * n + p]) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..n {
                    let (mkp, mkq) = (m[k * n + p], m[k * n + q]);
                    m[k * n + p] = c * mkp - s * mkq;
                    m[k * n + q] = s * mkp + c * mkq;
                }
                for k in 0..n {
                    let (mpk, mqk) = (m[p * n + k], m[q * n + k]);
                    m[p * n + k] = c * mpk - s * mqk;
                    m[q * n + k] = s * mpk + c * mqk;
                }
                for k in 0..n {
                    let (vkp, vkq) = (v[k * n + p], v[k * n + q]);
                    v[k * n + p] = c * vkp - s * vkq;
                    v[k * n + q] = s * vkp + c * vkq;
                }
            }
        }
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| m[b * n + b].total_cmp(&m[a * n + a]).then(a.cmp(&b)));
    let vals = order.iter().map(|&j| m[j * n + j]).collect();
    let mut vecs = vec![0f64; n * n];
    for (new, &old) in order.iter().enumerate() {
        for k in 0..n {
            vecs[k * n + new] = v[k * n + old];
        }
    }
    (vals, vecs)
}

/// The `k` eigenpairs of largest magnitude of a symmetric `n x n` operator, by Lanczos with
/// `steps` iterations and full reorthogonalisation, `passes` Gram-Schmidt passes per step (2
/// for spectra of wide dynamic range such as a covariance, where one pass lets converged
/// vectors creep back in; 1 suffices for a transition matrix); deterministic start vector. Returns
/// values sorted descending and the eigenvectors as `k` vectors of length `n`.
pub fn lanczos_top(
    n: usize,
    k: usize,
    steps: usize,
    passes: usize,
    mut matvec: impl FnMut(&[f64], &mut [f64]),
) -> (Vec<f64>, Vec<Vec<f64>>) {
    let m = steps.min(n).max(k.min(n));
    let mut basis: Vec<Vec<f64>> = Vec::with_capacity(m);
    let mut alpha = Vec::with_capacity(m);
    let mut beta: Vec<f64> = Vec::with_capacity(m);
    // A fixed start with every coordinate non-zero and no structure (a Weyl sequence).
    let mut q: Vec<f64> = (0..n)
        .map(|i| 0.5 + ((i as f64 + 1.0) * 0.618_033_988_749_894_9).fract())
        .collect();
    normalise(&mut q);
    let mut w = vec![0f64; n];
    for j in 0..m {
        matvec(&q, &mut w);
        let a = dot(&w, &q);
        alpha.push(a);
        basis.push(q.clone());
        // Full reorthogonalisation (classical Gram-Schmidt); the projections are
        // independent, so they run in parallel.
        for _ in 0..passes {
            let coef: Vec<f64> = basis.par_iter().map(|b| dot(&w, b)).collect();
            w.par_chunks_mut(4096).enumerate().for_each(|(c, chunk)| {
                let off = c * 4096;
                for (b, &cb) in basis.iter().zip(&coef) {
                    let bs = &b[off..off + chunk.len()];
                    chunk.iter_mut().zip(bs).for_each(|(wi, bi)| *wi -= cb * bi);
                }
            });
        }
        let nb = dot(&w, &w).sqrt();
        if j + 1 == m || nb < 1e-12 {
            break;
        }
        beta.push(nb);
        q = w.iter().map(|v| v / nb).collect();
    }
    let s = basis.len();
    let (vals, vecs) = tridiagonal_eigen(&alpha, &beta);
    let mut order: Vec<usize> = (0..s).collect();
    order.sort_by(|&a, &b| vals[b].abs().total_cmp(&vals[a].abs()).then(a.cmp(&b)));
    order.truncate(k.min(s));
    order.sort_by(|&a, &b| vals[b].total_cmp(&vals[a]).then(a.cmp(&b)));
    let out_vals = order.iter().map(|&j| vals[j]).collect();
    let out_vecs = ritz_vectors(&basis, &vecs, s, &order, n);
    (out_vals, out_vecs)
}

/// The Ritz vectors `sum_i vecs[i][j] basis[i]` for every `j` of `order`, normalised. Rows
/// are done in chunks, all vectors at once, so each chunk of the basis is read once rather
/// than once per vector; every entry is still summed over `i` in order, as one vector at a
/// time would.
fn ritz_vectors(
    basis: &[Vec<f64>],
    vecs: &[f64],
    s: usize,
    order: &[usize],
    n: usize,
) -> Vec<Vec<f64>> {
    const CHUNK: usize = 256;
    let k = order.len();
    let mut out = vec![vec![0f64; n]; k];
    if k == 0 {
        return out;
    }
    let coefs: Vec<Vec<f64>> = (0..basis.len())
        .map(|i| order.iter().map(|&j| vecs[i * s + j]).collect())
        .collect();
    let blocks = par_row_blocks(n, CHUNK, |r0, len| {
        let mut block = vec![0f64; k * len];
        for (b, coef) in basis.iter().zip(&coefs) {
            let bs = &b[r0..r0 + len];
            for (y, &c) in block.chunks_mut(len).zip(coef) {
                y.iter_mut().zip(bs).for_each(|(yi, bi)| *yi += c * bi);
            }
        }
        block
    });
    for (i, block) in blocks.iter().enumerate() {
        let (r0, len) = (i * CHUNK, block.len() / k);
        for (y, part) in out.iter_mut().zip(block.chunks(len)) {
            y[r0..r0 + len].copy_from_slice(part);
        }
    }
    out.par_iter_mut().for_each(|y| normalise(y));
    out
}

/// Householder reduction of the symmetric `v` (row-major `n x n`, overwritten by the
/// accumulated transformation) to tridiagonal form: diagonal `d`, sub-diagonal `e[1..]`
/// (EISPACK tred2, as in JAMA).
fn tred2(v: &mut [f64], n: usize, d: &mut [f64], e: &mut [f64]) {
    let at = |i: usize, j: usize| i * n + j;
    for j in 0..n {
        d[j] = v[at(n - 1, j)];
    }
    for i in (1..n).rev() {
        let mut scale = 0.0;
        let mut h = 0.0;
        for k in 0..i {
            scale += d[k].abs();
        }
        if scale == 0.0 {
            e[i] = d[i - 1];
            for j in 0..i {
                d[j] = v[at(i - 1, j)];
                v[at(i, j)] = 0.0;
                v[at(j, i)] = 0.0;
            }
        } else {
            for k in 0..i {
                d[k] /= scale;
                h += d[k] * d[k];
            }
            let mut f = d[i - 1];
            let mut g = h.sqrt();
            if f > 0.0 {
                g = -g;
            }
            e[i] = scale * g;
            h -= f * g;
            d[i - 1] = f - g;
            for ej in e.iter_mut().take(i) {
                *ej = 0.0;
            }
            for j in 0..i {
                f = d[j];
                v[at(j, i)] = f;
                g = e[j] + v[at(j, j)] * f;
                for k in j + 1..i {
                    g += v[at(k, j)] * d[k];
                    e[k] += v[at(k, j)] * f;
                }
                e[j] = g;
            }
            f = 0.0;
            for j in 0..i {
                e[j] /= h;
                f += e[j] * d[j];
            }
            let hh = f / (h + h);
            for j in 0..i {
                e[j] -= hh * d[j];
            }
            for j in 0..i {
                f = d[j];
                g = e[j];
                for k in j..i {
                    v[at(k, j)] -= f * e[k] + g * d[k];
                }
                d[j] = v[at(i - 1, j)];
                v[at(i, j)] = 0.0;
            }
        }
        d[i] = h;
    }
    for i in 0..n - 1 {
        v[at(n - 1, i)] = v[at(i, i)];
        v[at(i, i)] = 1.0;
        let h = d[i + 1];
        if h != 0.0 {
            for k in 0..=i {
                d[k] = v[at(k, i + 1)] / h;
            }
            for j in 0..=i {
                let mut g = 0.0;
                for k in 0..=i {
                    g += v[at(k, i + 1)] * v[at(k, j)];
                }
                for k in 0..=i {
                    v[at(k, j)] -= g * d[k];
                }
            }
        }
        for k in 0..=i {
            v[at(k, i + 1)] = 0.0;
        }
    }
    for j in 0..n {
        d[j] = v[at(n - 1, j)];
        v[at(n - 1, j)] = 0.0;
    }
    v[at(n - 1, n - 1)] = 1.0;
    e[0] = 0.0;
}

/// Implicit QL on the tridiagonal (`d`, `e[1..]`), rotating the columns of the `n x n`
/// matrix whose columns `cols` holds one after another (column `j` at `cols[j * n..]`), so each
/// rotation reads two contiguous slices instead of two strided columns (EISPACK tql2; the same
/// arithmetic as rotating a row-major matrix's columns).
fn tql2(cols: &mut [f64], n: usize, d: &mut [f64], e: &mut [f64]) {
    for i in 1..n {
        e[i - 1] = e[i];
    }
    e[n - 1] = 0.0;
    let mut f = 0.0;
    let mut tst1: f64 = 0.0;
    let eps = f64::EPSILON;
    for l in 0..n {
        tst1 = tst1.max(d[l].abs() + e[l].abs());
        let mut m = l;
        while m < n - 1 && e[m].abs() > eps * tst1 {
            m += 1;
        }
        if m > l {
            for _iter in 0..100 {
                let mut g = d[l];
                let mut p = (d[l + 1] - g) / (2.0 * e[l]);
                let mut r = p.hypot(1.0);
                if p < 0.0 {
                    r = -r;
                }
                d[l] = e[l] / (p + r);
                d[l + 1] = e[l] * (p + r);
                let dl1 = d[l + 1];
                let mut h = g - d[l];
                for di in d.iter_mut().take(n).skip(l + 2) {
                    *di -= h;
                }
                f += h;
                p = d[m];
                let (mut c, mut c2, mut c3) = (1.0, 1.0, 1.0);
                let el1 = e[l + 1];
                let (mut s, mut s2) = (0.0, 0.0);
                for i in (l..m).rev() {
                    c3 = c2;
                    c2 = c;
                    s2 = s;
                    g = c * e[i];
                    h = c * p;
                    r = p.hypot(e[i]);
                    e[i + 1] = s * r;
                    s = e[i] / r;
                    c = p / r;
                    p = c * d[i] - s * g;
                    d[i + 1] = h + s * (c * g + s * d[i]);
                    let (left, right) = cols.split_at_mut((i + 1) * n);
                    let (ci, ci1) = (&mut left[i * n..], &mut right[..n]);
                    for (vi, vi1) in ci.iter_mut().zip(ci1.iter_mut()) {
                        let h = *vi1;
                        *vi1 = s * *vi + c * h;
                        *vi = c * *vi - s * h;
                    }
                }
                p = -s * s2 * c3 * el1 * e[l] / dl1;
                e[l] = s * p;
                d[l] = c * p;
                if e[l].abs() <= eps * tst1 {
                    break;
                }
            }
        }
        d[l] += f;
        e[l] = 0.0;
    }
}

/// Order eigenpairs descending by value: (values, row-major vectors with column j = pair j)
/// from the vectors stored column after column (`cols[j * n + k]` = entry k of vector j).
fn sorted_desc(d: &[f64], cols: &[f64], n: usize) -> (Vec<f64>, Vec<f64>) {
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| d[b].total_cmp(&d[a]).then(a.cmp(&b)));
    let vals = order.iter().map(|&j| d[j]).collect();
    let mut vecs = vec![0f64; n * n];
    for (new, &old) in order.iter().enumerate() {
        for k in 0..n {
            vecs[k * n + new] = cols[old * n + k];
        }
    }
    (vals, vecs)
}

/// The transpose of the row-major `n x n` matrix `a`.
fn transposed(a: &[f64], n: usize) -> Vec<f64> {
    let mut t = vec![0f64; n * n];
    for i in 0..n {
        for j in 0..n {
            t[j * n + i] = a[i * n + j];
        }
    }
    t
}

/// Eigenpairs of a symmetric matrix by Householder tridiagonalisation and implicit QL
/// (O(n^3), much faster than Jacobi above a few dozen rows); same layout as [`jacobi_eigen`].
pub fn sym_eigen(a: &[f64], n: usize) -> (Vec<f64>, Vec<f64>) {
    if n == 0 {
        return (Vec::new(), Vec::new());
    }
    let mut v = a.to_vec();
    let (mut d, mut e) = (vec![0f64; n], vec![0f64; n]);
    tred2(&mut v, n, &mut d, &mut e);
    let mut cols = transposed(&v, n);
    tql2(&mut cols, n, &mut d, &mut e);
    sorted_desc(&d, &cols, n)
}

/// Eigenpairs of the symmetric tridiagonal matrix with diagonal `diag` and off-diagonal `off`.
pub fn tridiagonal_eigen(diag: &[f64], off: &[f64]) -> (Vec<f64>, Vec<f64>) {
    let n = diag.len();
    if n == 0 {
        return (Vec::new(), Vec::new());
    }
    let mut v = vec![0f64; n * n];
    for i in 0..n {
        v[i * n + i] = 1.0;
    }
    let mut d = diag.to_vec();
    let mut e = vec![0f64; n];
    e[1..n].copy_from_slice(&off[..n - 1]);
    // The identity is its own transpose: `v` already holds its columns one after another.
    tql2(&mut v, n, &mut d, &mut e);
    sorted_desc(&d, &v, n)
}

/// Dot product in eight interleaved partial sums: one running sum is a chain of dependent
/// adds that neither overlaps nor vectorises, and these dots (the reorthogonalisation of
/// every Lanczos step) are most of the eigensolvers' time.
pub fn dot(a: &[f64], b: &[f64]) -> f64 {
    const LANES: usize = 8;
    let mut acc = [0f64; LANES];
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let tail: f64 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for l in 0..LANES {
            acc[l] += x[l] * y[l];
        }
    }
    ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7])) + tail
}

fn normalise(v: &mut [f64]) {
    let n = dot(v, v).sqrt();
    if n > 0.0 {
        v.iter_mut().for_each(|x| *x /= n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jacobi_and_lanczos_agree_on_a_known_spectrum() {
        // A = Q diag(1..=30) Q^T with Q a product of rotations: eigenvalues 30, 29, ...
        let n = 30;
        let mut a = vec![0f64; n * n];
        for i in 0..n {
            a[i * n + i] = (i + 1) as f64;
        }
        for p in 0..n - 1 {
            let (c, s) = (0.8f64, 0.6f64);
            for k in 0..n {
                let (x, y) = (a[k * n + p], a[k * n + p + 1]);
                a[k * n + p] = c * x - s * y;
                a[k * n + p + 1] = s * x + c * y;
            }
            for k in 0..n {
                let (x, y) = (a[p * n + k], a[(p + 1) * n + k]);
                a[p * n + k] = c * x - s * y;
                a[(p + 1) * n + k] = s * x + c * y;
            }
        }
        let (vals, vecs) = jacobi_eigen(&a, n);
        for (i, v) in vals.iter().enumerate() {
            assert!((v - (n - i) as f64).abs() < 1e-9, "{i}: {v}");
        }
        // A v = lambda v for the top vector.
        let v0: Vec<f64> = (0..n).map(|k| vecs[k * n]).collect();
        for r in 0..n {
            let av: f64 = (0..n).map(|c| a[r * n + c] * v0[c]).sum();
            assert!((av - 30.0 * v0[r]).abs() < 1e-8);
        }
        let (qv, qvec) = sym_eigen(&a, n);
        for i in 0..n {
            assert!((qv[i] - vals[i]).abs() < 1e-9);
            let c: f64 = (0..n).map(|k| qvec[k * n + i] * vecs[k * n + i]).sum();
            assert!((c.abs() - 1.0).abs() < 1e-8, "vector {i}");
        }
        let (lv, lvec) = lanczos_top(n, 5, 30, 2, |x, y| {
            for r in 0..n {
                y[r] = (0..n).map(|c| a[r * n + c] * x[c]).sum();
            }
        });
        for i in 0..5 {
            assert!((lv[i] - (n - i) as f64).abs() < 1e-8);
        }
        assert!((dot(&lvec[0], &v0).abs() - 1.0).abs() < 1e-8);
    }
}
