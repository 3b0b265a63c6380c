//! CPU kernels of the device-resident training step: minibatch gathers from per-cell tables and
//! the running sums of the training log. They are the reference the CUDA kernels
//! (`kernels/step.cu`) are checked against, and they reproduce bit for bit what the host
//! computed before the step moved to the device (same f64 sums, same argmax tie rule).

use crate::backend::UNLABELLED;

/// out[i] = table[idx[i]].
pub fn gather<T: Copy>(table: &[T], idx: &[u32], out: &mut [T]) {
    for (o, &i) in out.iter_mut().zip(idx) {
        *o = table[i as usize];
    }
}

/// Labels (0 when unlabelled) and the cells' label-loss weights as the mask (`weights` is 0
/// for an unlabelled cell).
pub fn gather_labels(
    codes: &[u32],
    weights: &[f32],
    idx: &[u32],
    labels: &mut [u32],
    mask: &mut [f32],
) {
    for ((l, m), &i) in labels.iter_mut().zip(mask.iter_mut()).zip(idx) {
        let code = codes[i as usize];
        *l = if code == UNLABELLED { 0 } else { code };
        *m = weights[i as usize];
    }
}

/// Share of positions where a > b.
pub fn greater_frac(a: &[f32], b: &[f32]) -> f64 {
    let wins = a.iter().zip(b).filter(|(x, y)| x > y).count();
    wins as f64 / a.len().max(1) as f64
}

/// Index of the last maximum of a row in `total_cmp` order (`Iterator::max_by`'s tie rule).
pub fn argmax(row: &[f32]) -> usize {
    row.iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map_or(0, |(j, _)| j)
}

/// (hits / counted rows) of the rows with a non-zero mask (all rows without one); None when no
/// row counts.
pub fn argmax_hit_frac(
    logits: &[f32],
    labels: &[u32],
    mask: Option<&[f32]>,
    cols: usize,
) -> Option<f64> {
    let (mut hits, mut n) = (0usize, 0usize);
    for (i, &l) in labels.iter().enumerate() {
        if mask.is_some_and(|m| m[i] == 0.0) {
            continue;
        }
        n += 1;
        hits += (argmax(&logits[i * cols..(i + 1) * cols]) == l as usize) as usize;
    }
    (n > 0).then(|| hits as f64 / n as f64)
}

/// The global-norm clipping factor for a squared norm `sq`.
pub fn clip_scale(sq: f64, clip: f32) -> f32 {
    let n = sq.sqrt();
    if n > clip as f64 {
        (clip as f64 / (n + 1e-6)) as f32
    } else {
        1.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argmax_takes_the_last_of_equal_maxima() {
        assert_eq!(argmax(&[1.0, 3.0, 3.0, 2.0]), 2);
        assert_eq!(argmax(&[-0.0, 0.0]), 1);
        assert_eq!(argmax(&[0.0, -0.0]), 0);
        assert_eq!(argmax(&[]), 0);
    }

    #[test]
    fn hit_frac_counts_only_masked_rows() {
        let logits = [0.0, 1.0, 5.0, 1.0, 0.0, 9.0];
        let labels = [1, 1, 0];
        assert_eq!(argmax_hit_frac(&logits, &labels, None, 2), Some(1.0 / 3.0));
        let mask = [1.0, 0.0, 1.0];
        assert_eq!(argmax_hit_frac(&logits, &labels, Some(&mask), 2), Some(0.5));
        assert_eq!(argmax_hit_frac(&logits, &labels, Some(&[0.0; 3]), 2), None);
    }

    #[test]
    fn labels_gather_codes_and_weights() {
        let table = [2, UNLABELLED, 0];
        let (mut l, mut m) = ([9; 4], [9.0; 4]);
        gather_labels(&table, &[0.5, 0.0, 2.0], &[1, 0, 2, 1], &mut l, &mut m);
        assert_eq!(l, [0, 2, 0, 0]);
        assert_eq!(m, [0.0, 0.5, 2.0, 0.0]);
    }

    #[test]
    fn clip_scale_is_one_below_the_threshold() {
        assert_eq!(clip_scale(4.0, 3.0), 1.0);
        assert_eq!(clip_scale(16.0, 2.0), (2.0f64 / (4.0 + 1e-6)) as f32);
        assert_eq!(clip_scale(0.0, 1.0), 1.0);
    }
}
