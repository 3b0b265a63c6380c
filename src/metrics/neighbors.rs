//! Exact k-nearest-neighbour graph with distances, in the layout scib-metrics' `NeighborsResults`
//! has: every row starts with the cell itself (distance 0), then its neighbours nearest first.
//! scib-metrics gets this graph from pynndescent (approximate); on embeddings of a few dozen
//! dimensions pynndescent is close to exact, so exact neighbours reproduce its scores.

use rayon::prelude::*;

/// `k` neighbours per cell, self first; row-major `n x k` indices and Euclidean distances.
#[derive(Clone, Debug)]
pub struct Neighbors {
    pub n: usize,
    pub k: usize,
    pub indices: Vec<u32>,
    pub distances: Vec<f32>,
}

impl Neighbors {
    pub fn row(&self, i: usize) -> (&[u32], &[f32]) {
        let r = i * self.k..(i + 1) * self.k;
        (&self.indices[r.clone()], &self.distances[r])
    }

    /// The first `k` columns (scib-metrics' `subset_neighbors`).
    pub fn subset(&self, k: usize) -> Neighbors {
        assert!(k <= self.k, "subset of {k} neighbours from {}", self.k);
        let mut indices = Vec::with_capacity(self.n * k);
        let mut distances = Vec::with_capacity(self.n * k);
        for i in 0..self.n {
            let (idx, d) = self.row(i);
            indices.extend_from_slice(&idx[..k]);
            distances.extend_from_slice(&d[..k]);
        }
        Neighbors {
            n: self.n,
            k,
            indices,
            distances,
        }
    }
}

/// Exact `k` nearest neighbours (self included as the first) of every row of `x` (`n x d`).
/// `k` is capped at `n`. Ties are broken by index, so the result is deterministic.
pub fn knn_graph(x: &[f32], n: usize, d: usize, k: usize) -> Neighbors {
    assert_eq!(x.len(), n * d);
    let k = k.min(n);
    macro_rules! tree {
        ($($dim:literal),*) => {
            match d {
                $($dim => return finish(n, k, graph_tree::<$dim>(x, n, k)),)*
                _ => {}
            }
        };
    }
    // kd-trees pay off in few dimensions; above that one GEMM per block of rows is faster.
    if uses_distance_blocks(d) {
        return finish(n, k, graph_blocked(x, n, d, k));
    }
    tree!(2, 3, 4, 5, 6, 8);
    unreachable!("no kd-tree for {d} dimensions")
}

/// Candidates from the GEMM distances (a few spare ones against rounding), then exact
/// distances for the final order.
fn graph_blocked(x: &[f32], n: usize, d: usize, k: usize) -> Vec<Vec<(f32, u32)>> {
    let xc = super::distance::centred(x, n, d);
    super::distance::map_row_blocks(&xc, n, d, |r0, rows, d2| {
        (0..rows)
            .map(|r| row_neighbours(x, d, r0 + r, &d2[r * n..(r + 1) * n], k))
            .collect()
    })
}

/// Cell `i`'s `k + 1` nearest (self included) from its row of GEMM squared distances: a few
/// spare candidates against rounding, re-ranked by exact distances.
pub(crate) fn row_neighbours(
    x: &[f32],
    d: usize,
    i: usize,
    d2: &[f32],
    k: usize,
) -> Vec<(f32, u32)> {
    let want = (k + 1 + 8).min(d2.len());
    let mut exact: Vec<(f32, u32)> = smallest(d2, want)
        .into_iter()
        .map(|j| (exact_sq(x, d, i, j as usize), j))
        .collect();
    exact.sort_by(by_distance);
    exact.truncate(k + 1);
    exact
}

/// Whether [`knn_graph`] takes its neighbours from GEMM distance blocks (else a kd-tree).
pub(crate) fn uses_distance_blocks(d: usize) -> bool {
    !matches!(d, 2..=6 | 8)
}

