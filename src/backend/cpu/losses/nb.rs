//! Negative binomial log-likelihood in scVI's mean/inverse-dispersion parametrisation
//! (`log_nb_positive`), and the per-element pieces the ZINB kernel reuses.
//!
//! With t = θ, m = μ, e = eps:
//! `LL = t ln(t+e) - t ln(t+m+e) + x ln(m+e) - x ln(t+m+e) + lgamma(x+t) - lgamma(t) - lgamma(x+1)`.
//! Rewritten without cancellation:
//! - `t (ln(t+e) - ln(t+m+e)) = -t ln1p(u)`, u = m/(t+e);
//! - `ln(m+e) - ln(t+m+e) = -ln1p(t/(m+e))`;
//! - lgamma(x+t) - lgamma(t) from the stable series difference ([`special::GammaShift`]).

use super::{
    CountGrads, Counts, ElemGrad, LossFloat, likelihood_rows_fwd, likelihood_rows_fwd_bwd,
};
use crate::special::fastmath as fm;
use crate::special::{self, GammaShift};

/// Per-gene constants: everything that depends on θ only, computed once per call.
#[derive(Clone, Copy, Debug)]
pub(crate) struct GeneConsts {
    pub(crate) t: f64,
    eps: f64,
    /// e / (t + e): the part of dθ that eps contributes.
    pub(crate) eps_frac: f64,
    pub(crate) inv_t_eps: f64,
    gamma: GammaShift,
}

impl GeneConsts {
    pub(crate) fn new(t: f64, eps: f64) -> Self {
        GeneConsts {
            t,
            eps,
            eps_frac: eps / (t + eps),
            inv_t_eps: 1.0 / (t + eps),
            gamma: GammaShift::new(t),
        }
    }

    pub(crate) fn all<T: LossFloat>(theta: &[T], eps: f64) -> Vec<GeneConsts> {
        theta
            .iter()
            .map(|&t| GeneConsts::new(t.to_f64(), eps))
            .collect()
    }
}

/// f(u) = ln(1+u) - u/(1+u) ≥ 0, given `ln1p_u` = ln(1+u) and `ratio` = u/(1+u). For small
/// u both terms are ≈ u and the result ≈ u²/2, so use the Taylor series
/// Σ_{k≥2} (-1)^k (k-1)/k u^k there (truncation error < u^6).
#[inline]
fn log1p_minus_ratio(u: f64, ln1p_u: f64, ratio: f64) -> f64 {
    if u.abs() < 1e-3 {
        let u2 = u * u;
        u2 * (0.5 + u * (-2.0 / 3.0 + u * (0.75 + u * (-0.8 + u * (5.0 / 6.0)))))
    } else {
        ln1p_u - ratio
    }
}

/// The x = 0 NB term d = t ln((t+e)/(t+m+e)) and its partials (dd/dm, dd/dt).
#[inline]
pub(crate) fn nb_zero_term(m: f64, g: &GeneConsts) -> (f64, f64, f64) {
    let t = g.t;
    let u = m * g.inv_t_eps;
    let ln1p_u = fm::ln_1p(u);
    let d = -t * ln1p_u;
    let inv_tme = 1.0 / (t + m + g.eps);
    let dd_dm = -t * inv_tme;
    // dd/dt = ln((t+e)/(t+m+e)) + t m / ((t+e)(t+m+e)) = -f(u) - (e/(t+e)) u/(1+u), and
    // u/(1+u) = m/(t+m+e).
    let ratio = m * inv_tme;
    let dd_dt = -log1p_minus_ratio(u, ln1p_u, ratio) - g.eps_frac * ratio;
    (d, dd_dm, dd_dt)
}

/// Branch-free [`nb_zero_term`] for vectorised loops over a row (u ≥ 0 finite).
#[inline(always)]
pub(crate) fn nb_zero_term_lane(
    m: f64,
    t: f64,
    inv_t_eps: f64,
    eps: f64,
    eps_frac: f64,
) -> (f64, f64, f64) {
    let u = m * inv_t_eps;
    let ln1p_u = fm::ln_1p_lane(u);
    let d = -t * ln1p_u;
    let inv_tme = 1.0 / (t + m + eps);
    let ratio = m * inv_tme;
    let u2 = u * u;
    let series = u2 * (0.5 + u * (-2.0 / 3.0 + u * (0.75 + u * (-0.8 + u * (5.0 / 6.0)))));
    let f = if u < 1e-3 { series } else { ln1p_u - ratio };
    (d, -t * inv_tme, -f - eps_frac * ratio)
}

