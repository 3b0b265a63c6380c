//! The neighbour graph and the label silhouettes from one pass over the Euclidean distance
//! blocks: both need every pairwise distance of the same centred embedding, so each GEMM
//! block feeds both (the same values each would compute alone, so the same results).

use super::distance::{centred, map_row_blocks};
use super::neighbors::{Neighbors, finish, knn_graph, row_neighbours, uses_distance_blocks};
use super::silhouette::{
    Between, Metric, row_distance_sums, silhouette_samples, silhouettes_from_sums,
};

/// [`knn_graph`]`(x, n, d, k)` and [`silhouette_samples`]`(x, d, labels, n_labels)`.
pub fn neighbours_and_silhouettes(
    x: &[f32],
    n: usize,
    d: usize,
    k: usize,
    labels: &[u32],
    n_labels: usize,
) -> (Neighbors, Vec<f64>) {
    assert_eq!(x.len(), n * d);
    if !uses_distance_blocks(d) {
        return (
            knn_graph(x, n, d, k),
            silhouette_samples(x, d, labels, n_labels),
        );
    }
    let k = k.min(n);
    let xc = centred(x, n, d);
    let rows = map_row_blocks(&xc, n, d, |r0, rows, d2| {
        (0..rows)
            .map(|r| {
                let row = &d2[r * n..(r + 1) * n];
                let me = r0 + r;
                (
                    row_neighbours(x, d, me, row, k),
                    row_distance_sums(row, me, labels, n_labels, Metric::Euclidean),
                )
            })
            .collect()
    });
    let (nb_rows, sums): (Vec<_>, Vec<_>) = rows.into_iter().unzip();
    (
        finish(n, k, nb_rows),
        silhouettes_from_sums(&sums, labels, n_labels, Between::Nearest),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_pass_gives_what_the_two_passes_give() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        // 600 cells: three distance blocks; 10 dimensions (GEMM path) and 4 (kd-tree path).
        let n = 600;
        let labels: Vec<u32> = (0..n).map(|i| (i % 3) as u32).collect();
        for d in [10, 4] {
            let x: Vec<f32> = (0..n * d)
                .map(|p| rng.r#gen::<f32>() + labels[p / d] as f32 * 0.3)
                .collect();
            let (nb, sil) = neighbours_and_silhouettes(&x, n, d, 30, &labels, 3);
            let alone = knn_graph(&x, n, d, 30);
            assert_eq!(nb.indices, alone.indices, "d {d}");
            assert_eq!(nb.distances, alone.distances, "d {d}");
            assert_eq!(sil, silhouette_samples(&x, d, &labels, 3), "d {d}");
        }
    }
}
