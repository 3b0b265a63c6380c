//! Zero-inflated negative binomial log-likelihood (spec section 3; scVI's
//! `log_zinb_positive`), value and gradients fused in one pass.
//!
//! With ℓ the dropout logit, d = θ ln(θ+e) - θ ln(θ+μ+e) and NB(x) the NB log-likelihood:
//! - x < e: `LL = -softplus(-ℓ) + softplus(d - ℓ)`;
//! - else:  `LL = -softplus(-ℓ) - ℓ + NB(x) = -softplus(ℓ) + NB(x)`.
//!
//! The zero test is the spec's `x < eps` (scVI additionally drops x == eps exactly; the
//! authors' TF code, which the spec follows, does not). x may be non-integer.

use super::nb::{GeneConsts, nb_nonzero, nb_nonzero_ll, nb_zero_term_lane};
use super::softplus_sigmoids;
use super::{CountGrads, Counts, LossFloat, likelihood_rows_fwd, likelihood_rows_fwd_bwd};
use crate::special::fastmath as fm;

/// Elements per block: the lane pass keeps its 9 temporaries (9 KiB) in L1.
const BLOCK: usize = 128;

/// Per-gene constants as separate arrays, for the vectorised lane pass.
struct GeneLanes {
    t: Vec<f64>,
    inv_t_eps: Vec<f64>,
    eps_frac: Vec<f64>,
}

impl GeneLanes {
    fn new(genes: &[GeneConsts]) -> Self {
        GeneLanes {
            t: genes.iter().map(|g| g.t).collect(),
            inv_t_eps: genes.iter().map(|g| g.inv_t_eps).collect(),
            eps_frac: genes.iter().map(|g| g.eps_frac).collect(),
        }
    }
}

/// Per-element results of the lane pass.
struct Lanes {
    /// d = θ ln((θ+e)/(θ+μ+e)) and its partials.
    d: [f64; BLOCK],
    dd_dm: [f64; BLOCK],
    dd_dt: [f64; BLOCK],
    /// e^{-|ℓ|}, σ(ℓ), σ(-ℓ).
    e_l: [f64; BLOCK],
    sig_l: [f64; BLOCK],
    sig_neg_l: [f64; BLOCK],
    /// Zero case: w = σ(-ℓ)(e^d - 1), LL = ln1p(w), σ(d - ℓ) (valid where w > -1/2).
    w: [f64; BLOCK],
    ll0: [f64; BLOCK],
    sig_z: [f64; BLOCK],
}

/// ZINB over one row, value and (if `GRAD`) gradients.
///
/// Two passes per block of `BLOCK` genes: a branch-free pass that LLVM vectorises computes
/// everything the zero case needs for every element (the zero case is the bulk of
/// single-cell data), then a scalar pass picks per element: the zero case from the lanes, its
/// softplus fallback where w ≤ -1/2 (1 + w would lose digits), or the x > 0 case, which
/// reuses d and the sigmoids and adds the lgamma/digamma terms.
///
/// Zero case: `-softplus(-ℓ) + softplus(d - ℓ) = ln(σ(ℓ) + σ(-ℓ) e^d) = ln1p(w)`, with
/// σ(d - ℓ) = σ(-ℓ) e^d / (1 + w). Else: `-softplus(-ℓ) - ℓ + NB(x) = -softplus(ℓ) + NB(x)`.
#[allow(clippy::too_many_arguments)]
#[inline]
fn zinb_row<T: LossFloat, const GRAD: bool>(
    x: &[T],
    mu: &[T],
    logit: &[T],
    genes: &[GeneConsts],
    lanes_g: &GeneLanes,
    eps: f64,
    up: f64,
    dm: &mut [T],
    dl: &mut [T],
    part: &mut [f64],
) -> f64 {
    let cols = x.len();
    let mut sum = 0.0;
    let mut lanes = Lanes {
        d: [0.0; BLOCK],
        dd_dm: [0.0; BLOCK],
        dd_dt: [0.0; BLOCK],
        e_l: [0.0; BLOCK],
        sig_l: [0.0; BLOCK],
        sig_neg_l: [0.0; BLOCK],
        w: [0.0; BLOCK],
        ll0: [0.0; BLOCK],
        sig_z: [0.0; BLOCK],
    };
    let mut j0 = 0;
    while j0 < cols {
        let n = BLOCK.min(cols - j0);
        let blk = j0..j0 + n;
        lane_pass(
            &mu[blk.clone()],
            &logit[blk.clone()],
            lanes_g,
            j0,
            eps,
            &mut lanes,
        );
        for k in 0..n {
            let g = j0 + k;
            let xv = x[g].to_f64();
            if xv < eps {
                let (ll, sig_z) = if lanes.w[k] > -0.5 {
                    (lanes.ll0[k], lanes.sig_z[k])
                } else {
                    let l = logit[g].to_f64();
                    let sp_l = l.max(0.0) + fm::ln_1p(lanes.e_l[k]);
                    let (sp_z, sig_z, _) = softplus_sigmoids(lanes.d[k] - l);
                    (l - sp_l + sp_z, sig_z)
                };
                sum += ll;
                if GRAD {
                    dm[g] = T::from_f64(up * sig_z * lanes.dd_dm[k]);
                    dl[g] = T::from_f64(up * (lanes.sig_neg_l[k] - sig_z));
                    part[g] += up * sig_z * lanes.dd_dt[k];
                }
            } else {
                let l = logit[g].to_f64();
                let sp_l = l.max(0.0) + fm::ln_1p(lanes.e_l[k]);
                let m = mu[g].to_f64();
                if GRAD {
                    let (ll, dmu, dth) = nb_nonzero(xv, m, &genes[g], lanes.d[k], lanes.dd_dt[k]);
                    sum += ll - sp_l;
                    dm[g] = T::from_f64(up * dmu);
                    dl[g] = T::from_f64(-up * lanes.sig_l[k]);
                    part[g] += up * dth;
                } else {
                    sum += nb_nonzero_ll(xv, m, &genes[g], lanes.d[k]) - sp_l;
                }
            }
        }
        j0 += n;
    }
    sum
}

