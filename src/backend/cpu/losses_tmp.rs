//! TEMPORARY simple loss kernels with the signatures of branch `losses`
//! (`crate::ops::losses`); removed when that branch is merged.
#![allow(clippy::too_many_arguments, clippy::needless_range_loop)]

use super::special::{digamma, lgamma};

fn sp(z: f64) -> f64 {
    z.max(0.0) + (-z.abs()).exp().ln_1p()
}
fn sig(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

/// (ll, dmu, dtheta, dlogit) of one ZINB element (spec section 3).
fn zinb_elem(x: f64, mu: f64, th: f64, lg: f64, eps: f64, zi: bool) -> [f64; 4] {
    let lt = (th + eps).ln();
    let ltm = (th + mu + eps).ln();
    let (spn, dspn) = if zi { (sp(-lg), -sig(-lg)) } else { (0.0, 0.0) };
    if x < eps && zi {
        let z = -lg + th * (lt - ltm);
        let (s, ds) = (sp(z), sig(z));
        let dz_dth = lt - ltm + th / (th + eps) - th / (th + mu + eps);
        let dz_dmu = -th / (th + mu + eps);
        [-spn + s, ds * dz_dmu, ds * dz_dth, -dspn - ds]
    } else {
        let ll = -spn - if zi { lg } else { 0.0 } + th * (lt - ltm) - x * ltm + x * (mu + eps).ln()
            - lgamma(x + 1.0)
            + lgamma(x + th)
            - lgamma(th);
        let dmu = -th / (th + mu + eps) - x / (th + mu + eps) + x / (mu + eps);
        let dth = lt - ltm + th / (th + eps) - th / (th + mu + eps) - x / (th + mu + eps)
            + digamma(x + th)
            - digamma(th);
        let dlg = if zi { -dspn - 1.0 } else { 0.0 };
        [ll, dmu, dth, dlg]
    }
}

pub fn zinb_fwd(
    x: &[f32],
    mu: &[f32],
    th: &[f32],
    lg: &[f32],
    rows: usize,
    cols: usize,
    eps: f32,
    ll: &mut [f32],
) {
    for r in 0..rows {
        let mut s = 0.0;
        for j in 0..cols {
            let i = r * cols + j;
            s += zinb_elem(
                x[i] as f64,
                mu[i] as f64,
                th[j] as f64,
                lg[i] as f64,
                eps as f64,
                true,
            )[0];
        }
        ll[r] = s as f32;
    }
}

fn lik_bwd(
    x: &[f32],
    mu: &[f32],
    th: &[f32],
    lg: Option<&[f32]>,
    rows: usize,
    cols: usize,
    eps: f32,
    up: &[f32],
    dmu: &mut [f32],
    dth: &mut [f32],
    mut dlg: Option<&mut [f32]>,
) {
    let mut acc = vec![0.0f64; cols];
    for r in 0..rows {
        for j in 0..cols {
            let i = r * cols + j;
            let l = lg.map_or(0.0, |l| l[i] as f64);
            let e = zinb_elem(
                x[i] as f64,
                mu[i] as f64,
                th[j] as f64,
                l,
                eps as f64,
                lg.is_some(),
            );
            let u = up[r] as f64;
            dmu[i] = (u * e[1]) as f32;
            acc[j] += u * e[2];
            if let Some(d) = dlg.as_deref_mut() {
                d[i] = (u * e[3]) as f32;
            }
        }
    }
    for j in 0..cols {
        dth[j] = acc[j] as f32;
    }
}

pub fn zinb_fwd_bwd(
    x: &[f32],
    mu: &[f32],
    th: &[f32],
    lg: &[f32],
    rows: usize,
    cols: usize,
    eps: f32,
    up: &[f32],
    ll: &mut [f32],
    dmu: &mut [f32],
    dth: &mut [f32],
    dlg: &mut [f32],
) {
    zinb_fwd(x, mu, th, lg, rows, cols, eps, ll);
    lik_bwd(
        x,
        mu,
        th,
        Some(lg),
        rows,
        cols,
        eps,
        up,
        dmu,
        dth,
        Some(dlg),
    );
}

pub fn nb_fwd(
    x: &[f32],
    mu: &[f32],
    th: &[f32],
    rows: usize,
    cols: usize,
    eps: f32,
    ll: &mut [f32],
) {
    for r in 0..rows {
        let mut s = 0.0;
        for j in 0..cols {
            let i = r * cols + j;
            s += zinb_elem(
                x[i] as f64,
                mu[i] as f64,
                th[j] as f64,
                0.0,
                eps as f64,
                false,
            )[0];
        }
        ll[r] = s as f32;
    }
}

pub fn nb_fwd_bwd(
    x: &[f32],
    mu: &[f32],
    th: &[f32],
    rows: usize,
    cols: usize,
    eps: f32,
    up: &[f32],
    ll: &mut [f32],
    dmu: &mut [f32],
    dth: &mut [f32],
) {
    nb_fwd(x, mu, th, rows, cols, eps, ll);
    lik_bwd(x, mu, th, None, rows, cols, eps, up, dmu, dth, None);
}

/// loss = ln(clip(BC)), grads of loss * up.
pub fn bhattacharyya_fwd_bwd(a: &[f32], b: &[f32], up: f32, da: &mut [f32], db: &mut [f32]) -> f32 {
    let sa: f64 = a.iter().map(|&v| v as f64).sum();
    let sb: f64 = b.iter().map(|&v| v as f64).sum();
    let mut bc = 0.0;
    for i in 0..a.len() {
        bc += ((a[i] as f64 / sa) * (b[i] as f64 / sb)).abs().sqrt();
    }
    let loss = bc.clamp(1e-4, 1e4).ln();
    let dl_dbc = if (1e-4..=1e4).contains(&bc) {
        up as f64 / bc
    } else {
        0.0
    };
    // d sqrt|pq| / dp = 0.5 sqrt|q/p| sign(pq)... via s_i = sqrt|p_i q_i|: ds/dp = s/(2p).
    let (mut ta, mut tb) = (0.0, 0.0);
    let mut s = vec![0.0; a.len()];
    for i in 0..a.len() {
        let (p, q) = (a[i] as f64 / sa, b[i] as f64 / sb);
        s[i] = (p * q).abs().sqrt();
        ta += if p != 0.0 { s[i] / (2.0 * p) * p } else { 0.0 };
        tb += if q != 0.0 { s[i] / (2.0 * q) * q } else { 0.0 };
    }
    for i in 0..a.len() {
        let (p, q) = (a[i] as f64 / sa, b[i] as f64 / sb);
        let dsp = if p != 0.0 { s[i] / (2.0 * p) } else { 0.0 };
        let dsq = if q != 0.0 { s[i] / (2.0 * q) } else { 0.0 };
        // dp_k/da_i = (delta_ik - p_k)/sa.
        da[i] = (dl_dbc * (dsp - ta) / sa) as f32;
        db[i] = (dl_dbc * (dsq - tb) / sb) as f32;
    }
    loss as f32
}

pub fn kl_std_normal_fwd_bwd(
    m: &[f32],
    v: &[f32],
    rows: usize,
    cols: usize,
    up: &[f32],
    kl: &mut [f32],
    dm: &mut [f32],
    dv: &mut [f32],
) {
    for r in 0..rows {
        let mut s = 0.0f64;
        for j in 0..cols {
            let i = r * cols + j;
            let (mi, vi) = (m[i] as f64, v[i] as f64);
            s += 0.5 * (-vi.clamp(1e-4, 1e4).ln() + vi + mi * mi - 1.0);
            let u = up[r] as f64;
            dm[i] = (u * mi) as f32;
            let dlog = if (1e-4..=1e4).contains(&vi) {
                1.0 / vi
            } else {
                0.0
            };
            dv[i] = (u * 0.5 * (1.0 - dlog)) as f32;
        }
        kl[r] = s as f32;
    }
}

/// KL(N(m1,v1)||N(m2,v2)) = 0.5 sum(ln v2 - ln v1 + (v1 + (m1-m2)^2)/v2 - 1).
pub fn kl_normal_fwd_bwd(
    m1: &[f32],
    v1: &[f32],
    m2: &[f32],
    v2: &[f32],
    rows: usize,
    cols: usize,
    up: &[f32],
    kl: &mut [f32],
    d: [&mut [f32]; 4],
) {
    let [dm1, dv1, dm2, dv2] = d;
    for r in 0..rows {
        let mut s = 0.0f64;
        let u = up[r] as f64;
        for j in 0..cols {
            let i = r * cols + j;
            let (a, va, b, vb) = (m1[i] as f64, v1[i] as f64, m2[i] as f64, v2[i] as f64);
            let dd = a - b;
            s += 0.5 * (vb.ln() - va.ln() + (va + dd * dd) / vb - 1.0);
            dm1[i] = (u * dd / vb) as f32;
            dm2[i] = (-u * dd / vb) as f32;
            dv1[i] = (u * 0.5 * (-1.0 / va + 1.0 / vb)) as f32;
            dv2[i] = (u * 0.5 * (1.0 / vb - (va + dd * dd) / (vb * vb))) as f32;
        }
        kl[r] = s as f32;
    }
}

pub fn cross_entropy_masked_fwd_bwd(
    logits: &[f32],
    labels: &[u32],
    mask: Option<&[f32]>,
    rows: usize,
    cols: usize,
    up: f32,
    dl: &mut [f32],
) -> f32 {
    let used: f64 = (0..rows)
        .map(|r| mask.map_or(1.0, |m| (m[r] != 0.0) as u8 as f64))
        .sum();
    let mut loss = 0.0f64;
    for r in 0..rows {
        let row = &logits[r * cols..(r + 1) * cols];
        let w = mask.map_or(1.0, |m| (m[r] != 0.0) as u8 as f64);
        let mx = row.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b)) as f64;
        let lse = mx + row.iter().map(|&v| (v as f64 - mx).exp()).sum::<f64>().ln();
        let y = labels[r] as usize;
        if w != 0.0 {
            loss += lse - row[y] as f64;
        }
        for j in 0..cols {
            let p = (row[j] as f64 - lse).exp();
            let g = if w != 0.0 {
                (p - (j == y) as u8 as f64) / used
            } else {
                0.0
            };
            dl[r * cols + j] = (g * up as f64) as f32;
        }
    }
    if used > 0.0 {
        (loss / used) as f32
    } else {
        0.0
    }
}