/// Indices of the `want` smallest values of `row` in [`by_distance`] order (value, then
/// index), unordered: the set a `select_nth_unstable_by` of the whole row keeps. One pass keeps
/// candidates in a buffer and, whenever it holds `2 want`, cuts it to the `want` best; the
/// `want`-th best so far is then a bound no later value above it can beat, and a
/// branch-free test of a whole chunk against it (it vectorises) skips most of the row.
// `!(v > bound)` is meant: it is true for NaN, which `v <= bound` is not.
#[allow(clippy::neg_cmp_op_on_partial_ord)]
pub(crate) fn smallest(row: &[f32], want: usize) -> Vec<u32> {
    const CHUNK: usize = 32;
    if want >= row.len() {
        return (0..row.len() as u32).collect();
    }
    if want == 0 {
        return Vec::new();
    }
    let cap = 2 * want.max(CHUNK);
    let mut buf: Vec<u64> = Vec::with_capacity(cap + CHUNK);
    // Keys are unique (the index is in them), so a key at or above the bound is beaten by the
    // `want` kept ones. `!(v > bound)` keeps every value whose key could be below it (smaller,
    // equal, signed zeros, NaN on either side), so the float test only skips certain losers.
    let (mut bound_key, mut bound) = (u64::MAX, f32::NAN);
    for (c, chunk) in row.chunks(CHUNK).enumerate() {
        if !chunk.iter().fold(false, |acc, &v| acc | !(v > bound)) {
            continue;
        }
        for (p, &v) in chunk.iter().enumerate() {
            let key = order_key(v, (c * CHUNK + p) as u32);
            if key < bound_key {
                buf.push(key);
            }
        }
        if buf.len() >= cap {
            buf.select_nth_unstable(want - 1);
            buf.truncate(want);
            bound_key = buf[want - 1];
            bound = key_value(bound_key);
        }
    }
    if buf.len() > want {
        buf.select_nth_unstable(want - 1);
        buf.truncate(want);
    }
    buf.into_iter().map(|key| key as u32).collect()
}

/// (value, index) packed so that integer order is [`by_distance`] order: the value's bits
/// mapped to an unsigned key monotone in `f32::total_cmp`, above the index.
fn order_key(v: f32, j: u32) -> u64 {
    let b = v.to_bits();
    let monotone = if b >> 31 == 1 { !b } else { b | 0x8000_0000 };
    ((monotone as u64) << 32) | j as u64
}

/// The value packed in an [`order_key`].
fn key_value(key: u64) -> f32 {
    let m = (key >> 32) as u32;
    f32::from_bits(if m >> 31 == 1 { m & 0x7fff_ffff } else { !m })
}

pub(crate) fn finish(n: usize, k: usize, rows: Vec<Vec<(f32, u32)>>) -> Neighbors {
    let mut indices = Vec::with_capacity(n * k);
    let mut distances = Vec::with_capacity(n * k);
    for (i, mut row) in rows.into_iter().enumerate() {
        // Self first even when a duplicate cell sits at distance 0 too.
        if let Some(p) = row.iter().position(|e| e.1 as usize == i) {
            let me = row.remove(p);
            row.insert(0, (0.0, me.1));
        } else {
            row.insert(0, (0.0, i as u32));
        }
        row.truncate(k);
        for (d2, j) in row {
            indices.push(j);
            distances.push(d2.max(0.0).sqrt());
        }
    }
    Neighbors {
        n,
        k,
        indices,
        distances,
    }
}

fn by_distance(a: &(f32, u32), b: &(f32, u32)) -> std::cmp::Ordering {
    a.0.total_cmp(&b.0).then(a.1.cmp(&b.1))
}

fn graph_tree<const D: usize>(x: &[f32], n: usize, k: usize) -> Vec<Vec<(f32, u32)>> {
    super::knn::kd_nearest::<D, _>(x, n, k, |i, found| {
        let mut found: Vec<(f32, u32)> = found
            .into_iter()
            .map(|nb| (exact_sq(x, D, i, nb.item as usize), nb.item as u32))
            .collect();
        found.sort_by(by_distance);
        found
    })
}

/// Squared distance summed in the same order for every pair, so d(i, j) == d(j, i) exactly.
fn exact_sq(x: &[f32], d: usize, i: usize, j: usize) -> f32 {
    let (a, b) = if i < j { (i, j) } else { (j, i) };
    let (xa, xb) = (&x[a * d..(a + 1) * d], &x[b * d..(b + 1) * d]);
    xa.iter().zip(xb).map(|(p, q)| (p - q) * (p - q)).sum()
}

