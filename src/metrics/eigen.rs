//! Symmetric eigenproblems for the metrics: cyclic Jacobi for small dense matrices and
//! Lanczos with full reorthogonalisation for the leading eigenpairs of large ones (given as
//! a matrix-vector product). f64 throughout: these are small next to the kNN work.

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
/// `steps` iterations and full reorthogonalisation (deterministic start vector). Returns
/// values sorted descending and the eigenvectors as `k` vectors of length `n`.
pub fn lanczos_top(
    n: usize,
    k: usize,
    steps: usize,
    matvec: impl Fn(&[f64], &mut [f64]),
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
        // Full reorthogonalisation (twice, for stability).
        for _ in 0..2 {
            for b in &basis {
                let c = dot(&w, b);
                w.iter_mut().zip(b).for_each(|(wi, bi)| *wi -= c * bi);
            }
        }
        let nb = dot(&w, &w).sqrt();
        if j + 1 == m || nb < 1e-12 {
            break;
        }
        beta.push(nb);
        q = w.iter().map(|v| v / nb).collect();
    }
    let s = basis.len();
    let mut t = vec![0f64; s * s];
    for i in 0..s {
        t[i * s + i] = alpha[i];
        if i + 1 < s {
            t[i * s + i + 1] = beta[i];
            t[(i + 1) * s + i] = beta[i];
        }
    }
    let (vals, vecs) = jacobi_eigen(&t, s);
    let mut order: Vec<usize> = (0..s).collect();
    order.sort_by(|&a, &b| vals[b].abs().total_cmp(&vals[a].abs()).then(a.cmp(&b)));
    order.truncate(k.min(s));
    order.sort_by(|&a, &b| vals[b].total_cmp(&vals[a]).then(a.cmp(&b)));
    let out_vals = order.iter().map(|&j| vals[j]).collect();
    let out_vecs = order
        .iter()
        .map(|&j| {
            let mut y = vec![0f64; n];
            for (i, b) in basis.iter().enumerate() {
                let c = vecs[i * s + j];
                y.iter_mut().zip(b).for_each(|(yi, bi)| *yi += c * bi);
            }
            normalise(&mut y);
            y
        })
        .collect();
    (out_vals, out_vecs)
}

pub fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
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
        let (lv, lvec) = lanczos_top(n, 5, 30, |x, y| {
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
