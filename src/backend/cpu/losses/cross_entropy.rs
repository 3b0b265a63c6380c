//! Masked mean softmax cross-entropy: the batch classifier's loss (spec section 3) and the
//! Sup label loss over labelled cells only (spec section 6; the caller applies the 10×).

use super::{LossFloat, check_len};

/// Mean softmax cross-entropy over the rows with `mask[r] != 0` (all rows when `mask` is
/// `None`), each row weighted by `mask[r]` (Sup's balanced label loss; a 0/1 mask gives the
/// plain mean), and `dlogits` = gradient of that mean (zero on masked-out rows). With no row
/// selected the loss is 0 and `dlogits` is all zero, as in S/model.py:121-129.
///
/// `logits`: `[rows*classes]` row-major, `labels`: `[rows]`. The log-sum-exp is shifted by
/// the row max, so huge logits do not overflow. Panics if a length does not match or a
/// selected row's label is `>= classes` (labels come from the data layer's encoder).
pub fn cross_entropy_masked_fwd_bwd<T: LossFloat>(
    logits: &[T],
    labels: &[u32],
    mask: Option<&[T]>,
    rows: usize,
    classes: usize,
    dlogits: &mut [T],
) -> T {
    label_loss_masked_fwd_bwd(logits, labels, mask, rows, classes, 0.0, dlogits)
}

/// [`cross_entropy_masked_fwd_bwd`] with a row's term `-ln p` (p = softmax(logits)[label])
/// replaced by the generalized cross-entropy `(1 - p^q) / q` when `q > 0` (Zhang & Sabuncu
/// 2018; q -> 0 is the cross-entropy). Its gradient is the cross-entropy's times p^q: a row
/// the model finds unlikely (a wrong label, late in training) pulls less, which is what
/// makes it robust to wrong labels.
pub fn label_loss_masked_fwd_bwd<T: LossFloat>(
    logits: &[T],
    labels: &[u32],
    mask: Option<&[T]>,
    rows: usize,
    classes: usize,
    q: f64,
    dlogits: &mut [T],
) -> T {
    check_len("logits", logits.len(), rows * classes);
    check_len("labels", labels.len(), rows);
    check_len("dlogits", dlogits.len(), rows * classes);
    if let Some(mask) = mask {
        check_len("mask", mask.len(), rows);
    }
    let selected = |r: usize| mask.is_none_or(|m| m[r].to_f64() != 0.0);
    // A row's weight is its mask value (1 without a mask); with a 0/1 mask this is the plain
    // mean over the selected rows, bit for bit.
    let weight = |r: usize| mask.map_or(1.0, |m| m[r].to_f64());
    let count: f64 = (0..rows).filter(|&r| selected(r)).map(weight).sum();
    dlogits.iter_mut().for_each(|v| *v = T::from_f64(0.0));
    if count == 0.0 {
        return T::from_f64(0.0);
    }
    let inv_count = 1.0 / count;
    let mut total = 0.0f64;
    for r in (0..rows).filter(|&r| selected(r)) {
        let label = labels[r] as usize;
        assert!(
            label < classes,
            "cross entropy: row {r} has label {label}, only {classes} classes"
        );
        let row = &logits[r * classes..(r + 1) * classes];
        let max = row
            .iter()
            .map(|v| v.to_f64())
            .fold(f64::NEG_INFINITY, f64::max);
        let sum_exp: f64 = row.iter().map(|v| (v.to_f64() - max).exp()).sum();
        let lse = max + sum_exp.ln();
        let nll = lse - row[label].to_f64();
        let (term, slope) = if q > 0.0 {
            // p^q = e^{-q nll}: no underflow of p itself.
            let pq = (-q * nll).exp();
            ((1.0 - pq) / q, pq)
        } else {
            (nll, 1.0)
        };
        let w = weight(r);
        total += w * term;
        let w = w * slope;
        let grad_row = &mut dlogits[r * classes..(r + 1) * classes];
        for (k, (g, v)) in grad_row.iter_mut().zip(row).enumerate() {
            let p = (v.to_f64() - lse).exp();
            let onehot = if k == label { 1.0 } else { 0.0 };
            *g = T::from_f64((p - onehot) * w * inv_count);
        }
    }
    T::from_f64(total * inv_count)
}
