//! Inlinable f64 `exp`, `expm1`, `ln` and `ln_1p` for the fused likelihood kernels.
//!
//! The libm calls cost 10-20 ns each and the ZINB kernel needs four per element; these
//! versions are a few FMAs (fdlibm's log polynomial, a degree-13 Taylor exp), accurate to
//! ~2 ulp on the ranges the kernels use, and compile inline into the element loop.

const LN2_HI: f64 = 6.931_471_803_691_238e-1;
const LN2_LO: f64 = 1.908_214_929_270_587_7e-10;
const SQRT2: f64 = std::f64::consts::SQRT_2;

/// e^r - 1 for |r| ≤ ln2/2 (Taylor to r^13: truncation < 4e-18 relative).
#[inline(always)]
fn expm1_reduced(r: f64) -> f64 {
    const C: [f64; 13] = [
        1.0,
        1.0 / 2.0,
        1.0 / 6.0,
        1.0 / 24.0,
        1.0 / 120.0,
        1.0 / 720.0,
        1.0 / 5040.0,
        1.0 / 40_320.0,
        1.0 / 362_880.0,
        1.0 / 3_628_800.0,
        1.0 / 39_916_800.0,
        1.0 / 479_001_600.0,
        1.0 / 6_227_020_800.0,
    ];
    let mut p = C[12];
    for &c in C[..12].iter().rev() {
        p = p.mul_add(r, c);
    }
    p * r
}

/// e^x. Underflows to 0 below -708 (values that small never matter here), +inf above 709.
#[inline(always)]
pub(crate) fn exp(x: f64) -> f64 {
    if x.is_nan() {
        return x;
    }
    if x < -708.0 {
        return 0.0;
    }
    if x > 709.0 {
        return f64::INFINITY;
    }
    let n = (x * std::f64::consts::LOG2_E).round();
    let r = (x - n * LN2_HI) - n * LN2_LO;
    let scale = f64::from_bits(((n as i64 + 1023) as u64) << 52);
    (1.0 + expm1_reduced(r)) * scale
}

/// ln(1 + f) for f = m - 1, m in [sqrt(2)/2, sqrt(2)] (fdlibm e_log.c polynomial, < 1 ulp).
#[inline(always)]
fn log1p_reduced(f: f64) -> f64 {
    const LG: [f64; 7] = [
        6.666_666_666_666_735e-1,
        3.999_999_999_940_942e-1,
        2.857_142_874_366_239e-1,
        2.222_219_843_214_978_4e-1,
        1.818_357_216_161_805e-1,
        1.531_383_769_920_937_3e-1,
        1.479_819_860_511_658_6e-1,
    ];
    let s = f / (2.0 + f);
    let z = s * s;
    let mut r = LG[6];
    for &c in LG[..6].iter().rev() {
        r = r.mul_add(z, c);
    }
    let hfsq = 0.5 * f * f;
    f - (hfsq - s * (hfsq + z * r))
}

/// ln x: -inf at 0, NaN below 0 or for NaN, +inf at +inf.
#[inline(always)]
pub(crate) fn ln(x: f64) -> f64 {
    if !x.is_finite() || x < f64::MIN_POSITIVE {
        return x.ln(); // rare: 0, subnormal, negative, inf, NaN
    }
    let bits = x.to_bits();
    let mut k = ((bits >> 52) as i64) - 1023;
    let mut m = f64::from_bits((bits & 0x000f_ffff_ffff_ffff) | 0x3ff0_0000_0000_0000);
    if m > SQRT2 {
        m *= 0.5;
        k += 1;
    }
    let kf = k as f64;
    kf * LN2_HI + (log1p_reduced(m - 1.0) + kf * LN2_LO)
}

/// ln(1 + u), accurate for tiny u (u ≥ -1).
#[inline(always)]
pub(crate) fn ln_1p(u: f64) -> f64 {
    if u.abs() < 0.25 {
        // 1 + u is already in the reduced range: no rounding of 1 + u.
        return log1p_reduced(u);
    }
    let w = 1.0 + u;
    if w <= 0.0 || !w.is_finite() {
        return w.ln(); // -inf at u = -1, NaN below, +inf at +inf
    }
    // ln(w) plus the first-order correction for the rounding of 1 + u.
    ln(w) + (u - (w - 1.0)) / w
}

// ---- Branch-free lane versions: straight-line code with selects only, so that LLVM
// vectorises loops calling them (4 f64 lanes with AVX2). Inputs must be finite; results for
// arguments outside the stated ranges are unspecified (callers discard them).

/// 1.5 · 2^52: adding it rounds to an integer and leaves that integer in the low mantissa bits.
const ROUND_MAGIC: f64 = 6_755_399_441_055_744.0;

/// e^x for finite x (clamped to [-708, 709]), branch-free.
#[inline(always)]
pub(crate) fn exp_lane(x: f64) -> f64 {
    let x = x.clamp(-708.0, 709.0);
    let kd = x.mul_add(std::f64::consts::LOG2_E, ROUND_MAGIC);
    let n = kd - ROUND_MAGIC;
    let r = (x - n * LN2_HI) - n * LN2_LO;
    // Low bits of kd hold n (two's complement within the mantissa): 2^n = (n + 1023) << 52.
    let scale = f64::from_bits((kd.to_bits().wrapping_add(1023)) << 52);
    (1.0 + expm1_reduced(r)) * scale
}

/// (e^x, e^x - 1) for finite x, branch-free, both without cancellation.
#[inline(always)]
pub(crate) fn exp_and_expm1_lane(x: f64) -> (f64, f64) {
    let e = exp_lane(x);
    let em_small = expm1_reduced(x);
    let small = x.abs() <= 0.5 * LN2_HI;
    (
        if small { 1.0 + em_small } else { e },
        if small { em_small } else { e - 1.0 },
    )
}

