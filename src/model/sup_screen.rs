//! Wrong labels in scDREAMER-Sup (issue 22): screening the given labels before training, and
//! flagging the cells whose given label the prediction confidently contradicts.
//!
//! Sup's classifier learns the wrong labels it is given (the encoder moves those cells into the
//! given type), so its own prediction on a labelled cell cannot find them. `--screen-labels`
//! therefore looks at the labels in an embedding that never saw them (the unsupervised model on
//! the same cells): a labelled cell whose nearest labelled neighbours mostly carry another
//! label is trained as unlabelled, and Sup predicts its type like a hidden cell's, unless its
//! own label is enriched among those neighbours (a rare type's cells sit among a large type's
//! there, and a majority vote alone hid most of their correct labels).

use crate::data::labels::CellLabels;
use crate::metrics::knn_indices;
use crate::model::sup::LabelPrediction;

/// Default `--disagree-threshold`: with Sup's generalized cross-entropy, whose predictions are
/// less confident than the cross-entropy's (0.7 was chosen with it), 0.5 gave the best F1 of
/// the flags' precision and recall on all seven wrong-label datasets (BENCHMARKS.md, "Wrong
/// labels: a generalized cross-entropy").
pub const DISAGREE_THRESHOLD: f32 = 0.5;

/// Neighbours that vote on a cell's label.
pub const SCREEN_NEIGHBOURS: usize = 15;

/// An outvoted label is kept when its share of the cell's neighbours is at least this many
/// times its share of all given labels: a correct label of a rare type (1% of the labels) then
/// survives with one vote of 15 among a large type's cells, while a wrong label, scattered at
/// random, is about as common around the cell as anywhere (BENCHMARKS.md, "--screen-labels
/// spares enriched labels").
pub const SCREEN_ENRICHMENT: f32 = 3.0;

/// One labelled cell's neighbour vote.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Vote {
    /// The label most common among the neighbours (ties to the lowest code) and its share.
    pub best: u32,
    pub share: f32,
    /// The share of the neighbours that carry the cell's own label.
    pub own_share: f32,
}

/// For every cell: the vote of its `k` nearest labelled cells (itself left out) in `latent`
/// (`n x d`, row-major); None for an unlabelled cell or when no other cell is labelled.
pub fn neighbour_votes(
    latent: &[f32],
    d: usize,
    labels: &CellLabels,
    k: usize,
) -> Vec<Option<Vote>> {
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
        let own = labels.codes[labelled[j]].expect("labelled") as usize;
        let k = nb.len() as f32;
        votes[labelled[j]] = Some(Vote {
            best: best as u32,
            share: count as f32 / k,
            own_share: counts[own] as f32 / k,
        });
    }
    votes
}

/// The labels with every labelled cell hidden whose neighbours outvote its label (another
/// label holds more than half of the votes) unless its label is enriched there (its share of
/// the neighbours >= `enrichment` x its share of all given labels), and how many were hidden.
pub fn screen(labels: &CellLabels, votes: &[Option<Vote>], enrichment: f32) -> (CellLabels, usize) {
    let per_type = labels.labelled_per_type();
    let n_labelled = per_type.iter().sum::<usize>().max(1) as f32;
    let mut hidden = 0;
    let codes = labels
        .codes
        .iter()
        .zip(votes)
        .map(|(&given, vote)| match (given, vote) {
            (Some(g), Some(v))
                if v.best != g
                    && v.share > 0.5
                    && v.own_share < enrichment * per_type[g as usize] as f32 / n_labelled =>
            {
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
        let vote = |best, share, own_share| {
            Some(Vote {
                best,
                share,
                own_share,
            })
        };
        assert_eq!(votes[2], vote(0, 1.0, 0.0));
        assert_eq!(votes[7], vote(1, 1.0, 1.0));
        assert_eq!(votes[10], None);
        let (s, hidden) = screen(&l, &votes, SCREEN_ENRICHMENT);
        assert_eq!(hidden, 1);
        assert_eq!(s.codes[2], None);
        assert_eq!(s.codes[0], Some(0));
        assert_eq!(s.categories, l.categories);
    }

    #[test]
    fn an_outvoted_label_enriched_among_its_neighbours_is_kept() {
        // 40 cells of type a on a line, with a rare type b (2 of 40 labels, 5%) among them:
        // cells 10 and 11 (at 10 and 10.4; cells 9 and 12 moved to 8.7 and 12.5 so that no a
        // cell has two b neighbours and no neighbour ties).
        // Each b cell's 3 neighbours hold one b (33%, 6.7x its share): kept at enrichment 3,
        // hidden by the majority vote alone (infinite enrichment). A lone b label (cell 30, wrong)
        // has no b neighbour: hidden either way.
        let mut x: Vec<f32> = (0..40).map(|i| i as f32).collect();
        x[9] = 8.7;
        x[11] = 10.4;
        x[12] = 12.5;
        let mut codes: Vec<Option<u32>> = vec![Some(0); 40];
        codes[10] = Some(1);
        codes[11] = Some(1);
        let l = labels(&codes);
        let votes = neighbour_votes(&x, 1, &l, 3);
        assert_eq!(votes[10].unwrap().best, 0);
        assert!((votes[10].unwrap().own_share - 1.0 / 3.0).abs() < 1e-6);
        let (kept, hidden) = screen(&l, &votes, SCREEN_ENRICHMENT);
        assert_eq!(
            (kept.codes[10], kept.codes[11], hidden),
            (Some(1), Some(1), 0)
        );
        let (majority, hidden) = screen(&l, &votes, f32::INFINITY);
        assert_eq!(
            (majority.codes[10], majority.codes[11], hidden),
            (None, None, 2)
        );

        codes[11] = Some(0);
        codes[30] = Some(1);
        let l = labels(&codes);
        let votes = neighbour_votes(&x, 1, &l, 3);
        let (s, hidden) = screen(&l, &votes, SCREEN_ENRICHMENT);
        assert_eq!((s.codes[10], s.codes[30], hidden), (None, None, 2));
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
