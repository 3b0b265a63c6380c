//! The Bhattacharyya kernels on the CPU: the coefficient between the discriminator's outputs on
//! real cells and on their reconstructions (spec section 3, U/model.py:103-106), in f64.
//!
//! p = a/Σa, q = b/Σb (raw linear outputs, any sign), `BC = Σ_i sqrt(|p_i q_i|)`,
//! `loss = ln(clip(BC, 1e-4, 1e4))`. Since `BC = W / sqrt(|Σa| |Σb|)` with
//! `W = Σ_i sqrt(|a_i b_i|)`, the kernel works with
//! `ln BC = ln W - ½ ln|Σa| - ½ ln|Σb|`, which cannot overflow, and
//! `∂ ln BC / ∂a_j = ½ (sign(a_j) sqrt(|b_j| / |a_j|) / W - 1/Σa)` (symmetrically for b).

use super::BhattacharyyaKernels;
use crate::backend::cpu::Cpu;
use crate::backend::cpu::losses::{LossFloat, check_len};

impl BhattacharyyaKernels for Cpu {
    fn bhattacharyya_fwd(&self, a: &Vec<f32>, b: &Vec<f32>, loss: &mut Vec<f32>) {
        self.with_spare(&[a.len(), b.len()], |s| {
            let [da, db] = s else { unreachable!() };
            loss[0] = bhattacharyya_fwd_bwd(a, b, da, db);
        });
    }
    fn bhattacharyya_bwd(
        &self,
        a: &Vec<f32>,
        b: &Vec<f32>,
        g: &Vec<f32>,
        da: &mut Vec<f32>,
        db: &mut Vec<f32>,
    ) {
        bhattacharyya_fwd_bwd(a, b, da, db);
        da.iter_mut().chain(db.iter_mut()).for_each(|v| *v *= g[0]);
    }
}

/// Lower and upper clip of BC inside the log (`capL`, `capU` in the authors' code).
pub const BC_CLIP: (f64, f64) = (1e-4, 1e4);

/// Returns `ln(clip(BC, 1e-4, 1e4))` and writes `dloss/da`, `dloss/db`.
///
/// The gradients are zero where the clip is active (as TF's `clip_by_value`, which passes
/// the gradient only strictly inside or on the bounds). Where the true derivative is
/// infinite (a_j = 0 with b_j ≠ 0: the slope of sqrt at 0) the element's sqrt term
/// contributes 0 instead of TF's NaN. W = 0 (BC = 0, also when Σa or Σb is 0) gives the lower
/// clip; Σa = 0 or Σb = 0 with W > 0 (BC = ∞) gives the upper clip. Panics if the lengths
/// of `a`, `b`, `da`, `db` differ.
pub fn bhattacharyya_fwd_bwd<T: LossFloat>(a: &[T], b: &[T], da: &mut [T], db: &mut [T]) -> T {
    let n = a.len();
    check_len("b", b.len(), n);
    check_len("da", da.len(), n);
    check_len("db", db.len(), n);
    let (lo, hi) = (BC_CLIP.0.ln(), BC_CLIP.1.ln());
    let mut sa = 0.0f64;
    let mut sb = 0.0f64;
    let mut w = 0.0f64;
    for (&ai, &bi) in a.iter().zip(b) {
        let (ai, bi) = (ai.to_f64(), bi.to_f64());
        sa += ai;
        sb += bi;
        w += (ai * bi).abs().sqrt();
    }
    let zero_grads = |da: &mut [T], db: &mut [T]| {
        da.iter_mut()
            .chain(db.iter_mut())
            .for_each(|v| *v = T::from_f64(0.0));
    };
    if w == 0.0 {
        zero_grads(da, db);
        return T::from_f64(lo);
    }
    let ln_bc = w.ln() - 0.5 * sa.abs().ln() - 0.5 * sb.abs().ln();
    if ln_bc.is_nan() {
        // NaN discriminator outputs: propagate so the trainer's NaN guard sees them.
        da.iter_mut()
            .chain(db.iter_mut())
            .for_each(|v| *v = T::from_f64(f64::NAN));
        return T::from_f64(f64::NAN);
    }
    if ln_bc < lo || ln_bc > hi {
        zero_grads(da, db);
        return T::from_f64(ln_bc.clamp(lo, hi));
    }
    let (inv_sa, inv_sb, inv_w) = (1.0 / sa, 1.0 / sb, 1.0 / w);
    for i in 0..n {
        let (ai, bi) = (a[i].to_f64(), b[i].to_f64());
        // d sqrt(|a b|)/da = ½ sign(a) sqrt(|b|/|a|); 0 at a = 0 (see doc).
        let ga = if ai == 0.0 {
            0.0
        } else {
            ai.signum() * (bi.abs() / ai.abs()).sqrt()
        };
        let gb = if bi == 0.0 {
            0.0
        } else {
            bi.signum() * (ai.abs() / bi.abs()).sqrt()
        };
        da[i] = T::from_f64(0.5 * (ga * inv_w - inv_sa));
        db[i] = T::from_f64(0.5 * (gb * inv_w - inv_sb));
    }
    T::from_f64(ln_bc)
}
