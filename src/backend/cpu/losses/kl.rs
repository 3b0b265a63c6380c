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

/// The per-row output of a KL kernel: `values[r]` for each row r of `cols` elements, whose
/// gradients are weighted by `upstream[r]` (ones for a plain sum).
pub struct PerRow<'a, T> {
    cols: usize,
    upstream: &'a [T],
    values: &'a mut [T],
}

impl<'a, T: LossFloat> PerRow<'a, T> {
    /// `values.len()` rows of `cols` elements.
    pub fn new(cols: usize, upstream: &'a [T], values: &'a mut [T]) -> Self {
        PerRow {
            cols,
            upstream,
            values,
        }
    }

    /// Checks the lengths (`upstream`'s and those of the `[rows*cols]` slices named in order),
    /// then sets `values[r] = 0.5 Σ_i elem(i, upstream[r])` over row r's element indices i, in
    /// order.
    fn half_sums(self, names: &[&str], lens: &[usize], mut elem: impl FnMut(usize, f64) -> f64) {
        let (rows, cols) = (self.values.len(), self.cols);
        assert_eq!(names.len(), lens.len());
        for (name, &len) in names.iter().zip(lens) {
            check_len(name, len, rows * cols);
        }
        check_len("upstream", self.upstream.len(), rows);
        for r in 0..rows {
            let up = self.upstream[r].to_f64();
            let mut sum = 0.0f64;
            for i in r * cols..(r + 1) * cols {
                sum += elem(i, up);
            }
            self.values[r] = T::from_f64(0.5 * sum);
        }
    }
}

/// KL(N(m, v) ‖ N(0, I)) per row: `0.5 Σ_k (-ln clip(v) + v + m² - 1)`.
///
/// `m`, `v`: `[rows*cols]` (v is a variance). Gradients of `Σ_r kl[r] · upstream[r]` overwrite
/// `dm`, `dv`. Panics if a slice length does not match the rows and `cols` of `kl`.
pub fn kl_std_normal_fwd_bwd<T: LossFloat>(
    m: &[T],
    v: &[T],
    kl: PerRow<'_, T>,
    dm: &mut [T],
    dv: &mut [T],
) {
    let names = ["m", "v", "dm", "dv"];
    kl.half_sums(&names, &[m.len(), v.len(), dm.len(), dv.len()], |i, up| {
        let (mi, vi) = (m[i].to_f64(), v[i].to_f64());
        let (ln_v, dln_v) = clipped_log(vi);
        dm[i] = T::from_f64(up * mi);
        dv[i] = T::from_f64(up * 0.5 * (1.0 - dln_v));
        -ln_v + vi + mi * mi - 1.0
    });
}

/// KL(N(m1, v1) ‖ N(m2, v2)) per row:
/// `0.5 Σ_k (ln clip(v2) - ln clip(v1) + v1/v2 + (m1-m2)²/v2 - 1)` (S/model.py:106-109).
///
/// All four inputs `[rows*cols]`, variances v1, v2 > 0 (unclipped outside the logs, as in the
/// authors' code). Gradients of `Σ_r kl[r] · upstream[r]` overwrite `dm1`, `dv1`, `dm2`, `dv2`.
/// Panics if a slice length does not match the rows and `cols` of `kl`.
#[allow(clippy::too_many_arguments)]
pub fn kl_normal_fwd_bwd<T: LossFloat>(
    m1: &[T],
    v1: &[T],
    m2: &[T],
    v2: &[T],
    kl: PerRow<'_, T>,
    dm1: &mut [T],
    dv1: &mut [T],
    dm2: &mut [T],
    dv2: &mut [T],
) {
    let names = ["m1", "v1", "m2", "v2", "dm1", "dv1", "dm2", "dv2"];
    let lens = [m1, v1, m2, v2, &*dm1, &*dv1, &*dm2, &*dv2].map(|s| s.len());
    kl.half_sums(&names, &lens, |i, up| {
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
        let g_diff = up * diff * inv_vb;
        dm1[i] = T::from_f64(g_diff);
        dm2[i] = T::from_f64(-g_diff);
        dv1[i] = T::from_f64(up * 0.5 * (inv_vb - dln_va));
        dv2[i] = T::from_f64(up * 0.5 * (dln_vb - (va + diff * diff) * inv_vb * inv_vb));
        ln_vb - ln_va + va * inv_vb + diff * diff * inv_vb - 1.0
    });
}
