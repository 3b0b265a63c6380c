//! One-predictor LOESS (local quadratic regression), as computed by the
//! Cleveland–Grosse–Shyu `loess` library that `skmisc.loess` wraps, with its
//! defaults: `family="gaussian"`, `surface="interpolate"`, `cell=0.2`.
//!
//! Why not a direct local fit at every point: skmisc does not do that. It builds a
//! k-d tree over x (cells of at most `floor(n * span * cell)` points), fits the
//! local quadratic only at the cell boundaries (vertices), keeping the value and
//! the slope there, and evaluates every point by cubic Hermite interpolation
//! inside its cell. The two differ by up to ~0.02 in log10 variance, enough to
//! reorder genes near the HVG cut-off, so we reproduce the interpolating surface.

/// Fraction of `span * n` points at most in a k-d tree leaf (loess `cell`).
const CELL: f64 = 0.2;

/// Fitted values of a degree-2 LOESS of `y` on `x` at the points `x` themselves.
///
/// Errors when there are too few points for a local quadratic
/// (`floor(n * span)` must be at least 4) or when a local fit has no usable
/// neighbourhood (all neighbours at the same x).
pub fn loess_fitted(x: &[f64], y: &[f64], span: f64) -> anyhow::Result<Vec<f64>> {
    anyhow::ensure!(
        x.len() == y.len(),
        "loess: x has {} values but y has {}",
        x.len(),
        y.len()
    );
    anyhow::ensure!(span > 0.0, "loess: span must be positive, got {span}");
    if let Some(i) = x.iter().chain(y).position(|v| !v.is_finite()) {
        anyhow::bail!("loess: input value {i} is not finite");
    }
    let n = x.len();
    let nf = n.min((n as f64 * span).floor() as usize);
    anyhow::ensure!(
        nf >= 4,
        "loess: {n} points with span {span} leave {nf} neighbours; a local quadratic needs at least 4"
    );
    let tree = KdTree1::build(x, span);
    let fits = tree
        .vertices
        .iter()
        .map(|&q| local_quadratic(x, y, q, nf, span))
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(x.iter().map(|&z| tree.eval(z, &fits)).collect())
}

/// Value and slope of the local quadratic fit at `q`.
#[derive(Clone, Copy, Debug)]
struct VertexFit {
    value: f64,
    slope: f64,
}

/// A node of the 1-D k-d tree: a leaf, or a split at `xi` (points `<= xi` go low).
#[derive(Clone, Debug)]
struct Cell {
    lo_vertex: usize,
    hi_vertex: usize,
    split: Option<(f64, usize, usize)>,
}

struct KdTree1 {
    vertices: Vec<f64>,
    cells: Vec<Cell>,
}

