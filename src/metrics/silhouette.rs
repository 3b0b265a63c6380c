//! Silhouette family of scib-metrics 0.5: `silhouette_label`, `isolated_labels` (Euclidean,
//! nearest other cluster) and `bras` (cosine distance, mean distance to all other batches,
//! within each cell type).

/// The distance of a silhouette.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Metric {
    Euclidean,
    /// 1 - cos(a, b), clipped to [0, 2] as scib does.
    Cosine,
}

/// Per-cell sums of distances to every cluster, `n x n_clusters`, in f64, from blocks of
/// GEMM distances.
fn cluster_distance_sums(
    x: &[f32],
    d: usize,
    clusters: &[u32],
    n_clusters: usize,
    metric: Metric,
) -> Vec<Vec<f64>> {
    let n = clusters.len();
    let prepared: Vec<f32> = match metric {
        Metric::Euclidean => super::distance::centred(x, n, d),
        // For unit vectors |a - b|^2 = 2 - 2 cos(a, b).
        Metric::Cosine => x
            .chunks(d)
            .flat_map(|r| {
                let norm = r.iter().map(|v| v * v).sum::<f32>().sqrt();
                r.iter().map(move |v| v / norm)
            })
            .collect(),
    };
    super::distance::map_row_blocks(&prepared, n, d, |r0, rows, d2| {
        (0..rows)
            .map(|r| {
                row_distance_sums(
                    &d2[r * n..(r + 1) * n],
                    r0 + r,
                    clusters,
                    n_clusters,
                    metric,
                )
            })
            .collect()
    })
}

/// One cell's sums of distances to every cluster from its row of squared distances (`d2`
/// as [`super::distance::map_row_blocks`] gives it; the cell itself, `me`, left out).
pub(crate) fn row_distance_sums(
    d2: &[f32],
    me: usize,
    clusters: &[u32],
    n_clusters: usize,
    metric: Metric,
) -> Vec<f64> {
    let mut sums = vec![0f64; n_clusters];
    for (j, &v) in d2.iter().enumerate() {
        if j == me {
            continue;
        }
        let dist = match metric {
            Metric::Euclidean => v.sqrt(),
            Metric::Cosine => (v / 2.0).clamp(0.0, 2.0),
        };
        sums[clusters[j] as usize] += dist as f64;
    }
    sums
}

/// How the distance to "the other clusters" is formed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Between {
    /// The standard silhouette: the nearest other cluster's mean distance.
    Nearest,
    /// BRAS: the mean distance to every cell of every other cluster.
    MeanOther,
}

/// sklearn/scib `silhouette_samples`; a cell alone in its cluster scores 0 (scib's nan_to_num).
pub fn silhouette_samples_with(
    x: &[f32],
    d: usize,
    clusters: &[u32],
    n_clusters: usize,
    between: Between,
    metric: Metric,
) -> Vec<f64> {
    let sums = cluster_distance_sums(x, d, clusters, n_clusters, metric);
    silhouettes_from_sums(&sums, clusters, n_clusters, between)
}

/// The silhouettes from each cell's sums of distances to every cluster.
pub fn silhouettes_from_sums(
    sums: &[Vec<f64>],
    clusters: &[u32],
    n_clusters: usize,
    between: Between,
) -> Vec<f64> {
    let mut freq = vec![0usize; n_clusters];
    for &c in clusters {
        freq[c as usize] += 1;
    }
    let n = clusters.len();
    (0..n)
        .map(|i| {
            let own = clusters[i] as usize;
            if freq[own] <= 1 {
                return 0.0;
            }
            let intra = sums[i][own] / (freq[own] - 1) as f64;
            let inter = match between {
                Between::Nearest => (0..n_clusters)
                    .filter(|&c| c != own && freq[c] > 0)
                    .map(|c| sums[i][c] / freq[c] as f64)
                    .fold(f64::INFINITY, f64::min),
                Between::MeanOther => {
                    let other: f64 = (0..n_clusters)
                        .filter(|&c| c != own)
                        .map(|c| sums[i][c])
                        .sum();
                    other / (n - freq[own]) as f64
                }
            };
            let s = (inter - intra) / intra.max(inter);
            if s.is_finite() { s } else { 0.0 }
        })
        .collect()
}

/// Euclidean silhouette of every cell with respect to its label.
pub fn silhouette_samples(x: &[f32], d: usize, labels: &[u32], n_labels: usize) -> Vec<f64> {
    silhouette_samples_with(x, d, labels, n_labels, Between::Nearest, Metric::Euclidean)
}