#[cfg(test)]
fn graph_brute(x: &[f32], n: usize, d: usize, k: usize) -> Vec<Vec<(f32, u32)>> {
    (0..n)
        .into_par_iter()
        .map(|i| {
            let mut dist: Vec<(f32, u32)> =
                (0..n).map(|j| (exact_sq(x, d, i, j), j as u32)).collect();
            let kk = (k + 1).min(n);
            dist.select_nth_unstable_by(kk - 1, by_distance);
            dist.truncate(kk);
            dist.sort_by(by_distance);
            dist
        })
        .collect()
}

/// A symmetric sparse graph as adjacency lists (column, weight), columns ascending.
#[derive(Clone, Debug)]
pub struct SparseGraph {
    pub n: usize,
    pub rows: Vec<Vec<(u32, f32)>>,
}

/// umap-learn's `fuzzy_simplicial_set` (local_connectivity 1, set_op_mix_ratio 1) from a kNN
/// graph that includes self: per cell the distance to its nearest other neighbour (rho) and a
/// bandwidth sigma found by binary search so that sum exp(-(d - rho) / sigma) = log2(k), then
/// the fuzzy union w_ij + w_ji - w_ij w_ji. This is the connectivity graph scanpy and
/// scib-metrics (kBET, graph connectivities) use.
pub fn fuzzy_simplicial_set(nb: &Neighbors) -> SparseGraph {
    let (n, k) = (nb.n, nb.k);
    let target = (k as f64).log2();
    let weights: Vec<Vec<(u32, f32)>> = (0..n)
        .into_par_iter()
        .map(|i| {
            let (idx, dist) = nb.row(i);
            let (rho, sigma) = smooth_knn(dist, target);
            idx.iter()
                .zip(dist)
                .filter(|&(&j, _)| j as usize != i)
                .map(|(&j, &d)| {
                    let d = d as f64;
                    let w = if d - rho <= 0.0 || sigma == 0.0 {
                        1.0
                    } else {
                        (-((d - rho) / sigma)).exp()
                    };
                    (j, w as f32)
                })
                .collect()
        })
        .collect();
    symmetrise_union(n, &weights)
}

/// rho and sigma of umap-learn's `smooth_knn_dist` (64 bisection steps, tolerance 1e-5,
/// sigma at least 1e-3 of the mean distance).
pub fn smooth_knn(dist: &[f32], target: f64) -> (f64, f64) {
    const TOL: f64 = 1e-5;
    const MIN_K_DIST_SCALE: f64 = 1e-3;
    let non_zero: Vec<f64> = dist
        .iter()
        .filter(|&&d| d > 0.0)
        .map(|&d| d as f64)
        .collect();
    let rho = non_zero.first().copied().unwrap_or(0.0);
    let (mut lo, mut hi, mut mid) = (0.0f64, f64::INFINITY, 1.0f64);
    for _ in 0..64 {
        let mut psum = 0.0;
        // umap skips the first column (self).
        for &d in &dist[1..] {
            let d = d as f64 - rho;
            psum += if d > 0.0 { (-(d / mid)).exp() } else { 1.0 };
        }
        if (psum - target).abs() < TOL {
            break;
        }
        if psum > target {
            hi = mid;
            mid = (lo + hi) / 2.0;
        } else {
            lo = mid;
            if hi == f64::INFINITY {
                mid *= 2.0;
            } else {
                mid = (lo + hi) / 2.0;
            }
        }
    }
    // umap uses the mean over all cells' distances when rho is 0; this row's mean is close
    // enough there (it only floors sigma).
    let mean_ith: f64 = dist.iter().map(|&d| d as f64).sum::<f64>() / dist.len().max(1) as f64;
    mid = mid.max(MIN_K_DIST_SCALE * mean_ith);
    (rho, mid)
}