impl KdTree1 {
    /// Build the tree the way loess's `ehg126`/`ehg124` do in one dimension.
    fn build(x: &[f64], span: f64) -> Self {
        let n = x.len();
        let mut sorted = x.to_vec();
        sorted.sort_by(f64::total_cmp);
        let (lo, hi) = (sorted[0], sorted[n - 1]);
        // The bounding box is widened by 0.5% so that no point sits on it.
        let margin = 0.005 * (hi - lo).max(1e-10 * lo.abs().max(hi.abs()) + 1e-30);
        let leaf_size = (n as f64 * (span * CELL)).floor() as usize;
        // loess's workspace limits; only reachable for tiny spans.
        let max_vertices = n.max(200);
        let max_cells = max_vertices;

        let mut vertices = vec![lo - margin, hi + margin];
        let mut cells = vec![Cell {
            lo_vertex: 0,
            hi_vertex: 1,
            split: None,
        }];
        // Point ranges (1-based, inclusive, into `sorted`) of each cell.
        let mut ranges = vec![(1usize, n)];
        let s = |i: usize| sorted[i - 1];
        let mut p = 0;
        while p < cells.len() {
            let (l, u) = ranges[p];
            let (vlo, vhi) = (vertices[cells[p].lo_vertex], vertices[cells[p].hi_vertex]);
            let mut leaf = u - l < leaf_size // i.e. u - l + 1 <= leaf_size
                || vhi - vlo <= 0.0
                || max_cells < cells.len() + 2
                || max_vertices < vertices.len() + 1;
            let mut m = (l + u) / 2;
            if !leaf {
                // Move the split off a run of ties: try m, m+1, m-1, m+2, ... and
                // stop at the first position whose right neighbour differs.
                let mut offset: isize = 0;
                loop {
                    let j = m as isize + offset;
                    if j >= u as isize || j < l as isize {
                        break;
                    }
                    let j = j as usize;
                    if s(j) == s(j + 1) {
                        offset = -offset;
                        if offset >= 0 {
                            offset += 1;
                        }
                    } else {
                        m = j;
                        break;
                    }
                }
                leaf = vlo == s(m) || vhi == s(m);
            }
            if !leaf {
                let xi = s(m);
                vertices.push(xi);
                let v_mid = vertices.len() - 1;
                let low = cells.len();
                cells.push(Cell {
                    lo_vertex: cells[p].lo_vertex,
                    hi_vertex: v_mid,
                    split: None,
                });
                ranges.push((l, m));
                cells.push(Cell {
                    lo_vertex: v_mid,
                    hi_vertex: cells[p].hi_vertex,
                    split: None,
                });
                ranges.push((m + 1, u));
                cells[p].split = Some((xi, low, low + 1));
            }
            p += 1;
        }
        KdTree1 { vertices, cells }
    }

    /// Cubic Hermite interpolation inside the leaf that holds `z` (loess `ehg128`).
    fn eval(&self, z: f64, fits: &[VertexFit]) -> f64 {
        let mut c = &self.cells[0];
        while let Some((xi, low, high)) = c.split {
            c = &self.cells[if z <= xi { low } else { high }];
        }
        let (v0, v1) = (self.vertices[c.lo_vertex], self.vertices[c.hi_vertex]);
        let (g0, g1) = (fits[c.lo_vertex], fits[c.hi_vertex]);
        let width = v1 - v0;
        let h = (z - v0) / width;
        let phi0 = (1.0 - h).powi(2) * (1.0 + 2.0 * h);
        let phi1 = h * h * (3.0 - 2.0 * h);
        let psi0 = h * (1.0 - h).powi(2);
        let psi1 = h * h * (h - 1.0);
        phi0 * g0.value + phi1 * g1.value + (psi0 * g0.slope + psi1 * g1.slope) * width
    }
}

/// Weighted least-squares quadratic around `q` over the `nf` nearest points with
/// tricube weights (loess `ehg127`), returning the value and slope at `q`.
fn local_quadratic(
    x: &[f64],
    y: &[f64],
    q: f64,
    nf: usize,
    span: f64,
) -> anyhow::Result<VertexFit> {
    let dist: Vec<f64> = x.iter().map(|&xi| (xi - q) * (xi - q)).collect();
    let rho = {
        let mut scratch = dist.clone();
        *scratch.select_nth_unstable_by(nf - 1, f64::total_cmp).1 * span.max(1.0)
    };
    anyhow::ensure!(
        rho > 0.0,
        "loess: the {nf} nearest neighbours of x={q} all share that x; cannot fit a local quadratic"
    );
    // Rows of the weighted design matrix [w, w*d, w*d^2] and response w*y. Points at
    // distance >= rho have zero weight, so the set of neighbours need not be listed.
    let mut rows: Vec<[f64; 4]> = Vec::with_capacity(nf);
    for (i, &d2) in dist.iter().enumerate() {
        if d2 < rho {
            let r = (d2 / rho).sqrt();
            let w = ((1.0 - r.powi(3)).powi(3)).sqrt();
            let d = x[i] - q;
            rows.push([w, w * d, w * d * d, w * y[i]]);
        }
    }
    let beta = least_squares3(&mut rows).ok_or_else(|| {
        anyhow::anyhow!("loess: local fit at x={q} is singular (too few distinct x values nearby)")
    })?;
    Ok(VertexFit {
        value: beta[0],
        slope: beta[1],
    })
}

