//! Batch covariates as a row gather-add: h[i,:] += table[idx[i],:]. Equivalent to
//! concatenating a one-hot of idx to the layer input, without a dense one-hot matmul.

use super::Backend;
use crate::backend::Memory;
use crate::tape::{Indices, Params, Saved, Tape, Var};

/// Panics unless there is one index per row (`rows`) and each is below `bound`. `words`: the
/// op, the indices (plural and singular) and what `bound` counts, for the messages.
pub(super) fn check_index_range<B: Memory>(
    idx: &Indices<'_, B>,
    rows: usize,
    bound: usize,
    words: [&str; 4],
) {
    let [op, plural, singular, of] = words;
    assert_eq!(
        idx.len(),
        rows,
        "{op}: {} {plural} for {rows} rows",
        idx.len()
    );
    if let Some(i) = idx.first_at_or_above(bound) {
        panic!("{op}: {singular} {i} >= {bound} {of}");
    }
}

impl<B: Backend> Tape<B> {
    /// x [n,c] plus rows of table [T,c] picked by idx (len n, each < T).
    pub fn add_row_gather<'i>(
        &mut self,
        x: Var,
        table: Var,
        idx: impl Into<Indices<'i, B>>,
    ) -> Var {
        let idx = idx.into();
        let (n, c) = self.shape(x);
        let (t_rows, tc) = self.shape(table);
        assert_eq!(tc, c, "add_row_gather: table has {tc} columns, input {c}");
        check_index_range(
            &idx,
            n,
            t_rows,
            ["add_row_gather", "indices", "index", "table rows"],
        );
        let ib = self.node_idx(idx);
        let mut out = self.alloc(n * c);
        let cx = self.ctx();
        cx.b.gather_add_rows(&cx.val(x), &cx.val(table), ib.buf(), c, &mut out);
        let ng = self.needs_grad(x) || self.needs_grad(table);
        let v = self.push_op(n, c, out, ng, Saved::of(&[x, table]), |t, out, s, g, p| {
            t.add_row_gather_bwd(out, g, s.var(0), s.var(1), p)
        });
        let node = self.node_mut(v);
        node.idx = Some(ib);
        node.idx_len = n;
        v
    }

    fn add_row_gather_bwd(&mut self, out: Var, g: &B::Buf, x: Var, table: Var, p: &mut Params<B>) {
        let (_, c) = self.shape(out);
        let mut gx = self.grad_take(x, p);
        let mut gt = self.grad_take(table, p);
        let cx = self.ctx();
        if let Some(gx) = gx.as_mut() {
            cx.b.axpy(1.0, g, gx.buf());
        }
        if let Some(gt) = gt.as_mut() {
            cx.b.scatter_add_rows(g, cx.idx(out), c, gt.buf());
        }
        self.grad_put(gx, p);
        self.grad_put(gt, p);
    }
}

/// Plain reference: x + onehot(idx) table, written as the dense one-hot product.
pub fn reference(x: &[f64], table: &[f64], idx: &[u32], cols: usize) -> Vec<f64> {
    let t_rows = table.len() / cols;
    let mut out = x.to_vec();
    for (i, &k) in idx.iter().enumerate() {
        for t in 0..t_rows {
            let onehot = if t == k as usize { 1.0 } else { 0.0 };
            for j in 0..cols {
                out[i * cols + j] += onehot * table[t * cols + j];
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::gradcheck::{Case, check};

    #[test]
    fn row_gather_matches_one_hot_product() {
        for (seed, &(n, c, t)) in [(1, 1, 1), (7, 5, 3), (12, 9, 4), (3, 33, 2)]
            .iter()
            .enumerate()
        {
            let idx: Vec<u32> = (0..n).map(|i| ((i * 5 + seed) % t) as u32).collect();
            check(
                Case::new(seed as u64)
                    .input(n, c, -1.0, 1.0)
                    .input(t, c, -1.0, 1.0),
                |tape, v| tape.add_row_gather(v[0], v[1], &idx),
                |x| reference(&x[0], &x[1], &idx, c),
            );
        }
    }
}
