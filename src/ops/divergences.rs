//! Tape ops of the divergence and classification losses: KL to N(0, I) and between two
//! normals and the (masked) cross-entropy. The forward computes the
//! value; the backward runs the fused value+gradient kernel (`backend::LossKernels`).

use super::Backend;
use super::row_gather::check_index_range;
use crate::backend::Labelled;
use crate::tape::{Indices, Params, Saved, Tape, Var};

impl<B: Backend> Tape<B> {
    /// [n,1]: 0.5 sum_k(-ln clip(var, 1e-4, 1e4) + var + mean^2 - 1).
    pub fn kl_std_normal(&mut self, mean: Var, var: Var) -> Var {
        let (n, k) = self.same_shape("kl_std_normal", mean, &[var]);
        let mut out = self.alloc(n);
        let cx = self.ctx();
        cx.b.kl_std_normal_fwd(&cx.val(mean), &cx.val(var), k, &mut out);
        let ng = self.needs_grad(mean) || self.needs_grad(var);
        self.push_op(n, 1, out, ng, Saved::of(&[mean, var]), |t, _, s, g, p| {
            t.kl_std_bwd(g, s.var(0), s.var(1), p)
        })
    }

    /// The shape (n, k) of `first`, after checking that every var of `rest` has it too.
    fn same_shape(&self, op: &str, first: Var, rest: &[Var]) -> (usize, usize) {
        let (n, k) = self.shape(first);
        for &v in rest {
            assert_eq!(self.shape(v), (n, k), "{op}: all inputs must be {n}x{k}");
        }
        (n, k)
    }

    /// [n,1]: KL(N(m1, v1) || N(m2, v2)) summed over columns (v are variances).
    pub fn kl_normal(&mut self, m1: Var, v1: Var, m2: Var, v2: Var) -> Var {
        let (n, k) = self.same_shape("kl_normal", m1, &[v1, m2, v2]);
        let mut out = self.alloc(n);
        let cx = self.ctx();
        cx.b.kl_normal_fwd(
            [&*cx.val(m1), &*cx.val(v1), &*cx.val(m2), &*cx.val(v2)],
            k,
            &mut out,
        );
        let ng = [m1, v1, m2, v2].iter().any(|&v| self.needs_grad(v));
        let saved = Saved::of(&[m1, v1, m2, v2]);
        self.push_op(n, 1, out, ng, saved, |t, _, s, g, p| {
            t.kl_normal_bwd(g, [s.var(0), s.var(1), s.var(2), s.var(3)], p)
        })
    }