/// `silhouette_label`: (mean silhouette + 1) / 2.
pub fn silhouette_label(samples: &[f64]) -> f64 {
    (samples.iter().sum::<f64>() / samples.len() as f64 + 1.0) / 2.0
}

/// `isolated_labels`: labels present in the fewest batches (all labels when every label is in
/// equally many), scored by the mean rescaled silhouette of their cells; mean over them.
pub fn isolated_labels(
    samples: &[f64],
    labels: &[u32],
    n_labels: usize,
    batches: &[u32],
    n_batches: usize,
) -> f64 {
    let mut seen = vec![vec![false; n_batches]; n_labels];
    for (&l, &b) in labels.iter().zip(batches) {
        seen[l as usize][b as usize] = true;
    }
    let batches_per_label: Vec<usize> = seen
        .iter()
        .map(|s| s.iter().filter(|&&x| x).count())
        .collect();
    let present: Vec<usize> = (0..n_labels)
        .filter(|&l| batches_per_label[l] > 0)
        .collect();
    let threshold = present
        .iter()
        .map(|&l| batches_per_label[l])
        .min()
        .unwrap_or(0);
    let mut scores = Vec::new();
    for &l in &present {
        if batches_per_label[l] <= threshold {
            let (sum, count) = labels
                .iter()
                .zip(samples)
                .filter(|&(&li, _)| li as usize == l)
                .fold((0.0, 0usize), |(s, c), (_, &v)| {
                    (s + (v + 1.0) / 2.0, c + 1)
                });
            scores.push(sum / count as f64);
        }
    }
    scores.iter().sum::<f64>() / scores.len().max(1) as f64
}

/// `bras`: within every label with more than one batch (and fewer batches than cells), the
/// cosine silhouette of the batches with the mean distance to all other batches' cells,
/// scored 1 - |s|; mean per label, then mean over labels.
pub fn bras(x: &[f32], d: usize, labels: &[u32], n_labels: usize, batches: &[u32]) -> f64 {
    let mut per_label = Vec::new();
    for l in 0..n_labels as u32 {
        let cells: Vec<usize> = (0..labels.len()).filter(|&i| labels[i] == l).collect();
        // Batches renumbered to those present in this label (pd.Categorical of the subset).
        let mut present: Vec<u32> = cells.iter().map(|&i| batches[i]).collect();
        present.sort_unstable();
        present.dedup();
        if present.len() <= 1 || present.len() == cells.len() {
            continue;
        }
        let sub_x: Vec<f32> = cells
            .iter()
            .flat_map(|&i| x[i * d..(i + 1) * d].iter().copied())
            .collect();
        let sub_b: Vec<u32> = cells
            .iter()
            .map(|&i| present.binary_search(&batches[i]).expect("present batch") as u32)
            .collect();
        let s = silhouette_samples_with(
            &sub_x,
            d,
            &sub_b,
            present.len(),
            Between::MeanOther,
            Metric::Cosine,
        );
        per_label.push(s.iter().map(|v| 1.0 - v.abs()).sum::<f64>() / s.len() as f64);
    }
    per_label.iter().sum::<f64>() / per_label.len().max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silhouette_matches_hand_computation() {
        // Two clusters on a line: {0, 1} and {4, 6}.
        let x = [0.0f32, 1.0, 4.0, 6.0];
        let s = silhouette_samples(&x, 1, &[0, 0, 1, 1], 2);
        // cell 0: a = 1, b = (4 + 6) / 2 = 5 -> 0.8
        assert!((s[0] - 0.8).abs() < 1e-9);
        // cell 2: a = 2, b = (4 + 3) / 2 = 3.5 -> 1.5 / 3.5
        assert!((s[2] - 1.5 / 3.5).abs() < 1e-9);
        let sl = silhouette_label(&s);
        assert!(sl > 0.5 && sl < 1.0);
    }

    #[test]
    fn bras_is_one_for_identical_batches_and_low_for_split_ones() {
        // One label, two batches, the same two directions in both: mixed.
        let mixed = [1.0f32, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 1.0];
        let v = bras(&mixed, 2, &[0, 0, 0, 0], 1, &[0, 0, 1, 1]);
        // Each cell: intra distance 1, mean distance to the other batch (0 + 1) / 2:
        // s = -0.5, score 1 - |s| = 0.5.
        assert!((v - 0.5).abs() < 1e-6, "{v}");
        // Batches along different directions: separated.
        let split = [1.0f32, 0.0, 1.0, 0.01, 0.0, 1.0, 0.01, 1.0];
        let w = bras(&split, 2, &[0, 0, 0, 0], 1, &[0, 0, 1, 1]);
        assert!(w < 0.1, "{w}");
    }
}
