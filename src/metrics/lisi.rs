//! LISI of scib-metrics 0.5 (`ilisi_knn`, `clisi_knn`) on the 90-neighbour graph: per cell a
//! Gaussian kernel over its neighbours' distances whose bandwidth is bisected to perplexity
//! k / 3 (30), the inverse Simpson index of the neighbour labels under it; the median over
//! cells, scaled to [0, 1].

use rayon::prelude::*;

use super::neighbors::Neighbors;

/// Entropy and probabilities of scib's `_Hbeta` (self masked out).
fn h_beta(dist: &[f64], keep: &[bool], beta: f64, p: &mut [f64]) -> f64 {
    let mut sum = 0.0;
    let mut weighted = 0.0;
    for ((pi, &d), &k) in p.iter_mut().zip(dist).zip(keep) {
        *pi = if k { (-d * beta).exp() } else { 0.0 };
        sum += *pi;
        weighted += d * *pi;
    }
    if sum == 0.0 {
        p.iter_mut().for_each(|v| *v = 0.0);
        return 0.0;
    }
    p.iter_mut().for_each(|v| *v /= sum);
    sum.ln() + beta * weighted / sum
}

/// The neighbour probabilities of one cell (scib's `_compute_simpson_index_cell` up to the
/// label sums): the kernel whose bandwidth is bisected to the perplexity; None where the
/// entropy is 0 (scib's Simpson index -1 there). They do not depend on the labels, so one
/// calibration serves every labelling.
fn neighbour_probabilities(dist: &[f64], keep: &[bool], perplexity: f64) -> Option<Vec<f64>> {
    const TOL: f64 = 1e-5;
    let log_u = perplexity.ln();
    let mut p = vec![0f64; dist.len()];
    let (mut beta, mut betamin, mut betamax) = (1.0f64, f64::NEG_INFINITY, f64::INFINITY);
    let mut h = h_beta(dist, keep, beta, &mut p);
    let mut hdiff = h - log_u;
    let mut tries = 0;
    while hdiff.abs() >= TOL && tries < 50 {
        if hdiff > 0.0 {
            betamin = beta;
            beta = if betamax == f64::INFINITY {
                beta * 2.0
            } else {
                (beta + betamax) / 2.0
            };
        } else {
            betamax = beta;
            beta = if betamin == f64::NEG_INFINITY {
                beta / 2.0
            } else {
                (beta + betamin) / 2.0
            };
        }
        h = h_beta(dist, keep, beta, &mut p);
        hdiff = h - log_u;
        tries += 1;
    }
    if h == 0.0 { None } else { Some(p) }
}

/// Simpson index of one cell's neighbour labels under `p` (-1 without probabilities).
fn simpson(p: Option<&[f64]>, idx: &[u32], labels: &[u32], n_labels: usize) -> f64 {
    let Some(p) = p else {
        return -1.0;
    };
    let mut per_label = vec![0f64; n_labels];
    for (&j, &pi) in idx.iter().zip(p) {
        per_label[labels[j as usize] as usize] += pi;
    }
    per_label.iter().map(|v| v * v).sum()
}

/// LISI (1 / Simpson) of every cell under each labelling in `labellings` (labels, number of
/// labels); perplexity floor(k / 3) as scib's default. Returns one vector per labelling.
pub fn lisi_many(nb: &Neighbors, labellings: &[(&[u32], usize)]) -> Vec<Vec<f64>> {
    let perplexity = (nb.k / 3) as f64;
    let per_cell: Vec<Vec<f64>> = (0..nb.n)
        .into_par_iter()
        .map(|i| {
            let (idx, d) = nb.row(i);
            let dist: Vec<f64> = d.iter().map(|&v| v as f64).collect();
            let keep: Vec<bool> = idx.iter().map(|&j| j as usize != i).collect();
            let p = neighbour_probabilities(&dist, &keep, perplexity);
            labellings
                .iter()
                .map(|&(labels, n_labels)| 1.0 / simpson(p.as_deref(), idx, labels, n_labels))
                .collect()
        })
        .collect();
    (0..labellings.len())
        .map(|l| per_cell.iter().map(|c| c[l]).collect())
        .collect()
}

