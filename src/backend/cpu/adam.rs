//! Fused Adam/AdamW update.

use super::par::chunks_mut;
use crate::backend::AdamStep;

/// One pass over p, g, m, v (PyTorch's Adam/AdamW formula).
pub fn adam(s: AdamStep, p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32]) {
    assert!(p.len() == g.len() && p.len() == m.len() && p.len() == v.len());
    let step = s.lr / s.bias_c1;
    let inv_sqrt_c2 = 1.0 / s.bias_c2.sqrt();
    let decay = 1.0 - s.lr * s.weight_decay;
    // m and v are updated in the same chunks as p: split them alongside via raw offsets.
    let (mp, vp) = (m.as_mut_ptr() as usize, v.as_mut_ptr() as usize);
    chunks_mut(p, super::par::CHUNK, |off, pc| {
        // SAFETY: chunks are disjoint ranges [off, off+len) of equally long m and v.
        let mc = unsafe { std::slice::from_raw_parts_mut((mp as *mut f32).add(off), pc.len()) };
        let vc = unsafe { std::slice::from_raw_parts_mut((vp as *mut f32).add(off), pc.len()) };
        for k in 0..pc.len() {
            let gi = g[off + k] * s.grad_scale;
            let mi = s.beta1 * mc[k] + (1.0 - s.beta1) * gi;
            let vi = s.beta2 * vc[k] + (1.0 - s.beta2) * gi * gi;
            mc[k] = mi;
            vc[k] = vi;
            pc[k] = pc[k] * decay - step * mi / (vi.sqrt() * inv_sqrt_c2 + s.eps);
        }
    });
}
