//! CSR x dense for the encoder's first layer (input transform applied on the fly), its
//! weight gradient X^T dY without densifying X, and dense minibatch gathers.

use super::Backend;
use crate::backend::InputTransform;
use crate::tape::{CsrData, Function, Indices, Params, Saved, Tape, Var};

impl<B: Backend> Tape<B> {
    /// t(X[rows, :]) x w, with w [n_genes, n_out] -> [rows.len(), n_out]. Gradient flows to
    /// w only (X is data). Panics on a row index outside the matrix or a missing row scale
    /// (programming errors of the caller's minibatch code).
    pub fn csr_matmul<'i>(
        &mut self,
        data: &CsrData<B>,
        rows: impl Into<Indices<'i, B>>,
        t: InputTransform,
        w: Var,
    ) -> Var {
        let rows = rows.into();
        let (wr, n_out) = self.shape(w);
        assert_eq!(
            wr, data.n_cols,
            "csr_matmul: weight has {wr} rows, matrix {} genes",
            data.n_cols
        );
        self.check_rows(data, rows, t);
        let n = rows.len();
        let idx = self.node_idx(rows);
        let mut out = self.alloc(n * n_out);
        let cx = self.ctx();
        cx.b.csr_matmul(&data.buf, idx.buf(), n, t, &cx.val(w), n_out, &mut out);
        let ng = self.needs_grad(w);
        let saved = Saved::of(&[w]).function(Function::Transform(t));
        let v = self.push_op(n, n_out, out, ng, saved, |t, out, s, g, p| {
            let Function::Transform(f) = s.function else {
                unreachable!("csr_matmul saves its transform")
            };
            t.csr_matmul_bwd(out, g, s.var(0), f, p)
        });
        let node = self.node_mut(v);
        if node.needs_grad {
            node.idx = Some(idx);
            node.idx_len = n;
            node.csr = Some(data.buf.clone());
        } else {
            self.give_node_idx(n, idx);
        }
        v
    }

    /// The raw rows X[rows, :] as a dense constant [rows.len(), n_genes] (no gradient).
    pub fn gather_dense<'i>(&mut self, data: &CsrData<B>, rows: impl Into<Indices<'i, B>>) -> Var {
        self.gather_dense_t(data, rows, InputTransform::Identity)
    }

    /// t(X[rows, :]) as a dense constant.
    pub fn gather_dense_t<'i>(
        &mut self,
        data: &CsrData<B>,
        rows: impl Into<Indices<'i, B>>,
        t: InputTransform,
    ) -> Var {
        let rows = rows.into();
        self.check_rows(data, rows, t);
        let n = rows.len();
        let idx = self.node_idx(rows);
        let mut out = self.alloc(n * data.n_cols);
        self.backend
            .csr_gather_dense(&data.buf, idx.buf(), n, t, &mut out);
        self.give_node_idx(n, idx);
        self.push_leaf(n, data.n_cols, out)
    }

    fn check_rows(&self, data: &CsrData<B>, rows: Indices<'_, B>, t: InputTransform) {
        if let Some(r) = rows.first_at_or_above(data.n_rows) {
            panic!("csr op: cell index {r} >= {} cells", data.n_rows);
        }
        assert!(
            t != InputTransform::Log1pScaled || data.has_row_scale,
            "csr op: Log1pScaled needs a row scale at CsrData::upload"
        );
    }

    fn csr_matmul_bwd(
        &mut self,
        out: Var,
        g: &B::Buf,
        w: Var,
        t: InputTransform,
        p: &mut Params<B>,
    ) {
        let (n, n_out) = self.shape(out);
        let mut gw = self.grad_take(w, p);
        if let Some(gw) = gw.as_mut() {
            let cx = self.ctx();
            cx.b.csr_matmul_wgrad(cx.csr(out), cx.idx(out), n, t, g, n_out, gw.buf());
        }
        self.grad_put(gw, p);
    }
}

