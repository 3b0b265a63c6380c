//! Elementwise special functions of the CPU kernels (lgamma/digamma come from the loss
//! kernels' implementation, shared).

pub use crate::special::{digamma, lgamma};

/// Numerically stable softplus ln(1 + e^x).
#[inline(always)]
pub fn softplus(x: f32) -> f32 {
    x.max(0.0) + (-x.abs()).exp().ln_1p()
}

/// Logistic sigmoid.
#[inline(always)]
pub fn sigmoid(x: f32) -> f32 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lgamma_known_values() {
        // Gamma(5) = 24, Gamma(0.5) = sqrt(pi), Gamma(1) = 1.
        assert!((lgamma(5.0) - 24f64.ln()).abs() < 1e-12);
        assert!((lgamma(0.5) - std::f64::consts::PI.sqrt().ln()).abs() < 1e-12);
        assert!(lgamma(1.0).abs() < 1e-12);
        assert!((lgamma(1e-3) - 6.907_178_885_383_853).abs() < 1e-9);
    }

    #[test]
    fn digamma_matches_lgamma_slope() {
        for &x in &[1e-3, 0.3, 1.0, 2.5, 7.0, 40.0] {
            let h = 1e-6 * x;
            let num = (lgamma(x + h) - lgamma(x - h)) / (2.0 * h);
            assert!((digamma(x) - num).abs() < 1e-5 * (1.0 + num.abs()), "x={x}");
        }
        // psi(1) = -Euler-Mascheroni.
        assert!((digamma(1.0) + 0.577_215_664_901_532_9).abs() < 1e-9);
    }
}
