//! Log-gamma and digamma for positive arguments, plus the stable differences
//! `lgamma(t + x) - lgamma(t)` and `digamma(t + x) - digamma(t)` that the NB/ZINB
//! likelihoods need.
//!
//! Method: shift the argument up with the recurrence `Γ(z+1) = zΓ(z)` until it is large
//! enough for the asymptotic (Stirling / de Moivre) series, then sum a few series terms.
//! The f64 versions are accurate to ~1e-14 relative (absolute near the roots of lgamma
//! at 1 and 2 and of digamma at 1.4616); the f32 versions use fewer terms (~1e-6 relative).
//! Domain: z > 0 (all callers pass θ > 0, x + θ > 0 or x + 1 ≥ 1). z == 0 gives +inf for
//! lgamma and -inf for digamma (the pole), z < 0 or NaN gives NaN.

pub(crate) mod fastmath;

use fastmath as fm;

/// ln(2π)/2.
const HALF_LN_2PI: f64 = 0.918_938_533_204_672_8;

/// Arguments at or above this use the asymptotic series directly (f64).
pub(crate) const ASYMPTOTIC_FROM: f64 = 10.0;

/// Stirling correction `lgamma(z) - [(z - 1/2) ln z - z + ln(2π)/2]` for z ≥ 10.
#[inline]
pub(crate) fn stirling_tail(z: f64) -> f64 {
    let w = 1.0 / z;
    let w2 = w * w;
    // Bernoulli terms B_2k / (2k(2k-1) z^(2k-1)), k = 1..7; the first dropped one is
    // ~3e-17 at z = 10.
    w * (1.0 / 12.0
        + w2 * (-1.0 / 360.0
            + w2 * (1.0 / 1260.0
                + w2 * (-1.0 / 1680.0
                    + w2 * (1.0 / 1188.0 + w2 * (-691.0 / 360_360.0 + w2 * (1.0 / 156.0)))))))
}

/// Digamma correction `digamma(z) - [ln z - 1/(2z)]` for z ≥ 10.
#[inline]
pub(crate) fn digamma_tail(z: f64) -> f64 {
    let w2 = 1.0 / (z * z);
    // -B_2k / (2k z^(2k)), k = 1..7; the first dropped one is ~1e-16 at z = 10.
    w2 * (-1.0 / 12.0
        + w2 * (1.0 / 120.0
            + w2 * (-1.0 / 252.0
                + w2 * (1.0 / 240.0
                    + w2 * (-1.0 / 132.0 + w2 * (691.0 / 32_760.0 + w2 * (-1.0 / 12.0)))))))
}

/// ln Γ(z) for z > 0 (f64).
pub fn lgamma(z: f64) -> f64 {
    if z.is_nan() || z <= 0.0 {
        return if z == 0.0 { f64::INFINITY } else { f64::NAN };
    }
    if z >= ASYMPTOTIC_FROM {
        return (z - 0.5) * fm::ln(z) - z + HALF_LN_2PI + stirling_tail(z);
    }
    // lgamma(z) = lgamma(z + n) - ln(z (z+1) ... (z+n-1)); one log for the whole product.
    let mut prod = 1.0;
    let mut w = z;
    while w < ASYMPTOTIC_FROM {
        prod *= w;
        w += 1.0;
    }
    (w - 0.5) * fm::ln(w) - w + HALF_LN_2PI + stirling_tail(w) - fm::ln(prod)
}

/// ψ(z) = d/dz ln Γ(z) for z > 0 (f64).
pub fn digamma(z: f64) -> f64 {
    lgamma_digamma(z).1
}

/// (ln Γ(z), ψ(z)) for z > 0, sharing the recurrence shift and its logarithms.
pub fn lgamma_digamma(z: f64) -> (f64, f64) {
    if z.is_nan() || z <= 0.0 {
        return if z == 0.0 {
            (f64::INFINITY, f64::NEG_INFINITY)
        } else {
            (f64::NAN, f64::NAN)
        };
    }
    // Shift: Γ(z) = Γ(z+n) / Π, ψ(z) = ψ(z+n) - Σ 1/(z+k). The sum is kept as one fraction
    // num/Π (num·w + Π over Π·w at each step) so the loop has no division.
    let mut prod = 1.0;
    let mut num = 0.0;
    let mut w = z;
    while w < ASYMPTOTIC_FROM {
        num = num * w + prod;
        prod *= w;
        w += 1.0;
    }
    let ln_w = fm::ln(w);
    let mut lg = (w - 0.5) * ln_w - w + HALF_LN_2PI + stirling_tail(w);
    let mut dg = ln_w - 0.5 / w + digamma_tail(w);
    if w != z {
        lg -= fm::ln(prod);
        dg -= num / prod;
    }
    (lg, dg)
}

/// Integer arguments below this use a table for ln Γ(x + 1) = ln x!.
const LN_FACTORIAL_TABLE: usize = 1024;

fn ln_factorial_table() -> &'static [f64; LN_FACTORIAL_TABLE] {
    static TABLE: std::sync::OnceLock<[f64; LN_FACTORIAL_TABLE]> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| std::array::from_fn(|n| lgamma(n as f64 + 1.0)))
}