    /// Mean softmax cross-entropy over rows whose mask is non-zero (all rows when None),
    /// weighted by the mask's values (a 0/1 mask: the plain mean over the selected rows);
    /// 0 when no row is used. logits [n,C], labels < C.
    pub fn cross_entropy<'i>(
        &mut self,
        logits: Var,
        labels: impl Into<Indices<'i, B>>,
        mask: Option<&[f32]>,
    ) -> Var {
        let n = self.shape(logits).0;
        let mbuf = mask.map(|m| {
            assert_eq!(
                m.len(),
                n,
                "cross_entropy: mask has {} entries for {n} rows",
                m.len()
            );
            let mut b = self.alloc(n);
            self.backend.upload(m, &mut b);
            b
        });
        self.cross_entropy_with(logits, labels.into(), mbuf, 0.0)
    }

    /// [`Tape::cross_entropy`] with the mask [n] already on the device (gathered there: copied,
    /// not uploaded), and with `gce_q` > 0 the generalized cross-entropy `(1 - p^q) / q` of
    /// each row instead of `-ln p` (0: the cross-entropy).
    pub fn cross_entropy_device_mask<'i>(
        &mut self,
        logits: Var,
        labels: impl Into<Indices<'i, B>>,
        mask: &B::Buf,
        gce_q: f32,
    ) -> Var {
        let n = self.shape(logits).0;
        assert_eq!(
            self.backend.len(mask),
            n,
            "cross_entropy: mask has {} entries for {n} rows",
            self.backend.len(mask)
        );
        let mut b = self.alloc(n);
        self.backend.copy(mask, &mut b);
        self.cross_entropy_with(logits, labels.into(), Some(b), gce_q)
    }

    fn cross_entropy_with(
        &mut self,
        logits: Var,
        labels: Indices<'_, B>,
        mbuf: Option<B::Buf>,
        gce_q: f32,
    ) -> Var {
        assert!(
            (0.0..=1.0).contains(&gce_q),
            "cross_entropy: generalized cross-entropy q {gce_q} is not in [0, 1]"
        );
        let (n, c) = self.shape(logits);
        check_index_range(
            &labels,
            n,
            c,
            ["cross_entropy", "labels", "label", "classes"],
        );
        let idx = self.node_idx(labels);
        let mut out = self.alloc(1);
        let cx = self.ctx();
        let lv = cx.val(logits);
        let l = Labelled {
            logits: &*lv,
            labels: idx.buf(),
            mask: mbuf.as_ref(),
            rows: n,
            cols: c,
            gce_q,
        };
        cx.b.cross_entropy_fwd(&l, &mut out);
        drop(lv);
        let ng = self.needs_grad(logits);
        let saved = Saved::of(&[logits])
            .flags(mbuf.is_some() as u32)
            .scalars([gce_q, 0.0]);
        let v = self.push_op(1, 1, out, ng, saved, |t, out, s, g, p| {
            t.cross_entropy_bwd(out, g, s.var(0), s.flag(0), s.scalars[0], p)
        });
        let node = self.node_mut(v);
        node.idx = Some(idx);
        node.idx_len = n;
        node.aux[0] = mbuf;
        v
    }

    fn kl_std_bwd(&mut self, g: &B::Buf, mean: Var, var: Var, p: &mut Params<B>) {
        let (n, k) = self.shape(mean);
        let mut gm = self.grad_take(mean, p);
        let mut gv = self.grad_take(var, p);
        let mut tm = self.overwrite_target(&mut gm, n * k);
        let mut tv = self.overwrite_target(&mut gv, n * k);
        let cx = self.ctx();
        cx.b.kl_std_normal_bwd(&cx.val(mean), &cx.val(var), k, g, &mut tm, &mut tv);
        self.overwrite_finish(&mut gm, tm);
        self.overwrite_finish(&mut gv, tv);
        self.grad_put(gm, p);
        self.grad_put(gv, p);
    }

    fn kl_normal_bwd(&mut self, g: &B::Buf, v: [Var; 4], p: &mut Params<B>) {
        let (n, k) = self.shape(v[0]);
        let mut gs = v.map(|x| self.grad_take(x, p));
        let [g0, g1, g2, g3] = &mut gs;
        let mut t0 = self.overwrite_target(g0, n * k);
        let mut t1 = self.overwrite_target(g1, n * k);
        let mut t2 = self.overwrite_target(g2, n * k);
        let mut t3 = self.overwrite_target(g3, n * k);
        let cx = self.ctx();
        let (a, b, c, d) = (cx.val(v[0]), cx.val(v[1]), cx.val(v[2]), cx.val(v[3]));
        let grads = [&mut t0, &mut t1, &mut t2, &mut t3];
        cx.b.kl_normal_bwd([&*a, &*b, &*c, &*d], k, g, grads);
        drop((a, b, c, d));
        self.overwrite_finish(g0, t0);
        self.overwrite_finish(g1, t1);
        self.overwrite_finish(g2, t2);
        self.overwrite_finish(g3, t3);
        for x in gs {
            self.grad_put(x, p);
        }
    }

    fn cross_entropy_bwd(
        &mut self,
        out: Var,
        g: &B::Buf,
        logits: Var,
        masked: bool,
        gce_q: f32,
        p: &mut Params<B>,
    ) {
        let (n, c) = self.shape(logits);
        let mut gl = self.grad_take(logits, p);
        let mut tl = self.overwrite_target(&mut gl, n * c);
        let cx = self.ctx();
        let mask = if masked { Some(cx.aux(out)) } else { None };
        let lv = cx.val(logits);
        let l = Labelled {
            logits: &*lv,
            labels: cx.idx(out),
            mask,
            rows: n,
            cols: c,
            gce_q,
        };
        cx.b.cross_entropy_bwd(&l, g, &mut tl);
        drop(lv);
        self.overwrite_finish(&mut gl, tl);
        self.grad_put(gl, p);
    }
}

