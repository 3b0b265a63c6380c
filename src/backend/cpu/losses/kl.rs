//! KL divergences between diagonal Gaussians, per row (spec sections 3 and 6).
//!
//! Variances are clipped to [1e-4, 1e4] **only inside the logs**, as in the authors' code;
//! where the clip is active the log term passes no gradient (TF's `clip_by_value`).

use super::{LossFloat, check_len};

/// Clip range of variances inside logs (`capL`, `capU`).
pub const VAR_LOG_CLIP: (f64, f64) = (1e-4, 1e4);

/// (ln clip(v), d ln clip(v) / dv).
#[inline]
fn clipped_log(v: f64) -> (f64, f64) {
    let (lo, hi) = VAR_LOG_CLIP;
    if v < lo {
        (lo.ln(), 0.0)
    } else if v > hi {
        (hi.ln(), 0.0)
    } else {
        (v.ln(), 1.0 / v)
    }
}

/// KL(N(m, v) ‖ N(0, I)) per row: `0.5 Σ_k (-ln clip(v) + v + m² - 1)`.
///
/// `m`, `v`: `[rows*cols]` (v is a variance). Gradients of `Σ_r kl_rows[r] · upstream[r]`
/// overwrite `dm`, `dv`. Panics if a slice length does not match `rows`/`cols`.
#[allow(clippy::too_many_arguments)]
pub fn kl_std_normal_fwd_bwd<T: LossFloat>(
    m: &[T],
    v: &[T],
    rows: usize,
    cols: usize,
    upstream: &[T],
    kl_rows: &mut [T],
    dm: &mut [T],
    dv: &mut [T],
) {
    let n = rows * cols;
    for (name, len) in [
        ("m", m.len()),
        ("v", v.len()),
        ("dm", dm.len()),
        ("dv", dv.len()),
    ] {
        check_len(name, len, n);
    }
    check_len("upstream", upstream.len(), rows);
    check_len("kl_rows", kl_rows.len(), rows);
    for r in 0..rows {
        let up = upstream[r].to_f64();
        let mut sum = 0.0f64;
        for i in r * cols..(r + 1) * cols {
            let (mi, vi) = (m[i].to_f64(), v[i].to_f64());
            let (ln_v, dln_v) = clipped_log(vi);
            sum += -ln_v + vi + mi * mi - 1.0;
            dm[i] = T::from_f64(up * mi);
            dv[i] = T::from_f64(up * 0.5 * (1.0 - dln_v));
        }
        kl_rows[r] = T::from_f64(0.5 * sum);
    }
}

/// KL(N(m1, v1) ‖ N(m2, v2)) per row:
/// `0.5 Σ_k (ln clip(v2) - ln clip(v1) + v1/v2 + (m1-m2)²/v2 - 1)` (S/model.py:106-109).
///
/// All four inputs `[rows*cols]`, variances v1, v2 > 0 (unclipped outside the logs, as in the
/// authors' code). Gradients of `Σ_r kl_rows[r] · upstream[r]` overwrite `dm1`, `dv1`, `dm2`,
/// `dv2`. Panics if a slice length does not match `rows`/`cols`.
#[allow(clippy::too_many_arguments)]
pub fn kl_normal_fwd_bwd<T: LossFloat>(
    m1: &[T],
    v1: &[T],
    m2: &[T],
    v2: &[T],
    rows: usize,
    cols: usize,
    upstream: &[T],
    kl_rows: &mut [T],
    dm1: &mut [T],
    dv1: &mut [T],
    dm2: &mut [T],
    dv2: &mut [T],
) {
    let n = rows * cols;
    for (name, len) in [
        ("m1", m1.len()),
        ("v1", v1.len()),
        ("m2", m2.len()),
        ("v2", v2.len()),
        ("dm1", dm1.len()),
        ("dv1", dv1.len()),
        ("dm2", dm2.len()),
        ("dv2", dv2.len()),
    ] {
        check_len(name, len, n);
    }
    check_len("upstream", upstream.len(), rows);
    check_len("kl_rows", kl_rows.len(), rows);
    for r in 0..rows {
        let up = upstream[r].to_f64();
        let mut sum = 0.0f64;
        for i in r * cols..(r + 1) * cols {
            let (a, va, b, vb) = (
                m1[i].to_f64(),
                v1[i].to_f64(),
                m2[i].to_f64(),
                v2[i].to_f64(),
            );
            let (ln_va, dln_va) = clipped_log(va);
            let (ln_vb, dln_vb) = clipped_log(vb);
            let inv_vb = 1.0 / vb;
            let diff = a - b;
            sum += ln_vb - ln_va + va * inv_vb + diff * diff * inv_vb - 1.0;
            let g_diff = up * diff * inv_vb;
            dm1[i] = T::from_f64(g_diff);
            dm2[i] = T::from_f64(-g_diff);
            dv1[i] = T::from_f64(up * 0.5 * (inv_vb - dln_va));
            dv2[i] = T::from_f64(up * 0.5 * (dln_vb - (va + diff * diff) * inv_vb * inv_vb));
        }
        kl_rows[r] = T::from_f64(0.5 * sum);
    }
}