/// Solve min ||A b - r|| for the rows `[a0, a1, a2, r]` by equilibrated
/// Householder QR (as loess does before its SVD). `None` when rank deficient.
fn least_squares3(rows: &mut [[f64; 4]]) -> Option<[f64; 3]> {
    let m = rows.len();
    if m < 3 {
        return None;
    }
    // Equilibrate columns: the quadratic column can be orders of magnitude smaller.
    let mut scale = [1.0f64; 3];
    for (j, s) in scale.iter_mut().enumerate() {
        let norm = rows.iter().map(|r| r[j] * r[j]).sum::<f64>().sqrt();
        if norm > 0.0 {
            *s = norm;
            rows.iter_mut().for_each(|r| r[j] /= norm);
        }
    }
    let mut rdiag = [0.0f64; 3];
    for k in 0..3 {
        let norm = rows[k..].iter().map(|r| r[k] * r[k]).sum::<f64>().sqrt();
        if norm == 0.0 {
            return None;
        }
        let alpha = if rows[k][k] > 0.0 { -norm } else { norm };
        // Householder vector v = a_k - alpha e_k, stored in column k of rows[k..].
        rows[k][k] -= alpha;
        let vnorm2: f64 = rows[k..].iter().map(|r| r[k] * r[k]).sum();
        for j in k + 1..4 {
            let dot: f64 = rows[k..].iter().map(|r| r[k] * r[j]).sum();
            let f = 2.0 * dot / vnorm2;
            rows[k..].iter_mut().for_each(|r| r[j] -= f * r[k]);
        }
        rdiag[k] = alpha;
    }
    // Same pseudo-inverse cut-off as loess: singular values below 100 eps * largest.
    let max_diag = rdiag.iter().fold(0.0f64, |a, v| a.max(v.abs()));
    if rdiag
        .iter()
        .any(|v| v.abs() <= 100.0 * f64::EPSILON * max_diag)
    {
        return None;
    }
    let mut b = [0.0f64; 3];
    for k in (0..3).rev() {
        let mut acc = rows[k][3];
        for j in k + 1..3 {
            acc -= rows[k][j] * b[j];
        }
        b[k] = acc / rdiag[k];
    }
    for (bk, s) in b.iter_mut().zip(scale) {
        *bk /= s;
    }
    Some(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_case(name: &str) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
        let path = format!(
            "{}/tests/fixtures/hvg/loess_{name}.tsv",
            env!("CARGO_MANIFEST_DIR")
        );
        let text = std::fs::read_to_string(&path).unwrap();
        let (mut x, mut y, mut f) = (vec![], vec![], vec![]);
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let v: Vec<f64> = line.split('\t').map(|s| s.parse().unwrap()).collect();
            x.push(v[0]);
            y.push(v[1]);
            f.push(v[2]);
        }
        (x, y, f)
    }

    fn check(name: &str) {
        let (x, y, want) = read_case(name);
        let got = loess_fitted(&x, &y, 0.3).unwrap();
        let worst = got
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        println!("loess {name}: max |ours - skmisc| = {worst:e}");
        assert!(worst < 1e-9, "{name}: max abs difference {worst}");
    }

    #[test]
    fn matches_skmisc_smooth() {
        check("smooth300");
    }

    #[test]
    fn matches_skmisc_with_ties() {
        check("ties1000");
    }

    #[test]
    fn matches_skmisc_tiny() {
        check("tiny40");
    }

    #[test]
    fn reproduces_a_quadratic_exactly() {
        let x: Vec<f64> = (0..100).map(|i| i as f64 / 10.0).collect();
        let y: Vec<f64> = x.iter().map(|v| 1.0 - 2.0 * v + 0.5 * v * v).collect();
        let fit = loess_fitted(&x, &y, 0.3).unwrap();
        for (a, b) in fit.iter().zip(&y) {
            assert!((a - b).abs() < 1e-9, "{a} vs {b}");
        }
    }

    #[test]
    fn rejects_too_few_points() {
        let x = [1.0, 2.0, 3.0, 4.0, 5.0];
        assert!(loess_fitted(&x, &x, 0.3).is_err());
    }
}