#[cfg(test)]
mod tests {
    use crate::ops::gradcheck::{Case, check};

    #[test]
    fn kl_terms_match_reference() {
        for (s, &(n, k)) in [(1, 1), (1, 10), (6, 3)].iter().enumerate() {
            check(
                Case::new(s as u64)
                    .input(n, k, -2.0, 2.0)
                    .input(n, k, 0.05, 3.0),
                |t, v| t.kl_std_normal(v[0], v[1]),
                |p| {
                    (0..n)
                        .map(|r| {
                            (r * k..(r + 1) * k)
                                .map(|i| {
                                    0.5 * (-p[1][i].clamp(1e-4, 1e4).ln()
                                        + p[1][i]
                                        + p[0][i].powi(2)
                                        - 1.0)
                                })
                                .sum()
                        })
                        .collect()
                },
            );
            check(
                Case::new(s as u64)
                    .input(n, k, -2.0, 2.0)
                    .input(n, k, 0.1, 3.0)
                    .input(n, k, -2.0, 2.0)
                    .input(n, k, 0.1, 3.0),
                |t, v| t.kl_normal(v[0], v[1], v[2], v[3]),
                |p| {
                    (0..n)
                        .map(|r| {
                            (r * k..(r + 1) * k)
                                .map(|i| {
                                    let d = p[0][i] - p[2][i];
                                    0.5 * (p[3][i].ln() - p[1][i].ln()
                                        + (p[1][i] + d * d) / p[3][i]
                                        - 1.0)
                                })
                                .sum()
                        })
                        .collect()
                },
            );
        }
    }

    #[test]
    fn cross_entropy_matches_reference_with_mask() {
        for (s, &(n, c)) in [(1, 1), (1, 4), (8, 3), (5, 6)].iter().enumerate() {
            let labels: Vec<u32> = (0..n).map(|i| ((i * 7 + s) % c) as u32).collect();
            let mask: Vec<f32> = (0..n).map(|i| if i % 3 == 1 { 0.0 } else { 1.0 }).collect();
            // Sup's balanced label loss: the mask holds per-row weights.
            let weights: Vec<f32> = (0..n).map(|i| [0.5, 0.0, 2.0, 1.0][i % 4]).collect();
            let ce = |p: &[Vec<f64>], m: &[f32]| {
                let used: f64 = m.iter().map(|&v| v as f64).sum();
                let mut tot = 0.0;
                for r in 0..n {
                    let row = &p[0][r * c..(r + 1) * c];
                    let lse = row.iter().map(|v| v.exp()).sum::<f64>().ln();
                    tot += m[r] as f64 * (lse - row[labels[r] as usize]);
                }
                vec![if used > 0.0 { tot / used } else { 0.0 }]
            };
            check(
                Case::new(s as u64).input(n, c, -3.0, 3.0),
                |t, v| t.cross_entropy(v[0], &labels, Some(&weights)),
                |p| ce(p, &weights),
            );
            check(
                Case::new(s as u64).input(n, c, -3.0, 3.0),
                |t, v| t.cross_entropy(v[0], &labels, Some(&mask)),
                |p| ce(p, &mask),
            );
            check(
                Case::new(s as u64).input(n, c, -3.0, 3.0),
                |t, v| t.cross_entropy(v[0], &labels, None),
                |p| ce(p, &vec![1.0; n]),
            );
        }
    }

    #[test]
    fn cross_entropy_with_no_used_row_is_zero() {
        let zeros = vec![0.0f32; 3];
        check(
            Case::new(1).input(3, 4, -3.0, 3.0),
            |t, v| t.cross_entropy(v[0], &[0, 1, 2], Some(&zeros)),
            |_| vec![0.0],
        );
    }
}
