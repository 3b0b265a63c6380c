//! Zero-inflated negative binomial log-likelihood (spec section 3; scVI's
//! `log_zinb_positive`), value and gradients fused in one pass.
//!
//! With ℓ the dropout logit, d = θ ln(θ+e) - θ ln(θ+μ+e) and NB(x) the NB log-likelihood:
//! - x < e: `LL = -softplus(-ℓ) + softplus(d - ℓ)`;
//! - else:  `LL = -softplus(-ℓ) - ℓ + NB(x) = -softplus(ℓ) + NB(x)`.
//!
//! The zero test is the spec's `x < eps` (scVI additionally drops x == eps exactly; the
//! authors' TF code, which the spec follows, does not). x may be non-integer.

use super::nb::{GeneConsts, nb_elem, nb_elem_ll, nb_zero_term};
use super::softplus_sigmoids;
use super::{ElemGrad, LossFloat, check_len, likelihood_rows_fwd, likelihood_rows_fwd_bwd};

/// ZINB log-likelihood of one element and its partials (ll, d/dμ, d/dθ, d/dℓ).
#[inline]
pub(crate) fn zinb_elem(x: f64, m: f64, l: f64, g: &GeneConsts, eps: f64) -> ElemGrad {
    let (sp_l, sig_l, sig_neg_l) = softplus_sigmoids(l);
    if x < eps {
        let (d, dd_dm, dd_dt) = nb_zero_term(m, g);
        let (sp_z, sig_z, _) = softplus_sigmoids(d - l);
        // -softplus(-ℓ) = ℓ - softplus(ℓ).
        let ll = l - sp_l + sp_z;
        ElemGrad {
            ll,
            dmu: sig_z * dd_dm,
            dtheta: sig_z * dd_dt,
            dlogit: sig_neg_l - sig_z,
        }
    } else {
        let nb = nb_elem(x, m, g);
        ElemGrad {
            ll: nb.ll - sp_l,
            dlogit: -sig_l,
            ..nb
        }
    }
}

/// ZINB log-likelihood of one element (forward only).
#[inline]
pub(crate) fn zinb_elem_ll(x: f64, m: f64, l: f64, g: &GeneConsts, eps: f64) -> f64 {
    if x < eps {
        let (d, _, _) = nb_zero_term(m, g);
        let (sp_l, _, _) = softplus_sigmoids(l);
        let (sp_z, _, _) = softplus_sigmoids(d - l);
        l - sp_l + sp_z
    } else {
        let (sp_l, _, _) = softplus_sigmoids(l);
        nb_elem_ll(x, m, g) - sp_l
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
