//! Counter-based random numbers: element i of a draw depends only on (seed, i), so the
//! result is independent of threading and a GPU kernel can reproduce it exactly.

use super::par::map_into;

#[inline(always)]
fn mix(seed: u64, i: u64) -> u64 {
    // splitmix64 of (seed, counter).
    let mut z = seed ^ i.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Uniform in (0, 1] from the top 24 bits.
#[inline(always)]
fn unit(bits: u32) -> f32 {
    ((bits >> 8) as f32 + 1.0) * (1.0 / 16_777_216.0)
}

pub fn dropout_mask(seed: u64, keep: f32, mask: &mut [f32]) {
    let inv = 1.0 / keep;
    map_into(mask, |i| {
        if unit(mix(seed, i as u64) as u32) <= keep {
            inv
        } else {
            0.0
        }
    });
}

pub fn normal(seed: u64, out: &mut [f32]) {
    map_into(out, |i| {
        let r = mix(seed, i as u64);
        let (u1, u2) = (unit(r as u32), unit((r >> 32) as u32));
        (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
    });
}

pub fn reparam(mean: &[f32], var: &[f32], eps: &[f32], z: &mut [f32]) {
    super::par::zip3(z, mean, var, eps, |z, m, v, e| *z = m + v.sqrt() * e);
}

/// dvar += dz * eps / (2 sqrt(var)): the variance's part of [`reparam`]'s backward (the mean's
/// gradient is dz itself).
pub fn reparam_bwd_var(var: &[f32], eps: &[f32], dz: &[f32], dvar: &mut [f32]) {
    super::par::zip3(dvar, dz, eps, var, |dv, d, e, v| {
        *dv += d * e * 0.5 / v.sqrt()
    });
}
