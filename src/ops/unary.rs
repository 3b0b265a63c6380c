//! Elementwise functions: activations, scaling, clamp, lgamma.

use super::Backend;
use crate::backend::Unary;
use crate::tape::{Function, Params, Saved, Tape, Var};

/// One tape method per parameter-free function: `name(x)` is `unary(x, Unary::Variant)`.
macro_rules! unary_fns {
    ($($(#[$doc:meta])* $name:ident => $variant:ident,)*) => {
        $(
            $(#[$doc])*
            pub fn $name(&mut self, x: Var) -> Var {
                self.unary(x, Unary::$variant)
            }
        )*
    };
}

impl<B: Backend> Tape<B> {
    /// y = f(x) elementwise.
    pub fn unary(&mut self, x: Var, f: Unary) -> Var {
        let (r, c) = self.shape(x);
        let mut out = self.alloc(r * c);
        let cx = self.ctx();
        cx.b.unary(f, &cx.val(x), &mut out);
        let ng = self.needs_grad(x);
        let saved = Saved::of(&[x]).function(Function::Unary(f));
        self.push_op(r, c, out, ng, saved, |t, out, s, g, p| {
            let Function::Unary(f) = s.function else {
                unreachable!("unary saves its function")
            };
            t.unary_bwd(out, g, s.var(0), f, p)
        })
    }
    unary_fns! {
        relu => Relu,
        softplus => Softplus,
        sigmoid => Sigmoid,
        exp => Exp,
        /// Natural log (no clipping: use `clamp` first where the input may reach 0).
        log => Log,
        sqrt => Sqrt,
        square => Square,
        /// ln Gamma(x), x > 0.
        lgamma => Lgamma,
    }
    /// max(x, 0) + slope * min(x, 0).
    pub fn leaky_relu(&mut self, x: Var, slope: f32) -> Var {
        self.unary(x, Unary::LeakyRelu(slope))
    }
    /// s * x.
    pub fn scale(&mut self, x: Var, s: f32) -> Var {
        self.unary(x, Unary::Scale(s))
    }
    /// x + s.
    pub fn add_scalar(&mut self, x: Var, s: f32) -> Var {
        self.unary(x, Unary::AddScalar(s))
    }
    /// Clip to [lo, hi]; the gradient is zero outside.
    pub fn clamp(&mut self, x: Var, lo: f32, hi: f32) -> Var {
        self.unary(x, Unary::Clamp(lo, hi))
    }

    fn unary_bwd(&mut self, out: Var, g: &B::Buf, x: Var, f: Unary, p: &mut Params<B>) {
        let mut gx = self.grad_take(x, p);
        if let Some(gx) = gx.as_mut() {
            let cx = self.ctx();
            cx.b.unary_bwd(f, &cx.val(x), &cx.val(out), g, gx.buf());
        }
        self.grad_put(gx, p);
    }
}

/// Plain f64 reference of f.
pub fn reference(f: Unary, x: f64) -> f64 {
    match f {
        Unary::Relu => x.max(0.0),
        Unary::LeakyRelu(a) => {
            if x > 0.0 {
                x
            } else {
                a as f64 * x
            }
        }
        Unary::Softplus => (1.0 + x.exp()).ln(),
        Unary::Sigmoid => 1.0 / (1.0 + (-x).exp()),
        Unary::Exp => x.exp(),
        Unary::Log => x.ln(),
        Unary::Sqrt => x.sqrt(),
        Unary::Square => x * x,
        Unary::Scale(s) => s as f64 * x,
        Unary::AddScalar(s) => x + s as f64,
        Unary::Clamp(lo, hi) => x.clamp(lo as f64, hi as f64),
        Unary::Lgamma => crate::backend::cpu::special::lgamma(x),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::gradcheck::{Case, check};

    #[test]
    fn unary_ops_match_reference_and_gradients() {
        let all = [
            (Unary::Relu, -2.0, 2.0),
            (Unary::LeakyRelu(0.2), -2.0, 2.0),
            (Unary::Softplus, -4.0, 4.0),
            (Unary::Sigmoid, -4.0, 4.0),
            (Unary::Exp, -3.0, 3.0),
            (Unary::Log, 0.05, 5.0),
            (Unary::Sqrt, 0.05, 5.0),
            (Unary::Square, -2.0, 2.0),
            (Unary::Scale(-1.7), -2.0, 2.0),
            (Unary::AddScalar(0.3), -2.0, 2.0),
            (Unary::Clamp(-0.5, 0.7), -2.0, 2.0),
            (Unary::Lgamma, 0.05, 9.0),
        ];
        for (k, &(f, lo, hi)) in all.iter().enumerate() {
            for (s, &(r, c)) in [(1, 1), (1, 17), (9, 5)].iter().enumerate() {
                check(
                    Case::new((k * 10 + s) as u64).input(r, c, lo, hi),
                    |t, v| t.unary(v[0], f),
                    |x| x[0].iter().map(|&a| reference(f, a)).collect(),
                );
            }
        }
    }

    #[test]
    fn large_tensor_takes_the_parallel_path() {
        // 300 x 200 = 60k elements > PAR_MIN.
        check(
            Case::new(5).input(300, 200, -3.0, 3.0).samples(30),
            |t, v| t.softplus(v[0]),
            |x| {
                x[0].iter()
                    .map(|&a| reference(Unary::Softplus, a))
                    .collect()
            },
        );
    }
}