/// The x > 0 NB element given its zero term d and dd/dθ: (ll, d/dμ, d/dθ).
#[inline]
pub(crate) fn nb_nonzero(x: f64, m: f64, g: &GeneConsts, d: f64, dd_dt: f64) -> (f64, f64, f64) {
    let t = g.t;
    let me = m + g.eps;
    let inv_tme = 1.0 / (t + me);
    let log_m_over_tm = -fm::ln_1p(t / me);
    let (lg_diff, dg_diff) = g.gamma.lgamma_digamma_diff(x);
    let ll = d + x * log_m_over_tm + lg_diff - special::lgamma_1p(x);
    // x/(m+e) - (t+x)/(t+m+e) over a common denominator: no cancellation.
    let dmu = (t * inv_tme) * ((x - me) / me);
    (ll, dmu, dd_dt - x * inv_tme + dg_diff)
}

/// Value of [`nb_nonzero`] alone (no digamma); bit-identical to its `ll`.
#[inline]
pub(crate) fn nb_nonzero_ll(x: f64, m: f64, g: &GeneConsts, d: f64) -> f64 {
    let me = m + g.eps;
    d + x * -fm::ln_1p(g.t / me) + g.gamma.lgamma_diff(x) - special::lgamma_1p(x)
}

/// NB log-likelihood of one element and its partials (ll, d/dm, d/dt) for x ≥ 0.
#[inline]
pub(crate) fn nb_elem(x: f64, m: f64, g: &GeneConsts) -> ElemGrad {
    let (d, dd_dm, dd_dt) = nb_zero_term(m, g);
    if x == 0.0 {
        // lgamma(t) - lgamma(t) and lgamma(1) vanish exactly.
        return ElemGrad {
            ll: d,
            dmu: dd_dm,
            dtheta: dd_dt,
        };
    }
    let (ll, dmu, dtheta) = nb_nonzero(x, m, g, d, dd_dt);
    ElemGrad { ll, dmu, dtheta }
}

/// NB log-likelihood of one element (forward only: no digamma).
#[inline]
pub(crate) fn nb_elem_ll(x: f64, m: f64, g: &GeneConsts) -> f64 {
    let d = -g.t * fm::ln_1p(m * g.inv_t_eps);
    if x == 0.0 {
        return d;
    }
    nb_nonzero_ll(x, m, g, d)
}

/// NB log-likelihood per row and its gradients in one pass (scVI's `log_nb_positive`; see
/// [`super::likelihood_fwd_bwd`], which checks the lengths).
pub(super) fn nb_fwd_bwd<T: LossFloat>(a: &Counts<'_, T>, ll_rows: &mut [T], g: CountGrads<'_, T>) {
    let (x, mu, cols) = (a.x, a.mu, a.cols);
    let genes = GeneConsts::all(a.theta, a.eps.to_f64());
    likelihood_rows_fwd_bwd((a.rows, cols), ll_rows, g, |r, up, dm, _, part| {
        let row = r * cols..(r + 1) * cols;
        let mut sum = 0.0;
        for (g, ((&xv, &m), dm)) in x[row.clone()].iter().zip(&mu[row]).zip(dm).enumerate() {
            let e = nb_elem(xv.to_f64(), m.to_f64(), &genes[g]);
            sum += e.ll;
            *dm = T::from_f64(up * e.dmu);
            part[g] += up * e.dtheta;
        }
        sum
    });
}

/// NB log-likelihood per row only (evaluation; skips all gradient work).
pub(super) fn nb_fwd<T: LossFloat>(a: &Counts<'_, T>, ll_rows: &mut [T]) {
    let (x, mu, cols) = (a.x, a.mu, a.cols);
    let genes = GeneConsts::all(a.theta, a.eps.to_f64());
    likelihood_rows_fwd(cols, ll_rows, |r| {
        let row = r * cols..(r + 1) * cols;
        let pairs = x[row.clone()].iter().zip(&mu[row]);
        pairs
            .enumerate()
            .map(|(g, (&xv, &m))| nb_elem_ll(xv.to_f64(), m.to_f64(), &genes[g]))
            .sum()
    });
}
