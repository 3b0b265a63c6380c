//! Zero-inflated negative binomial log-likelihood (spec section 3; scVI's
//! `log_zinb_positive`), value and gradients fused in one pass.
//!
//! With ℓ the dropout logit, d = θ ln(θ+e) - θ ln(θ+μ+e) and NB(x) the NB log-likelihood:
//! - x < e: `LL = -softplus(-ℓ) + softplus(d - ℓ)`;
//! - else:  `LL = -softplus(-ℓ) - ℓ + NB(x) = -softplus(ℓ) + NB(x)`.
//!
//! The zero test is the spec's `x < eps` (scVI additionally drops x == eps exactly; the
//! authors' TF code, which the spec follows, does not). x may be non-integer.

use super::fastmath as fm;
use super::nb::{GeneConsts, nb_elem, nb_elem_ll, nb_zero_term};
use super::softplus_sigmoids;
use super::{ElemGrad, LossFloat, check_len, likelihood_rows_fwd, likelihood_rows_fwd_bwd};

/// e^{-|ℓ|}, σ(ℓ), σ(-ℓ), each with full relative precision.
#[inline(always)]
fn sigmoids(l: f64) -> (f64, f64, f64) {
    let e = fm::exp(-l.abs());
    let inv = 1.0 / (1.0 + e);
    if l >= 0.0 {
        (e, inv, e * inv)
    } else {
        (e, e * inv, inv)
    }
}

/// Zero case: (LL, σ(d - ℓ), dd/dμ, dd/dθ) with d = θ ln((θ+e)/(θ+μ+e)).
///
/// `-softplus(-ℓ) + softplus(d - ℓ) = ln(σ(ℓ) + σ(-ℓ) e^d) = ln1p(w)`, w = σ(-ℓ)(e^d - 1):
/// two logs fewer than the softplus form. When w ≤ -1/2, 1 + w would lose digits (tiny
/// σ(ℓ) and e^d), so fall back to the softplus form, which is exact there.
#[inline(always)]
fn zero_case(m: f64, l: f64, e_l: f64, sig_neg_l: f64, g: &GeneConsts) -> (f64, f64, f64, f64) {
    let (d, dd_dm, dd_dt) = nb_zero_term(m, g);
    let (ed, em) = fm::exp_and_expm1(d);
    let w = sig_neg_l * em;
    if w > -0.5 {
        // σ(d - ℓ) = σ(-ℓ) e^d / (σ(ℓ) + σ(-ℓ) e^d).
        (fm::ln_1p(w), sig_neg_l * ed / (1.0 + w), dd_dm, dd_dt)
    } else {
        let sp_l = l.max(0.0) + fm::ln_1p(e_l);
        let (sp_z, sig_z, _) = softplus_sigmoids(d - l);
        (l - sp_l + sp_z, sig_z, dd_dm, dd_dt)
    }
}

/// ZINB log-likelihood of one element and its partials (ll, d/dμ, d/dθ, d/dℓ).
#[inline]
pub(crate) fn zinb_elem(x: f64, m: f64, l: f64, g: &GeneConsts, eps: f64) -> ElemGrad {
    let (e_l, sig_l, sig_neg_l) = sigmoids(l);
    if x < eps {
        let (ll, sig_z, dd_dm, dd_dt) = zero_case(m, l, e_l, sig_neg_l, g);
        ElemGrad {
            ll,
            dmu: sig_z * dd_dm,
            dtheta: sig_z * dd_dt,
            dlogit: sig_neg_l - sig_z,
        }
    } else {
        // -softplus(-ℓ) - ℓ = -softplus(ℓ).
        let sp_l = l.max(0.0) + fm::ln_1p(e_l);
        let nb = nb_elem(x, m, g);
        ElemGrad {
            ll: nb.ll - sp_l,
            dlogit: -sig_l,
            ..nb
        }
    }
}

/// ZINB log-likelihood of one element (forward only; bit-identical to `zinb_elem`'s).
#[inline]
pub(crate) fn zinb_elem_ll(x: f64, m: f64, l: f64, g: &GeneConsts, eps: f64) -> f64 {
    let (e_l, _, sig_neg_l) = sigmoids(l);
    if x < eps {
        zero_case(m, l, e_l, sig_neg_l, g).0
    } else {
        nb_elem_ll(x, m, g) - (l.max(0.0) + fm::ln_1p(e_l))
    }
}

/// ZINB log-likelihood per row and its gradients in one pass (scVI's parametrisation,
/// `log_zinb_positive`).
///
/// `x`, `mu`, `logit`: `[rows*cols]` row-major; `theta`: `[cols]` (per gene, shared by all
/// rows); `eps` inside the logs and as the zero threshold (spec 1e-4, scVI 1e-8).
/// `ll_rows[r] = Σ_g LL(r, g)`. Gradients are of `Σ_r ll_rows[r] · upstream[r]`
/// (`upstream`: `[rows]`, ones for a plain sum): `dmu`, `dlogit` `[rows*cols]` and `dtheta`
/// `[cols]` are overwritten; dθ is an ordered, thread-count independent sum over rows.
/// Panics if a slice length does not match `rows`/`cols`.
#[allow(clippy::too_many_arguments)]
pub fn zinb_fwd_bwd<T: LossFloat>(
    x: &[T],
    mu: &[T],
    theta: &[T],
    logit: &[T],
    rows: usize,
    cols: usize,
    eps: T,
    upstream: &[T],
    ll_rows: &mut [T],
    dmu: &mut [T],
    dtheta: &mut [T],
    dlogit: &mut [T],
) {
    let n = rows * cols;
    check_len("x", x.len(), n);
    check_len("mu", mu.len(), n);
    check_len("theta", theta.len(), cols);
    check_len("logit", logit.len(), n);
    check_len("upstream", upstream.len(), rows);
    check_len("ll_rows", ll_rows.len(), rows);
    check_len("dmu", dmu.len(), n);
    check_len("dtheta", dtheta.len(), cols);
    check_len("dlogit", dlogit.len(), n);
    let eps = eps.to_f64();
    let genes = GeneConsts::all(theta, eps);
    likelihood_rows_fwd_bwd(
        rows,
        cols,
        upstream,
        ll_rows,
        dmu,
        dtheta,
        dlogit,
        |i, g| {
            zinb_elem(
                x[i].to_f64(),
                mu[i].to_f64(),
                logit[i].to_f64(),
                &genes[g],
                eps,
            )
        },
    );
}

/// ZINB log-likelihood per row only (evaluation; skips all gradient work).
#[allow(clippy::too_many_arguments)]
pub fn zinb_fwd<T: LossFloat>(
    x: &[T],
    mu: &[T],
    theta: &[T],
    logit: &[T],
    rows: usize,
    cols: usize,
    eps: T,
    ll_rows: &mut [T],
) {
    let n = rows * cols;
    check_len("x", x.len(), n);
    check_len("mu", mu.len(), n);
    check_len("theta", theta.len(), cols);
    check_len("logit", logit.len(), n);
    check_len("ll_rows", ll_rows.len(), rows);
    let eps = eps.to_f64();
    let genes = GeneConsts::all(theta, eps);
    likelihood_rows_fwd(cols, ll_rows, |i, g| {
        zinb_elem_ll(
            x[i].to_f64(),
            mu[i].to_f64(),
            logit[i].to_f64(),
            &genes[g],
            eps,
        )
    });
}
