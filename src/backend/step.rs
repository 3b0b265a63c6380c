//! Kernels of the device-resident training step: minibatch gathers, the training log's
//! device accumulators, global-norm clipping and the fused multi-tensor Adam update.

use super::{AdamStep, AdamTensor, Labelled, Memory};

/// The training step's kernels (see the module docs).
pub trait StepKernels: Memory {
    // ---- the device-resident training step ------------------------------------------------
    /// out[i] = table[idx[i]] for i < n (a minibatch's batch codes from the per-cell table).
    fn gather_idx(
        &self,
        table: &Self::IdxBuf,
        idx: &Self::IdxBuf,
        n: usize,
        out: &mut Self::IdxBuf,
    );
    /// out[i] = table[idx[i]] for i < n (a minibatch's library sizes).
    fn gather_values(&self, table: &Self::Buf, idx: &Self::IdxBuf, n: usize, out: &mut Self::Buf);
    /// A minibatch's labels from the per-cell codes (`UNLABELLED` for none) and label-loss
    /// weights (0 for an unlabelled cell), in one pass: labels[i] = codes[idx[i]] (0 when
    /// unlabelled), mask[i] = weights[idx[i]]. `weights` is the only source of the mask.
    fn gather_labels(
        &self,
        codes: &Self::IdxBuf,
        weights: &Self::Buf,
        idx: &Self::IdxBuf,
        n: usize,
        labels: &mut Self::IdxBuf,
        mask: &mut Self::Buf,
    );
    /// acc[slot] += x[0] as f64 for each (slot, x): 1x1 loss values into the running sums.
    fn acc_values(&self, acc: &mut Self::AccBuf, values: &[(usize, &Self::Buf)]);
    /// acc[slot] += (number of i with a[i] > b[i]) / n, as f64 (n = a's length).
    fn acc_greater_frac(&self, acc: &mut Self::AccBuf, slot: usize, a: &Self::Buf, b: &Self::Buf);
    /// acc[slot] += hits / counted, as f64, over the rows of logits [rows, cols] whose mask is
    /// non-zero (every row without a mask; nothing when no row counts): a hit is a row whose
    /// last maximum (in `f32::total_cmp` order) is at its label.
    fn acc_argmax_hits(&self, acc: &mut Self::AccBuf, slot: usize, l: &Labelled<'_, Self>);
    /// Queue x's sum of squares in f64 (the same value as `sq_norm`) for
    /// [`StepKernels::sq_norm_flush`]: a backend whose buffers are host memory sums it at once, a
    /// GPU notes the tensor and the flush sums every queued tensor in two launches, adding
    /// their sums in queue order.
    fn sq_norm_queue(&self, table: &mut Self::TensorTable, x: &Self::Buf);
    /// Add the queued tensors' sums of squares to `acc[slot]`.
    ///
    /// # Safety
    /// Every buffer queued since the last flush must still be allocated.
    unsafe fn sq_norm_flush(
        &self,
        table: &mut Self::TensorTable,
        acc: &mut Self::AccBuf,
        slot: usize,
    );
    /// out[0] = clip / (sqrt(acc[slot]) + 1e-6) when sqrt(acc[slot]) > clip, else 1: the
    /// global-norm clipping factor, computed where the norm is.
    fn clip_scale(&self, acc: &Self::AccBuf, slot: usize, clip: f32, out: &mut Self::Buf);

    // ---- optimiser ----------------------------------------------------------------------
    /// Queue the fused Adam/AdamW update of one tensor (param, its grad, first and second
    /// moments) for [`StepKernels::adam_flush`]: a backend whose buffers are host memory updates it
    /// at once, a GPU notes the tensor and the flush updates every queued tensor in one launch.
    /// With `grad_scale`, its one value replaces `s.grad_scale` (read on the device).
    fn adam_queue(
        &self,
        table: &mut Self::TensorTable,
        s: AdamStep,
        t: AdamTensor<'_, Self::Buf>,
        grad_scale: Option<&Self::Buf>,
    );
    /// Run the queued updates (`s` and `grad_scale` as given to every queued tensor).
    ///
    /// # Safety
    /// Every buffer queued since the last flush must still be allocated.
    unsafe fn adam_flush(
        &self,
        table: &mut Self::TensorTable,
        s: AdamStep,
        grad_scale: Option<&Self::Buf>,
    );
}