/// Plain f64 reference: dense t(X[rows]) x w.
pub fn reference(
    x: &crate::csr::Csr,
    scale: Option<&[f32]>,
    rows: &[u32],
    t: InputTransform,
    w: &[f64],
    n_out: usize,
) -> Vec<f64> {
    let mut out = vec![0.0; rows.len() * n_out];
    for (b, &r) in rows.iter().enumerate() {
        let (idx, val) = x.row(r as usize);
        let s = scale.map_or(1.0, |s| s[r as usize]) as f64;
        for (&j, &v) in idx.iter().zip(val) {
            let tv = match t {
                InputTransform::Identity => v as f64,
                InputTransform::Log1p => (v as f64).ln_1p(),
                InputTransform::Log1pScaled => (v as f64 * s).ln_1p(),
            };
            for o in 0..n_out {
                out[b * n_out + o] += tv * w[j as usize * n_out + o];
            }
        }
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::backend::cpu::Cpu;
    use crate::csr::Csr;
    use crate::ops::gradcheck::{Case, check};
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// A random count matrix with the given density (values 1..20).
    pub fn random_csr(rows: usize, cols: usize, density: f64, seed: u64) -> Csr {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        crate::sim::uniform::uniform_counts(&mut rng, rows, cols, density, 20)
    }

    #[test]
    fn csr_matmul_matches_reference_and_weight_gradient() {
        let cpu = Cpu::new();
        for (seed, &(n_cells, genes, n_out, batch)) in [
            (30, 17, 5, 7),
            (5, 1, 3, 1),
            (40, 23, 1, 9),
            (12, 31, 9, 12),
            // Register tiles (64 columns) plus a remainder; > 256 stored values per row.
            (20, 700, 70, 5),
            // > 256 batch entries per gene in the weight gradient, two full tiles.
            (50, 9, 128, 300),
        ]
        .iter()
        .enumerate()
        {
            let density = if genes > 500 { 0.5 } else { 0.3 };
            let x = random_csr(n_cells, genes, density, seed as u64);
            let scale: Vec<f32> = (0..n_cells).map(|i| 0.5 + i as f32 * 0.1).collect();
            let data = CsrData::upload(&cpu, &x, Some(&scale)).unwrap();
            // Repeated rows test that the weight gradient sums every occurrence.
            let mut rng = ChaCha8Rng::seed_from_u64(seed as u64);
            let rows: Vec<u32> = (0..batch)
                .map(|_| rng.gen_range(0..n_cells as u32))
                .collect();
            for t in [
                InputTransform::Identity,
                InputTransform::Log1p,
                InputTransform::Log1pScaled,
            ] {
                check(
                    Case::new(seed as u64)
                        .input(genes, n_out, -1.0, 1.0)
                        .samples(60),
                    |tape, v| tape.csr_matmul(&data, &rows, t, v[0]),
                    |w| reference(&x, Some(&scale), &rows, t, &w[0], n_out),
                );
            }
        }
    }

    #[test]
    fn gather_dense_equals_host_gather() {
        let cpu = Cpu::new();
        let x = random_csr(9, 13, 0.4, 2);
        let data = CsrData::upload(&cpu, &x, None).unwrap();
        let mut tape = Tape::new(cpu);
        let rows = [3u32, 0, 8, 3];
        let v = tape.gather_dense(&data, &rows);
        let mut want = vec![0.0; 4 * 13];
        x.gather_dense(&[3, 0, 8, 3], &mut want);
        assert_eq!(tape.to_host(v), want);
        let l = tape.gather_dense_t(&data, &rows, InputTransform::Log1p);
        let want_l: Vec<f32> = want.iter().map(|v| v.ln_1p()).collect();
        assert_eq!(tape.to_host(l), want_l);
    }

    #[test]
    fn upload_rejects_bad_matrices() {
        let cpu = Cpu::new();
        let mut x = random_csr(4, 5, 0.5, 1);
        assert!(CsrData::upload(&cpu, &x, Some(&[1.0; 3])).is_err());
        x.indices[0] = 9;
        let e = CsrData::upload(&cpu, &x, None).err().unwrap().to_string();
        assert!(e.contains("column index 9"), "{e}");
    }

    #[test]
    fn weight_gradient_is_deterministic() {
        let cpu = Cpu::new();
        let x = random_csr(300, 200, 0.2, 4);
        let data = CsrData::upload(&cpu, &x, None).unwrap();
        let rows: Vec<u32> = (0..256).map(|i| (i * 7 % 300) as u32).collect();
        let run = || {
            let mut params = Params::new(cpu.clone());
            let g = params.group("g");
            let mut rng = ChaCha8Rng::seed_from_u64(1);
            let w = params.add(g, "w", 200, 64, crate::tape::Init::GlorotUniform, &mut rng);
            let mut tape = Tape::new(cpu.clone());
            let wv = tape.param(&params, w);
            let y = tape.csr_matmul(&data, &rows, InputTransform::Log1p, wv);
            let y2 = tape.square(y);
            let l = tape.sum(y2);
            tape.backward(l, &mut params);
            params.grad_to_host(w)
        };
        let a = run();
        for _ in 0..3 {
            assert!(a.iter().zip(run()).all(|(x, y)| x.to_bits() == y.to_bits()));
        }
    }
}