/// ln Γ(x + 1) for x ≥ 0; small integer x (counts) come from a table.
#[inline]
pub fn lgamma_1p(x: f64) -> f64 {
    if x >= 0.0 && x < LN_FACTORIAL_TABLE as f64 && x == x.trunc() {
        return ln_factorial_table()[x as usize];
    }
    lgamma(x + 1.0)
}

/// f32 threshold: at 7 the first dropped lgamma term (z^-7/1680) is ~7e-10.
const ASYMPTOTIC_FROM_F32: f32 = 7.0;

/// ln Γ(z) for z > 0 in f32 arithmetic (~1e-6 relative, ~1e-6 absolute near z = 1, 2).
pub fn lgamma_f32(z: f32) -> f32 {
    if z.is_nan() || z <= 0.0 {
        return if z == 0.0 { f32::INFINITY } else { f32::NAN };
    }
    let mut prod = 1.0f32;
    let mut w = z;
    while w < ASYMPTOTIC_FROM_F32 {
        prod *= w;
        w += 1.0;
    }
    let r = 1.0 / w;
    let r2 = r * r;
    let tail = r * (1.0 / 12.0 + r2 * (-1.0 / 360.0 + r2 * (1.0 / 1260.0)));
    (w - 0.5) * w.ln() - w + HALF_LN_2PI as f32 + tail - prod.ln()
}

/// ψ(z) for z > 0 in f32 arithmetic (~1e-6 relative away from the root at 1.4616).
pub fn digamma_f32(z: f32) -> f32 {
    if z.is_nan() || z <= 0.0 {
        return if z == 0.0 {
            f32::NEG_INFINITY
        } else {
            f32::NAN
        };
    }
    let mut shift = 0.0f32;
    let mut w = z;
    while w < ASYMPTOTIC_FROM_F32 {
        shift += 1.0 / w;
        w += 1.0;
    }
    let r2 = 1.0 / (w * w);
    let tail = r2 * (-1.0 / 12.0 + r2 * (1.0 / 120.0 + r2 * (-1.0 / 252.0)));
    w.ln() - 0.5 / w + tail - shift
}

/// Per-θ constants for the stable differences below, computed once per gene per call.
#[derive(Clone, Copy, Debug)]
pub(crate) struct GammaShift {
    t: f64,
    /// t ≥ ASYMPTOTIC_FROM: use the series difference (no catastrophic cancellation).
    large: bool,
    /// large: ln t; else lgamma(t).
    a: f64,
    /// large: stirling_tail(t); else digamma(t).
    b: f64,
    /// large: digamma_tail(t); unused otherwise.
    c: f64,
}

impl GammaShift {
    pub(crate) fn new(t: f64) -> Self {
        if t >= ASYMPTOTIC_FROM {
            GammaShift {
                t,
                large: true,
                a: fm::ln(t),
                b: stirling_tail(t),
                c: digamma_tail(t),
            }
        } else {
            GammaShift {
                t,
                large: false,
                a: lgamma(t),
                b: digamma(t),
                c: 0.0,
            }
        }
    }

    /// lgamma(t + x) - lgamma(t) for x ≥ 0. For large t the difference is formed from the
    /// series directly: lgamma(1e5 + 1) - lgamma(1e5) would otherwise lose ~7 digits
    /// (scvi-tools#2965).
    #[inline]
    pub(crate) fn lgamma_diff(&self, x: f64) -> f64 {
        if self.large {
            let t = self.t;
            let l1 = fm::ln_1p(x / t);
            (t + x - 0.5) * l1 + x * self.a - x + (stirling_tail(t + x) - self.b)
        } else {
            lgamma(self.t + x) - self.a
        }
    }

