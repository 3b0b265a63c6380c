//! Special functions (f64 inside, for accuracy at f32 output).

/// ln Gamma(x) for x > 0 (Lanczos, g = 7, n = 9; relative error ~1e-15).
pub fn lgamma(x: f64) -> f64 {
    const G: f64 = 7.0;
    const C: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        // Gamma(x) = Gamma(x + 1) / x keeps the argument positive for our x > 0 domain.
        return lgamma(x + 1.0) - x.ln();
    }
    let x = x - 1.0;
    let mut a = C[0];
    let t = x + G + 0.5;
    for (i, &c) in C.iter().enumerate().skip(1) {
        a += c / (x + i as f64);
    }
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + a.ln()
}

/// Digamma psi(x) = d/dx ln Gamma(x) for x > 0 (recurrence up to x >= 6, then asymptotic).
pub fn digamma(mut x: f64) -> f64 {
    let mut acc = 0.0;
    while x < 6.0 {
        acc -= 1.0 / x;
        x += 1.0;
    }
    let r = 1.0 / x;
    let r2 = r * r;
    acc + x.ln()
        - 0.5 * r
        - r2 * (1.0 / 12.0 - r2 * (1.0 / 120.0 - r2 * (1.0 / 252.0 - r2 * (1.0 / 240.0))))
}

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
