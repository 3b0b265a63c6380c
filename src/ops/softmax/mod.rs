//! Row-wise softmax: the tape API, its backward, the kernel contract [`SoftmaxKernels`] (CPU in
//! `cpu.rs`, CUDA in `cuda.rs` launching `softmax.cu`) and the op's tests.

mod cpu;
#[cfg(feature = "cuda")]
mod cuda;

use super::Backend;
use crate::backend::Memory;
use crate::tape::{Params, Saved, Tape, Var};

/// The softmax kernels. Rows are `cols` wide; `cols == 0` does nothing.
pub trait SoftmaxKernels: Memory {
    /// y = softmax(x) over each row of x [n, cols].
    fn softmax_rows(&self, x: &Self::Buf, cols: usize, y: &mut Self::Buf);
    /// dx += y * (dy - rowsum(y * dy)), the backward from the forward's output y.
    fn softmax_rows_bwd(&self, y: &Self::Buf, dy: &Self::Buf, cols: usize, dx: &mut Self::Buf);
}

impl<B: Backend> Tape<B> {
    /// softmax over each row of x [n,c].
    pub fn softmax_rows(&mut self, x: Var) -> Var {
        let (n, c) = self.shape(x);
        let mut out = self.alloc(n * c);
        let cx = self.ctx();
        cx.b.softmax_rows(&cx.val(x), c, &mut out);
        let ng = self.needs_grad(x);
        self.push_op(n, c, out, ng, Saved::of(&[x]), |t, out, s, g, p| {
            t.softmax_bwd(out, g, s.var(0), p)
        })
    }

    fn softmax_bwd(&mut self, out: Var, g: &B::Buf, x: Var, p: &mut Params<B>) {
        let (_, c) = self.shape(x);
        let mut gx = self.grad_take(x, p);
        if let Some(gx) = gx.as_mut() {
            let cx = self.ctx();
            cx.b.softmax_rows_bwd(&cx.val(out), g, c, gx.buf());
        }
        self.grad_put(gx, p);
    }
}

/// Plain f64 reference.
pub fn reference(x: &[f64], cols: usize) -> Vec<f64> {
    x.chunks(cols)
        .flat_map(|r| {
            let s: f64 = r.iter().map(|v| v.exp()).sum();
            r.iter().map(move |v| v.exp() / s)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::gradcheck::{Case, check};
    use crate::ops::parity::{self, download, uniform, upload};

    #[test]
    fn softmax_matches_reference() {
        for (s, &(n, c)) in [(1, 1), (1, 7), (6, 5), (3, 40)].iter().enumerate() {
            check(
                Case::new(s as u64).input(n, c, -3.0, 3.0),
                |t, v| t.softmax_rows(v[0]),
                |x| reference(&x[0], c),
            );
        }
    }

    /// Both kernels at widths below, at and above one block (256 threads), and an empty row
    /// width; the backward adds into a non-zero gradient.
    struct Softmax;
    impl parity::Kernels for Softmax {
        fn run<B: Backend>(&self, b: &B) -> Vec<(String, Vec<f32>)> {
            let mut out = Vec::new();
            for (k, &(rows, cols)) in [(5, 3), (4, 256), (3, 700), (2, 0)].iter().enumerate() {
                let n = rows * cols;
                let x = upload(b, &uniform(k as u64, n, -6.0, 6.0));
                let dy = upload(b, &uniform(10 + k as u64, n, -1.0, 1.0));
                let mut y = b.alloc(n);
                b.softmax_rows(&x, cols, &mut y);
                let mut dx = upload(b, &uniform(20 + k as u64, n, -1.0, 1.0));
                b.softmax_rows_bwd(&y, &dy, cols, &mut dx);
                out.push((format!("softmax_rows {rows}x{cols}"), download(b, &y)));
                out.push((format!("softmax_rows_bwd {rows}x{cols}"), download(b, &dx)));
            }
            out
        }
    }

    #[test]
    fn cuda_kernels_match_the_cpu() {
        parity::check("ops::softmax", &Softmax, 1e-5, 1e-6);
    }
}