    /// (lgamma(t + x) - lgamma(t), digamma(t + x) - digamma(t)) for x ≥ 0, sharing the log.
    #[inline]
    pub(crate) fn lgamma_digamma_diff(&self, x: f64) -> (f64, f64) {
        if self.large {
            let t = self.t;
            let tx = t + x;
            let l1 = fm::ln_1p(x / t);
            let lg = (tx - 0.5) * l1 + x * self.a - x + (stirling_tail(tx) - self.b);
            // ψ(t+x) - ψ(t) = ln(1 + x/t) + x / (2 t (t+x)) + Δtail.
            let dg = l1 + x / (2.0 * t * tx) + (digamma_tail(tx) - self.c);
            (lg, dg)
        } else {
            let (lg, dg) = lgamma_digamma(self.t + x);
            (lg - self.a, dg - self.b)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Asserts |got - want| < tol |want| (tol absolute where |want| < 1).
    fn assert_close(got: f64, want: f64, tol: f64, what: &str) {
        assert!(
            (got - want).abs() < tol * want.abs().max(1.0),
            "{what}: got {got}, want {want}"
        );
    }

    /// Known values (Abramowitz & Stegun / exact forms), independent of the fixture.
    #[test]
    fn lgamma_known_values() {
        let sqrt_pi_ln = 0.5 * std::f64::consts::PI.ln();
        let cases = [
            (1.0, 0.0),
            (2.0, 0.0),
            (3.0, 2f64.ln()),
            (0.5, sqrt_pi_ln),
            (1.5, sqrt_pi_ln - 2f64.ln()),
            (11.0, (3_628_800f64).ln()),
            (171.0, 706.573_062_245_787_4),
        ];
        for (z, want) in cases {
            assert_close(lgamma(z), want, 1e-13, &format!("lgamma({z})"));
        }
        // Small z: lgamma(z) = -ln z - γ z + O(z²).
        let z: f64 = 1e-8;
        let want = -z.ln() - 0.577_215_664_901_532_9 * z;
        assert!((lgamma(z) - want).abs() < 1e-14 * want.abs());
        assert_eq!(lgamma(0.0), f64::INFINITY);
        assert!(lgamma(-1.0).is_nan());
    }

    #[test]
    fn digamma_known_values() {
        let euler = 0.577_215_664_901_532_9;
        let cases = [
            (1.0, -euler),
            (0.5, -euler - 2.0 * 2f64.ln()),
            (2.0, 1.0 - euler),
            (10.0, 2.251_752_589_066_721),
            (1.461_632_144_968_362_3, 0.0),
        ];
        for (z, want) in cases {
            assert_close(digamma(z), want, 1e-13, &format!("digamma({z})"));
        }
        // Recurrence ψ(z+1) = ψ(z) + 1/z across the shift boundary.
        for z in [0.3, 5.5, 9.5, 9.99, 10.0, 123.4] {
            let what = format!("recurrence at {z}");
            assert_close(digamma(z) + 1.0 / z, digamma(z + 1.0), 1e-13, &what);
            let what = format!("lgamma recurrence at {z}");
            assert_close(lgamma(z) + z.ln(), lgamma(z + 1.0), 1e-13, &what);
        }
    }

    #[test]
    fn digamma_is_derivative_of_lgamma() {
        for z in [1e-3, 0.37, 1.0, 4.2, 9.9, 10.1, 77.0, 1e5] {
            let h = 1e-5 * z;
            let fd = (lgamma(z + h) - lgamma(z - h)) / (2.0 * h);
            assert_close(fd, digamma(z), 1e-7, &format!("fd of lgamma at z={z}"));
        }
    }

    #[test]
    fn f32_versions_match_f64() {
        let mut z = 1e-6f32;
        while z < 1e7 {
            let (l64, d64) = (lgamma(z as f64), digamma(z as f64));
            let (l32, d32) = (lgamma_f32(z) as f64, digamma_f32(z) as f64);
            // Absolute floor covers the roots (lgamma at 1, 2; digamma at 1.46).
            assert!(
                (l32 - l64).abs() <= 2e-6 * l64.abs() + 2e-6,
                "lgamma_f32({z}) {l32} vs {l64}"
            );
            assert!(
                (d32 - d64).abs() <= 2e-6 * d64.abs() + 2e-6,
                "digamma_f32({z}) {d32} vs {d64}"
            );
            z *= 1.37;
        }
    }

    #[test]
    fn stable_differences_match_direct_where_direct_is_exact() {
        for t in [1e-6, 0.5, 3.0, 9.999, 10.0, 10.5, 40.0, 1e3] {
            let g = GammaShift::new(t);
            for x in [0.0, 1e-3, 0.37, 1.0, 5.0, 100.0, 1e4] {
                let (lg, dg) = g.lgamma_digamma_diff(x);
                let want_lg = lgamma(t + x) - lgamma(t);
                let want_dg = digamma(t + x) - digamma(t);
                let scale = lgamma(t + x).abs() + lgamma(t).abs() + 1.0;
                assert!(
                    (lg - want_lg).abs() < 1e-13 * scale,
                    "lgamma diff t={t} x={x}"
                );
                let scale = digamma(t + x).abs() + digamma(t).abs() + 1.0;
                assert!(
                    (dg - want_dg).abs() < 1e-13 * scale,
                    "digamma diff t={t} x={x}"
                );
                assert_eq!(lg, g.lgamma_diff(x));
            }
        }
    }

    /// Large θ: the difference must keep full relative precision. Reference: the exact sums
    /// lgamma(t+n) - lgamma(t) = Σ ln(t+k), ψ(t+n) - ψ(t) = Σ 1/(t+k) for integer n.
    #[test]
    fn stable_differences_at_huge_theta() {
        for t in [1e4, 1e5, 1e6, 1e8] {
            let g = GammaShift::new(t);
            for n in [1usize, 2, 5, 100] {
                let want_lg: f64 = (0..n).map(|k| (t + k as f64).ln()).sum();
                let want_dg: f64 = (0..n).map(|k| 1.0 / (t + k as f64)).sum();
                let (lg, dg) = g.lgamma_digamma_diff(n as f64);
                assert!(
                    (lg - want_lg).abs() < 1e-14 * want_lg,
                    "t={t} n={n}: {lg} vs {want_lg}"
                );
                assert!(
                    (dg - want_dg).abs() < 1e-12 * want_dg,
                    "t={t} n={n}: {dg} vs {want_dg}"
                );
            }
        }
    }
}