/// 2^52 as f64 bits: OR-ing a small integer into the mantissa and subtracting 2^52 converts
/// it to f64 without an integer-to-float instruction AVX2 lacks for 64-bit lanes.
const TWO52_BITS: u64 = 0x4330_0000_0000_0000;

/// ln x for finite normal x > 0, branch-free.
#[inline(always)]
pub(crate) fn ln_lane(x: f64) -> f64 {
    let bits = x.to_bits();
    let biased = f64::from_bits(TWO52_BITS | (bits >> 52)) - f64::from_bits(TWO52_BITS);
    let m = f64::from_bits((bits & 0x000f_ffff_ffff_ffff) | 0x3ff0_0000_0000_0000);
    let big = m > SQRT2;
    let m = if big { 0.5 * m } else { m };
    let k = biased - if big { 1022.0 } else { 1023.0 };
    k * LN2_HI + (log1p_reduced(m - 1.0) + k * LN2_LO)
}

/// ln(1 + u) for finite u > -1, branch-free: ln(w) of the rounded w = 1 + u plus the
/// first-order correction (u - (w - 1))/w for that rounding.
#[inline(always)]
pub(crate) fn ln_1p_lane(u: f64) -> f64 {
    let w = 1.0 + u;
    ln_lane(w) + (u - (w - 1.0)) / w
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ulps(got: f64, want: f64) -> f64 {
        if got == want {
            return 0.0;
        }
        (got - want).abs() / (want.abs() * f64::EPSILON)
    }

    /// Asserts that `name(x)` = `got` is within `max` ulps of `want`.
    fn assert_ulps(name: &str, x: f64, got: f64, want: f64, max: f64) {
        assert!(ulps(got, want) < max, "{name}({x}) = {got} vs {want}");
    }

    #[test]
    fn exp_and_expm1_match_std() {
        let mut x = -700.0;
        while x < 700.0 {
            assert_ulps("exp", x, exp(x), x.exp(), 4.0);
            x += 0.137;
        }
        for x in [
            -0.3, -1e-3, -1e-9, -1e-300, 0.0, 1e-12, 0.2, 0.4, -0.4, 3.0, -30.0,
        ] {
            let (e, em) = exp_and_expm1_lane(x);
            assert!(ulps(em, f64::exp_m1(x)) < 4.0, "expm1({x}) = {em}");
            assert!(ulps(e, x.exp()) < 4.0, "exp({x}) = {e}");
        }
        assert_eq!(exp(-1000.0), 0.0);
        assert_eq!(exp(1000.0), f64::INFINITY);
        assert!(exp(f64::NAN).is_nan());
    }

    #[test]
    fn ln_and_ln1p_match_std() {
        let mut x = 1e-300;
        while x < 1e300 {
            assert_ulps("ln", x, ln(x), x.ln(), 2.0);
            x *= 1.0731;
        }
        for x in [0.999_999_999, 1.0, 1.000_000_1, 0.707, 1.414, 1.4143] {
            assert!(
                (ln(x) - x.ln()).abs() <= 2.0 * f64::EPSILON * x.ln().abs().max(1e-300) + 1e-300
            );
        }
        let mut u: f64 = -0.999;
        while u < 1e12 {
            assert_ulps("ln_1p", u, ln_1p(u), u.ln_1p(), 3.0);
            u = if u < 0.0 {
                u * 0.9 + 1e-30
            } else {
                u * 1.3 + 1e-20
            };
            if u.abs() < 1e-25 {
                u = 1e-20;
            }
        }
        for u in [1e-300, -1e-17, 1e-17, 0.2499, 0.25, 0.2501, -0.2501, 1e300] {
            assert!(ulps(ln_1p(u), u.ln_1p()) < 3.0, "ln_1p({u})");
        }
        assert_eq!(ln(0.0), f64::NEG_INFINITY);
        assert!(ln(-1.0).is_nan());
        assert_eq!(ln_1p(-1.0), f64::NEG_INFINITY);
        assert_eq!(ln(f64::INFINITY), f64::INFINITY);
        assert!(ulps(ln(1e-310), (1e-310f64).ln()) < 2.0);
    }

    #[test]
    fn lane_versions_match_std() {
        let mut x = -707.0;
        while x < 709.0 {
            assert!(ulps(exp_lane(x), x.exp()) < 4.0, "exp_lane({x})");
            let (e, em) = exp_and_expm1_lane(x);
            assert!(
                ulps(e, x.exp()) < 4.0 && ulps(em, x.exp_m1()) < 4.0,
                "exp_and_expm1_lane({x})"
            );
            x += 0.0731;
        }
        for x in [-1e-12, 1e-300, 0.346, -0.347, -0.3466] {
            let (e, em) = exp_and_expm1_lane(x);
            assert!(
                ulps(e, x.exp()) < 4.0 && ulps(em, x.exp_m1()) < 4.0,
                "exp_and_expm1_lane({x})"
            );
        }
        let mut x = 1e-300;
        while x < 1e300 {
            assert!(ulps(ln_lane(x), x.ln()) < 2.0, "ln_lane({x})");
            x *= 1.0731;
        }
        for u in [
            -0.999, -0.5, -0.3, -1e-5, -1e-17, 0.0, 1e-300, 1e-17, 1e-9, 0.3, 1.0, 1e5, 1e14, 1e300,
        ] {
            assert_ulps("ln_1p_lane", u, ln_1p_lane(u), u.ln_1p(), 3.0);
        }
        assert_eq!(ln_1p_lane(0.0), 0.0);
    }
}
