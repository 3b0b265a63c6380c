//! Exact k-nearest neighbours in a low-dimensional embedding (Euclidean).
//!
//! Uses kiddo's exact kd-tree for the common latent sizes (a const-generic dimension) and a
//! brute-force scan otherwise. Results are deterministic.

use std::num::NonZero;

use kiddo::NearestNeighbour;
use kiddo::SquaredEuclidean;
use kiddo::immutable::float::kdtree::ImmutableKdTree;
use rayon::prelude::*;

/// The `k` nearest neighbours of every row of `x` (`n x d`, row-major), self excluded, nearest
/// first. Ties are broken by index for determinism.
pub fn knn_indices(x: &[f32], n: usize, d: usize, k: usize) -> Vec<Vec<u32>> {
    assert_eq!(
        x.len(),
        n * d,
        "embedding has {} values, expected {n} x {d}",
        x.len()
    );
    let k = k.min(n.saturating_sub(1));
    if k == 0 {
        return vec![Vec::new(); n];
    }
    macro_rules! tree {
        ($($dim:literal),*) => {
            match d {
                $($dim => return knn_tree::<$dim>(x, n, k),)*
                _ => {}
            }
        };
    }
    tree!(2, 3, 4, 5, 6, 8, 10, 12, 15, 16, 20, 24, 30, 32, 50, 64);
    knn_brute(x, n, d, k)
}

fn knn_tree<const D: usize>(x: &[f32], n: usize, k: usize) -> Vec<Vec<u32>> {
    kd_nearest::<D, _>(x, n, k, |i, mut found| {
        found.sort_by(|a, b| a.distance.total_cmp(&b.distance).then(a.item.cmp(&b.item)));
        found
            .into_iter()
            .map(|nb| nb.item as u32)
            .filter(|&j| j as usize != i)
            .take(k)
            .collect()
    })
}

/// The `k + 1` points nearest to each row of `x` (the row itself among them) from one exact
/// kd-tree, handed to `row` with the row's index; the rows run in parallel, results in order.
pub(crate) fn kd_nearest<const D: usize, R: Send>(
    x: &[f32],
    n: usize,
    k: usize,
    row: impl Fn(usize, Vec<NearestNeighbour<f32, u64>>) -> R + Sync,
) -> Vec<R> {
    let points: Vec<[f32; D]> = (0..n)
        .map(|i| {
            let mut p = [0f32; D];
            p.copy_from_slice(&x[i * D..(i + 1) * D]);
            p
        })
        .collect();
    let tree: ImmutableKdTree<f32, u64, D, 32> = ImmutableKdTree::new_from_slice(&points);
    let qty = NonZero::new(k + 1).expect("k + 1 > 0");
    (0..n)
        .into_par_iter()
        .map(|i| row(i, tree.nearest_n::<SquaredEuclidean>(&points[i], qty)))
        .collect()
}

fn knn_brute(x: &[f32], n: usize, d: usize, k: usize) -> Vec<Vec<u32>> {
    (0..n)
        .into_par_iter()
        .map(|i| {
            let xi = &x[i * d..(i + 1) * d];
            let mut dist: Vec<(f32, u32)> = (0..n)
                .filter(|&j| j != i)
                .map(|j| {
                    let xj = &x[j * d..(j + 1) * d];
                    (
                        xi.iter().zip(xj).map(|(a, b)| (a - b) * (a - b)).sum(),
                        j as u32,
                    )
                })
                .collect();
            dist.select_nth_unstable_by(k - 1, |a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            dist.truncate(k);
            dist.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            dist.into_iter().map(|e| e.1).collect()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tree_matches_brute_force() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        for &d in &[10usize, 7] {
            let n = 300;
            let x: Vec<f32> = (0..n * d).map(|_| rng.r#gen::<f32>()).collect();
            let a = knn_indices(&x, n, d, 15);
            let b = knn_brute(&x, n, d, 15);
            assert_eq!(a, b, "dim {d}");
        }
    }

    #[test]
    fn nearest_is_the_close_point() {
        let x = [0.0f32, 0.0, 10.0, 10.0, 0.1, 0.0];
        let nb = knn_indices(&x, 3, 2, 1);
        assert_eq!(nb, vec![vec![2], vec![2], vec![0]]);
    }
}
