//! Running sums of the training log on the device: the step adds its loss values and
//! accuracies into an f64 accumulator (`Backend::AccBuf`) that the trainer reads once in a
//! while, instead of copying each value to the host every step. No gradients.

use super::Backend;
use crate::backend::Labelled;
use crate::tape::{DeviceIndices, Tape, Var};

impl<B: Backend> Tape<B> {
    /// acc[slot] += v for each (slot, v), every v a 1x1 value.
    pub fn accumulate(&mut self, acc: &mut B::AccBuf, values: &[(usize, Var)]) {
        for &(_, v) in values {
            assert_eq!(self.shape(v), (1, 1), "accumulate: a non-1x1 value");
        }
        let cx = self.ctx();
        let vals: Vec<_> = values.iter().map(|&(_, v)| cx.val(v)).collect();
        let pairs: Vec<(usize, &B::Buf)> = values
            .iter()
            .zip(&vals)
            .map(|(&(slot, _), b)| (slot, &**b))
            .collect();
        cx.b.acc_values(acc, &pairs);
    }

    /// acc[slot] += the share of rows where a > b (a, b [n,1]).
    pub fn accumulate_greater_frac(&mut self, acc: &mut B::AccBuf, slot: usize, a: Var, b: Var) {
        assert_eq!(
            self.shape(a),
            self.shape(b),
            "accumulate_greater_frac: shapes"
        );
        let cx = self.ctx();
        cx.b.acc_greater_frac(acc, slot, &cx.val(a), &cx.val(b));
    }

    /// acc[slot] += the share of counted rows (mask non-zero; all without a mask) whose argmax
    /// of `logits` [n,C] is the label; nothing when no row counts.
    pub fn accumulate_argmax_hits(
        &mut self,
        acc: &mut B::AccBuf,
        slot: usize,
        logits: Var,
        labels: &DeviceIndices<B>,
        mask: Option<&B::Buf>,
    ) {
        let (n, c) = self.shape(logits);
        assert_eq!(
            labels.len(),
            n,
            "accumulate_argmax_hits: {} labels",
            labels.len()
        );
        let cx = self.ctx();
        let lv = cx.val(logits);
        let l = Labelled {
            logits: &*lv,
            labels: labels.buf(),
            mask,
            rows: n,
            cols: c,
            gce_q: 0.0,
        };
        cx.b.acc_argmax_hits(acc, slot, &l);
    }
}

#[cfg(test)]
mod tests {
    use crate::backend::cpu::Cpu;
    use crate::ops::prelude::*;
    use crate::tape::{DeviceIndices, Tape};

    #[test]
    fn sums_and_accuracies_add_up_over_steps() {
        let cpu = Cpu::new();
        let mut tape = Tape::new(cpu.clone());
        let mut acc = cpu.alloc_acc(3);
        let labels = DeviceIndices::upload(&cpu, &[1, 0], 2).unwrap();
        for step in 0..2 {
            tape.reset();
            let a = tape.constant(1, 1, &[1.5 + step as f32]);
            let d_real = tape.constant(2, 1, &[0.9, 0.1]);
            let d_fake = tape.constant(2, 1, &[0.2, 0.3]);
            let logits = tape.constant(2, 2, &[0.0, 2.0, 1.0, 1.0]);
            tape.accumulate(&mut acc, &[(0, a)]);
            tape.accumulate_greater_frac(&mut acc, 1, d_real, d_fake);
            tape.accumulate_argmax_hits(&mut acc, 2, logits, &labels, None);
        }
        let mut host = [0.0; 3];
        cpu.download_acc(&acc, &mut host);
        // Row 2's tie (1, 1) goes to the last maximum, column 1, against label 0: a miss.
        assert_eq!(host, [1.5 + 2.5, 0.5 + 0.5, 0.5 + 0.5]);
    }
}