/// LISI (1 / Simpson) of every cell; perplexity floor(k / 3) as scib's default.
pub fn lisi(nb: &Neighbors, labels: &[u32], n_labels: usize) -> Vec<f64> {
    lisi_many(nb, &[(labels, n_labels)]).remove(0)
}

/// numpy's nanmedian (mean of the two middle values for an even count).
pub fn nanmedian(v: &[f64]) -> f64 {
    let mut s: Vec<f64> = v.iter().copied().filter(|x| !x.is_nan()).collect();
    if s.is_empty() {
        return f64::NAN;
    }
    s.sort_by(f64::total_cmp);
    let m = s.len() / 2;
    if s.len() % 2 == 1 {
        s[m]
    } else {
        (s[m - 1] + s[m]) / 2.0
    }
}

/// `ilisi_knn`: (median LISI of batches - 1) / (batches - 1); 1 = perfectly mixed.
pub fn ilisi(nb: &Neighbors, batches: &[u32], n_batches: usize) -> f64 {
    ilisi_of(&lisi(nb, batches, n_batches), n_batches)
}

/// `clisi_knn`: (labels - median LISI of labels) / (labels - 1); 1 = pure neighbourhoods.
pub fn clisi(nb: &Neighbors, labels: &[u32], n_labels: usize) -> f64 {
    clisi_of(&lisi(nb, labels, n_labels), n_labels)
}

fn clisi_of(lisi: &[f64], n_labels: usize) -> f64 {
    (n_labels as f64 - nanmedian(lisi)) / (n_labels as f64 - 1.0)
}

fn ilisi_of(lisi: &[f64], n_batches: usize) -> f64 {
    (nanmedian(lisi) - 1.0) / (n_batches as f64 - 1.0)
}

/// (`clisi_knn`, `ilisi_knn`) from one calibration of each cell's neighbour kernel.
pub fn clisi_ilisi(
    nb: &Neighbors,
    labels: &[u32],
    n_labels: usize,
    batches: &[u32],
    n_batches: usize,
) -> (f64, f64) {
    let both = lisi_many(nb, &[(labels, n_labels), (batches, n_batches)]);
    (clisi_of(&both[0], n_labels), ilisi_of(&both[1], n_batches))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::neighbors::knn_graph;

    #[test]
    fn lisi_counts_the_effective_number_of_labels() {
        // Points on a grid, labels alternating: neighbourhoods hold both labels evenly.
        let n = 400;
        let x: Vec<f32> = (0..n)
            .flat_map(|i| [(i % 20) as f32, (i / 20) as f32])
            .collect();
        let nb = knn_graph(&x, n, 2, 90);
        let mixed: Vec<u32> = (0..n).map(|i| ((i % 20 + i / 20) % 2) as u32).collect();
        let l = nanmedian(&lisi(&nb, &mixed, 2));
        assert!((l - 2.0).abs() < 0.1, "{l}");
        assert!(ilisi(&nb, &mixed, 2) > 0.9);
        // Left half vs right half: most neighbourhoods are pure.
        let halves: Vec<u32> = (0..n).map(|i| ((i % 20) >= 10) as u32).collect();
        assert!(clisi(&nb, &halves, 2) > 0.9);
        assert!(ilisi(&nb, &halves, 2) < 0.1);
        // One calibration for both labellings gives what two separate ones give.
        let (c, i) = clisi_ilisi(&nb, &halves, 2, &mixed, 2);
        assert_eq!(c, clisi(&nb, &halves, 2));
        assert_eq!(i, ilisi(&nb, &mixed, 2));
    }
}
