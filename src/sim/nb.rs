//! Exact negative-binomial sampling tuned for sparse counts.
//!
//! Most entries of a 10%-dense matrix are zero, so the sampler decides "zero or not" with
//! one exponential variate and a multiply before doing any real work: with E ~ Exp(1),
//! x = 0 exactly when E > theta * ln(1 + mu / theta) (inversion of the CDF at u = exp(-E)),
//! and cheap upper bounds of that threshold (mu, then a rational bound) settle almost every
//! zero without a logarithm.
//! Non-zero counts continue the same inversion; large means use the gamma-Poisson mixture.

use rand::Rng;
use rand_distr::{Distribution, Exp1, Gamma, Poisson};

/// Above this mean the CDF walk (about mu steps) is slower than gamma-Poisson.
const DIRECT_MEAN: f64 = 16.0;
/// Stop the CDF walk once the next probability is negligible against what is summed.
const TAIL_EPS: f64 = 1e-17;

/// An upper bound of ln(1 + x) for x >= 0, within 1% for x < 1: x (6 + x) / (6 + 4 x).
#[inline]
fn ln_1p_upper(x: f64) -> f64 {
    x * (6.0 + x) / (6.0 + 4.0 * x)
}

/// NB(mean mu, inverse dispersion theta) for one gene; `gamma` is Gamma(theta, 1).
#[derive(Clone, Debug)]
pub struct GeneNb {
    pub theta: f64,
    gamma: Gamma<f64>,
}

impl GeneNb {
    /// Sampler for inverse dispersion `theta` (> 0, finite).
    pub fn new(theta: f64) -> anyhow::Result<GeneNb> {
        let gamma = Gamma::new(theta, 1.0)
            .map_err(|e| anyhow::anyhow!("invalid NB inverse dispersion {theta}: {e}"))?;
        Ok(GeneNb { theta, gamma })
    }

    /// One count with mean `mu` (>= 0).
    #[inline]
    pub fn sample<R: Rng + ?Sized>(&self, mu: f64, rng: &mut R) -> u32 {
        if mu > DIRECT_MEAN {
            return self.sample_mixture(mu, rng);
        }
        let e: f64 = Exp1.sample(rng);
        if e >= mu {
            return 0; // e >= mu >= theta * ln(1 + mu / theta)
        }
        let theta = self.theta;
        let x = mu / theta;
        if e >= theta * ln_1p_upper(x) {
            return 0; // a tighter bound: still no logarithm for almost every zero
        }
        let neg_log_p0 = theta * x.ln_1p();
        if e > neg_log_p0 {
            return 0;
        }
        // Smallest k with CDF(k) > u = exp(-e), walked with p(k+1) = p(k) (k + theta) / (k + 1) q.
        // Everything is scaled by 1 / p(0) = exp(neg_log_p0): one exp instead of two.
        let u = (neg_log_p0 - e).exp();
        let q = mu / (theta + mu);
        let mut p = 1.0f64;
        let mut cdf = 1.0f64;
        let mut k = 0u32;
        while u >= cdf {
            p *= (k as f64 + theta) / (k as f64 + 1.0) * q;
            k += 1;
            cdf += p;
            if p < TAIL_EPS * cdf {
                break; // u is within rounding of the total: the tail beyond here is empty in f64
            }
        }
        k
    }

    /// Gamma-Poisson mixture, the textbook NB construction, for large means.
    fn sample_mixture<R: Rng + ?Sized>(&self, mu: f64, rng: &mut R) -> u32 {
        let lambda = self.gamma.sample(rng) * mu / self.theta;
        if lambda <= 0.0 {
            return 0;
        }
        if lambda >= u32::MAX as f64 {
            // rand_distr's Poisson sampler does not return for huge means (seen at ~1e300);
            // the count would be clamped to u32::MAX anyway. `simulate` refuses parameters
            // whose expected counts come anywhere near this.
            return u32::MAX;
        }
        match Poisson::new(lambda) {
            Ok(pois) => {
                let x: f64 = pois.sample(rng);
                x.min(u32::MAX as f64) as u32
            }
            Err(_) => 0, // lambda underflowed or is not finite; cannot happen for finite mu
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    /// Moments and P(0) of the sampler against the NB formulas, on both code paths.
    #[test]
    fn matches_negative_binomial_moments() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        for &(mu, theta) in &[
            (0.05, 2.0),
            (0.7, 0.5),
            (3.0, 4.0),
            (12.0, 1.3),
            (40.0, 2.0),
        ] {
            let nb = GeneNb::new(theta).unwrap();
            let n = 400_000;
            let xs: Vec<f64> = (0..n).map(|_| nb.sample(mu, &mut rng) as f64).collect();
            let mean = xs.iter().sum::<f64>() / n as f64;
            let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
            let zeros = xs.iter().filter(|&&x| x == 0.0).count() as f64 / n as f64;
            let want_var = mu + mu * mu / theta;
            let want_p0 = (theta / (theta + mu)).powf(theta);
            let se_mean = (want_var / n as f64).sqrt();
            assert!(
                (mean - mu).abs() < 5.0 * se_mean,
                "mu {mu} theta {theta}: mean {mean}"
            );
            assert!(
                (var / want_var - 1.0).abs() < 0.05,
                "mu {mu} theta {theta}: var {var} vs {want_var}"
            );
            let se_p0 = (want_p0 * (1.0 - want_p0) / n as f64).sqrt().max(1e-6);
            assert!(
                (zeros - want_p0).abs() < 5.0 * se_p0,
                "mu {mu} theta {theta}: P(0) {zeros} vs {want_p0}"
            );
        }
    }

    #[test]
    fn ln_1p_upper_bounds_ln_1p() {
        for i in 0..100_000 {
            let x = (i as f64 * 1e-4).powi(3);
            // Equal to third order at small x: allow for rounding only.
            assert!(ln_1p_upper(x) >= x.ln_1p() * (1.0 - 1e-14), "x {x}");
        }
        assert!(ln_1p_upper(0.5) - 0.5f64.ln_1p() < 1e-3);
    }

    #[test]
    fn zero_mean_gives_zero() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let nb = GeneNb::new(2.0).unwrap();
        assert!((0..1000).all(|_| nb.sample(0.0, &mut rng) == 0));
    }
}