/// The branch-free part of [`zinb_row`] for one block (genes `j0..j0 + mu.len()`).
#[inline(always)]
fn lane_pass<T: LossFloat>(
    mu: &[T],
    logit: &[T],
    g: &GeneLanes,
    j0: usize,
    eps: f64,
    out: &mut Lanes,
) {
    let n = mu.len();
    // Equal-length slices let LLVM drop the bounds checks and vectorise.
    let (logit, t, inv, ef) = (
        &logit[..n],
        &g.t[j0..j0 + n],
        &g.inv_t_eps[j0..j0 + n],
        &g.eps_frac[j0..j0 + n],
    );
    let (d, dd_dm, dd_dt) = (&mut out.d[..n], &mut out.dd_dm[..n], &mut out.dd_dt[..n]);
    let (e_l, sig_l, sig_neg_l) = (
        &mut out.e_l[..n],
        &mut out.sig_l[..n],
        &mut out.sig_neg_l[..n],
    );
    let (w, ll0, sig_z) = (&mut out.w[..n], &mut out.ll0[..n], &mut out.sig_z[..n]);
    for k in 0..n {
        let (m, l) = (mu[k].to_f64(), logit[k].to_f64());
        let (dk, dmk, dtk) = nb_zero_term_lane(m, t[k], inv[k], eps, ef[k]);
        let el = fm::exp_lane(-l.abs());
        let r = 1.0 / (1.0 + el);
        let pos = l >= 0.0;
        let (sl, snl) = (if pos { r } else { el * r }, if pos { el * r } else { r });
        let (ed, em) = fm::exp_and_expm1_lane(dk);
        let wk = snl * em;
        d[k] = dk;
        dd_dm[k] = dmk;
        dd_dt[k] = dtk;
        e_l[k] = el;
        sig_l[k] = sl;
        sig_neg_l[k] = snl;
        w[k] = wk;
        ll0[k] = fm::ln_1p_lane(wk);
        sig_z[k] = snl * ed / (1.0 + wk);
    }
}

/// ZINB log-likelihood per row and its gradients in one pass (scVI's parametrisation,
/// `log_zinb_positive`; see [`super::likelihood_fwd_bwd`], which checks the lengths).
pub(super) fn zinb_fwd_bwd<T: LossFloat>(
    a: &Counts<'_, T>,
    logit: &[T],
    ll_rows: &mut [T],
    g: CountGrads<'_, T>,
) {
    let (x, mu, cols, eps) = (a.x, a.mu, a.cols, a.eps.to_f64());
    let genes = GeneConsts::all(a.theta, eps);
    let lanes_g = GeneLanes::new(&genes);
    likelihood_rows_fwd_bwd((a.rows, cols), ll_rows, g, |r, up, dm, dl, part| {
        let row = r * cols..(r + 1) * cols;
        let (x, mu, logit) = (&x[row.clone()], &mu[row.clone()], &logit[row]);
        zinb_row::<T, true>(x, mu, logit, &genes, &lanes_g, eps, up, dm, dl, part)
    });
}

/// ZINB log-likelihood per row only (evaluation; skips all gradient work).
pub(super) fn zinb_fwd<T: LossFloat>(a: &Counts<'_, T>, logit: &[T], ll_rows: &mut [T]) {
    let (x, mu, cols, eps) = (a.x, a.mu, a.cols, a.eps.to_f64());
    let genes = GeneConsts::all(a.theta, eps);
    let lanes_g = GeneLanes::new(&genes);
    likelihood_rows_fwd(cols, ll_rows, |r| {
        let row = r * cols..(r + 1) * cols;
        let (x, mu, logit) = (&x[row.clone()], &mu[row.clone()], &logit[row]);
        // No gradient outputs.
        let (dm, dl, part): (&mut [T], &mut [T], &mut [f64]) = (&mut [], &mut [], &mut []);
        zinb_row::<T, false>(x, mu, logit, &genes, &lanes_g, eps, 0.0, dm, dl, part)
    });
}