fn symmetrise_union(n: usize, weights: &[Vec<(u32, f32)>]) -> SparseGraph {
    // Every directed edge i -> j with its weight, and its mirror j -> i marked as such; after
    // sorting, the (up to) two entries of a pair sit together.
    let total: usize = weights.iter().map(Vec::len).sum();
    let mut edges: Vec<(u32, u32, bool, f32)> = Vec::with_capacity(2 * total);
    for (i, row) in weights.iter().enumerate() {
        for &(j, w) in row {
            edges.push((i as u32, j, false, w));
            edges.push((j, i as u32, true, w));
        }
    }
    edges.par_sort_unstable_by(|a, b| (a.0, a.1, a.2).cmp(&(b.0, b.1, b.2)));
    let mut rows: Vec<Vec<(u32, f32)>> = vec![Vec::new(); n];
    let mut p = 0;
    while p < edges.len() {
        let (i, j) = (edges[p].0, edges[p].1);
        let (mut fwd, mut back) = (0f32, 0f32);
        while p < edges.len() && edges[p].0 == i && edges[p].1 == j {
            if edges[p].2 {
                back = edges[p].3;
            } else {
                fwd = edges[p].3;
            }
            p += 1;
        }
        let w = fwd + back - fwd * back;
        if w > 0.0 {
            rows[i as usize].push((j, w));
        }
    }
    SparseGraph { n, rows }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_first_and_matches_brute_force() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let (n, d) = (200, 10);
        let x: Vec<f32> = (0..n * d).map(|_| rng.r#gen::<f32>()).collect();
        let a = knn_graph(&x, n, d, 20);
        let b = finish(n, 20, graph_brute(&x, n, d, 20));
        assert_eq!(a.indices, b.indices);
        assert_eq!(a.distances, b.distances);
        let low = knn_graph(&x[..n * 4], n, 4, 20);
        let low_brute = finish(n, 20, graph_brute(&x[..n * 4], n, 4, 20));
        assert_eq!(low.indices, low_brute.indices);
        for i in 0..n {
            assert_eq!(a.row(i).0[0] as usize, i);
            assert_eq!(a.row(i).1[0], 0.0);
        }
    }

    #[test]
    fn smallest_keeps_what_a_full_selection_keeps() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        for (len, want, nan) in [
            (1000, 37, false),
            (1000, 0, false),
            (5000, 100, false),
            (50, 50, false),
            (50, 60, false),
            (300, 1, false),
            (1003, 20, true),
            (2000, 3, true),
        ] {
            // Few distinct values, negative zero and infinity: ties and sign edge cases; NaN of
            // both signs where `nan` (total order: -NaN first, +NaN last).
            let row: Vec<f32> = (0..len)
                .map(|_| match rng.gen_range(0..14) {
                    0 => -0.0,
                    1 => f32::INFINITY,
                    12 if nan => f32::NAN,
                    13 if nan => -f32::NAN,
                    v => v as f32 * 0.5,
                })
                .collect();
            let mut got = smallest(&row, want);
            got.sort_unstable();
            let mut pairs: Vec<(f32, u32)> = row
                .iter()
                .enumerate()
                .map(|(j, &v)| (v, j as u32))
                .collect();
            pairs.sort_by(by_distance);
            let mut want_idx: Vec<u32> = pairs.iter().take(want).map(|p| p.1).collect();
            want_idx.sort_unstable();
            assert_eq!(got, want_idx, "len {len} want {want}");
        }
    }

    #[test]
    fn key_value_inverts_order_key() {
        for v in [
            0.0f32,
            -0.0,
            1.5,
            -2.25,
            f32::INFINITY,
            f32::NEG_INFINITY,
            3e-42,
        ] {
            assert_eq!(key_value(order_key(v, 7)).to_bits(), v.to_bits());
        }
        assert!(key_value(order_key(f32::NAN, 1)).is_nan());
    }

    #[test]
    fn fuzzy_weights_are_symmetric_and_nearest_is_one() {
        let x: Vec<f32> = (0..40).map(|i| (i as f32 * 0.37).sin() * 3.0).collect();
        let nb = knn_graph(&x, 20, 2, 6);
        let g = fuzzy_simplicial_set(&nb);
        for i in 0..20 {
            for &(j, w) in &g.rows[i] {
                let back = g.rows[j as usize]
                    .iter()
                    .find(|e| e.0 as usize == i)
                    .unwrap()
                    .1;
                assert!((w - back).abs() < 1e-6 && w > 0.0 && w <= 1.0);
            }
            // The nearest other neighbour sits at rho: weight exactly 1.
            let nearest = nb.row(i).0[1];
            let w = g.rows[i].iter().find(|e| e.0 == nearest).unwrap().1;
            assert!((w - 1.0).abs() < 1e-6);
        }
    }
}
