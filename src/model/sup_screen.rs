//! Wrong labels in scDREAMER-Sup (issue 22): screening the given labels before training, and
//! flagging the cells whose given label the prediction confidently contradicts.
//!
//! Sup's classifier learns the wrong labels it is given (the encoder moves those cells into the
//! given type), so its own prediction on a labelled cell cannot find them. `--screen-labels`
//! therefore looks at the labels in an embedding that never saw them (the unsupervised model on
//! the same cells): a labelled cell whose nearest labelled neighbours mostly carry another
//! label is trained as unlabelled, and Sup predicts its type like a hidden cell's.

use crate::data::labels::CellLabels;
use crate::metrics::knn_indices;
use crate::model::sup::LabelPrediction;

/// Default `--disagree-threshold` (chosen by measurement, see BENCHMARKS.md "Wrong labels").
pub const DISAGREE_THRESHOLD: f32 = 0.7;

/// Neighbours that vote on a cell's label.
pub const SCREEN_NEIGHBOURS: usize = 15;

/// For every cell: the label most common among its `k` nearest labelled cells (itself left
/// out) in `latent` (`n x d`, row-major) and that label's share of the votes; None for an
/// unlabelled cell or when no other cell is labelled. Ties go to the lowest code.
pub fn neighbour_votes(
    latent: &[f32],
    d: usize,
    labels: &CellLabels,
    k: usize,
) -> Vec<Option<(u32, f32)>> {
    let n = labels.codes.len();
    assert_eq!(
        latent.len(),
        n * d,
        "latent has {} values for {n} x {d}",
        latent.len()
    );
    let labelled: Vec<usize> = (0..n).filter(|&i| labels.codes[i].is_some()).collect();
    let sub: Vec<f32> = labelled
        .iter()
        .flat_map(|&i| latent[i * d..(i + 1) * d].iter().copied())
        .collect();
    let neighbours = knn_indices(&sub, labelled.len(), d, k);
    let mut votes = vec![None; n];
    let mut counts = vec![0usize; labels.categories.len().max(1)];
    for (j, nb) in neighbours.iter().enumerate() {
        if nb.is_empty() {
            continue;
        }
        counts.iter_mut().for_each(|c| *c = 0);
        for &m in nb {
            let code = labels.codes[labelled[m as usize]].expect("labelled");
            counts[code as usize] += 1;
        }
        let (best, &count) = counts
            .iter()
            .enumerate()
            .rev()
            .max_by_key(|&(_, c)| *c)
            .expect("at least one category");
        votes[labelled[j]] = Some((best as u32, count as f32 / nb.len() as f32));
    }
    votes
}

/// The labels with every labelled cell hidden whose neighbours outvote its label (another
/// label holds more than half of the votes), and how many were hidden.
pub fn screen(labels: &CellLabels, votes: &[Option<(u32, f32)>]) -> (CellLabels, usize) {
    let mut hidden = 0;
    let codes = labels
        .codes
        .iter()
        .zip(votes)
        .map(|(&given, vote)| match (given, vote) {
            (Some(g), Some((v, share))) if *v != g && *share > 0.5 => {
                hidden += 1;
                None
            }
            _ => given,
        })
        .collect();
    let screened = CellLabels {
        codes,
        categories: labels.categories.clone(),
    };
    (screened, hidden)
}

/// `obs['scdreamer_label_disagrees']`: the cell has a given label, and the prediction is
/// another type with probability at least `threshold`.
pub fn disagrees(labels: &CellLabels, pred: &LabelPrediction, threshold: f32) -> Vec<bool> {
    labels
        .codes
        .iter()
        .zip(pred.codes.iter().zip(&pred.confidence))
        .map(|(given, (&p, &conf))| given.is_some_and(|g| g != p && conf >= threshold))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(codes: &[Option<u32>]) -> CellLabels {
        CellLabels {
            codes: codes.to_vec(),
            categories: vec!["a".into(), "b".into()],
        }
    }

    #[test]
    fn a_label_its_neighbours_outvote_is_hidden() {
        // Two clusters on a line: 0..4 near 0 (label a, except cell 2 labelled b), 5..9 near 10
        // (label b); cell 10 unlabelled.
        let x: Vec<f32> = (0..11)
            .map(|i| {
                if i < 5 {
                    i as f32 * 0.1
                } else {
                    10.0 + i as f32 * 0.1
                }
            })
            .collect();
        let mut codes: Vec<Option<u32>> = (0..10).map(|i| Some(u32::from(i >= 5))).collect();
        codes[2] = Some(1);
        codes.push(None);
        let l = labels(&codes);
        let votes = neighbour_votes(&x, 1, &l, 3);
        assert_eq!(votes[2], Some((0, 1.0)));
        assert_eq!(votes[7], Some((1, 1.0)));
        assert_eq!(votes[10], None);
        let (s, hidden) = screen(&l, &votes);
        assert_eq!(hidden, 1);
        assert_eq!(s.codes[2], None);
        assert_eq!(s.codes[0], Some(0));
        assert_eq!(s.categories, l.categories);
    }

    #[test]
    fn disagreement_needs_a_label_another_prediction_and_confidence() {
        let l = labels(&[Some(0), Some(0), Some(0), None]);
        let p = LabelPrediction {
            codes: vec![0, 1, 1, 1],
            confidence: vec![0.99, 0.9, 0.6, 0.99],
        };
        assert_eq!(disagrees(&l, &p, 0.7), vec![false, true, false, false]);
    }
}
