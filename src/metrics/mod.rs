//! Integration metrics computed in Rust: the 15-NN label purity and batch entropy used by the
//! tests, and the scib-metrics 0.5 Benchmarker metrics behind `scdreamer evaluate`
//! (`scib::score_embedding`), one file per metric family.

pub mod clustering;
pub mod distance;
pub mod eigen;
pub mod graph;
pub mod jax_random;
pub mod kbet;
pub mod knn;
pub mod knn_silhouette;
pub mod lisi;
pub mod neighbors;
pub mod pcr;
pub mod scib;
pub mod silhouette;
pub use knn::knn_indices;

/// Mean over cells of the fraction of its k nearest neighbours (self excluded) with the same
/// label. 1.0 = every neighbourhood is pure.
pub fn knn_label_purity(neighbours: &[Vec<u32>], labels: &[u32]) -> f64 {
    let mut total = 0.0;
    for (i, nb) in neighbours.iter().enumerate() {
        let same = nb
            .iter()
            .filter(|&&j| labels[j as usize] == labels[i])
            .count();
        total += same as f64 / nb.len().max(1) as f64;
    }
    total / neighbours.len().max(1) as f64
}

/// Mean over cells of the Shannon entropy of batch labels among its k nearest neighbours,
/// divided by ln(n_batches): 1.0 = perfectly mixed neighbourhoods, 0.0 = one batch each.
pub fn knn_batch_entropy(neighbours: &[Vec<u32>], batches: &[u32], n_batches: usize) -> f64 {
    if n_batches < 2 {
        return 0.0;
    }
    let mut counts = vec![0usize; n_batches];
    let mut total = 0.0;
    for nb in neighbours {
        counts.fill(0);
        for &j in nb {
            counts[batches[j as usize] as usize] += 1;
        }
        let n = nb.len() as f64;
        let h: f64 = counts
            .iter()
            .filter(|&&c| c > 0)
            .map(|&c| {
                let p = c as f64 / n;
                -p * p.ln()
            })
            .sum();
        total += h;
    }
    total / neighbours.len().max(1) as f64 / (n_batches as f64).ln()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn purity_and_entropy_on_known_neighbourhoods() {
        // 4 cells, 2 neighbours each.
        let nb = vec![vec![1, 2], vec![0, 3], vec![3, 0], vec![2, 1]];
        let labels = [0, 0, 1, 1];
        // cell0: [0,1] -> 1/2; cell1: [0,1] -> 1/2; cell2: [1,0] -> 1/2; cell3: [1,0] -> 1/2
        assert!((knn_label_purity(&nb, &labels) - 0.5).abs() < 1e-12);
        let batches = [0, 1, 0, 1];
        // cell0 sees batches {1,0}: entropy ln2 -> normalised 1.
        assert!((knn_batch_entropy(&nb, &batches, 2) - 1.0).abs() < 1e-12);
        let one_batch_each = [0, 0, 1, 1];
        let pure = vec![vec![1, 1], vec![0, 0], vec![3, 3], vec![2, 2]];
        assert_eq!(knn_batch_entropy(&pure, &one_batch_each, 2), 0.0);
    }
}
