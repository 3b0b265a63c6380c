//! CPU references (f64) of the CUDA kernels, for tests/cuda_ops.rs.
//!
//! Interim: each mirrors the formula of the CPU op named in the kernel's comment. When those
//! ops land (branches `losses`, `tape`), the tests compare against them as well.
#![allow(dead_code)]

pub mod special;

use special::{digamma, lgamma};

fn softplus(x: f64) -> f64 {
    x.max(0.0) + (-x.abs()).exp().ln_1p()
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// One ZINB (logit Some) or NB (None) element: (LL, dLL/dmu, dLL/dtheta, dLL/dlogit).
pub fn zinb_element(x: f64, mu: f64, th: f64, logit: Option<f64>, eps: f64, zero: f64) -> [f64; 4] {
    let lt = (th + eps).ln();
    let ltm = (th + mu + eps).ln();
    let pi_theta_log = th * (lt - ltm);
    let d_common = lt - ltm + th / (th + eps) - th / (th + mu + eps);
    match logit {
        Some(l) if x < zero => {
            let a = -l + pi_theta_log;
            let ll = softplus(a) - softplus(-l);
            let sa = sigmoid(a);
            [
                ll,
                -sa * th / (th + mu + eps),
                sa * d_common,
                sigmoid(-l) - sa,
            ]
        }
        _ => {
            let mut ll = pi_theta_log - x * ltm + x * (mu + eps).ln() - lgamma(x + 1.0)
                + lgamma(x + th)
                - lgamma(th);
            let mut dl = 0.0;
            if let Some(l) = logit {
                ll += -softplus(-l) - l;
                dl = -sigmoid(l);
            }
            let dm = -th / (th + mu + eps) - x / (th + mu + eps) + x / (mu + eps);
            let dt = d_common - x / (th + mu + eps) + digamma(x + th) - digamma(th);
            [ll, dm, dt, dl]
        }
    }
}

/// Reference of zinb_fwd_bwd: (ll_rows, dmu, dtheta, dlogit).
#[allow(clippy::too_many_arguments, clippy::type_complexity)]
pub fn zinb_fwd_bwd(
    x: &[f32],
    mu: &[f32],
    theta: &[f32],
    logit: Option<&[f32]>,
    upstream: &[f32],
    rows: usize,
    cols: usize,
    eps: f64,
    zero: f64,
) -> (Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>) {
    let mut ll_rows = vec![0.0; rows];
    let mut dmu = vec![0.0; rows * cols];
    let mut dlogit = vec![0.0; rows * cols];
    let mut dtheta = vec![0.0; cols];
    for r in 0..rows {
        let u = upstream[r] as f64;
        for c in 0..cols {
            let i = r * cols + c;
            let l = logit.map(|l| l[i] as f64);
            let [ll, dm, dt, dl] =
                zinb_element(x[i] as f64, mu[i] as f64, theta[c] as f64, l, eps, zero);
            ll_rows[r] += ll;
            dmu[i] = u * dm;
            dlogit[i] = u * dl;
            dtheta[c] += u * dt;
        }
    }
    (ll_rows, dmu, dtheta, dlogit)
}

/// Reference of bhattacharyya_fwd_bwd: ([BC, ln clip BC], da, db).
pub fn bhattacharyya(
    a: &[f32],
    b: &[f32],
    lo: f64,
    hi: f64,
    up: f64,
) -> ([f64; 2], Vec<f64>, Vec<f64>) {
    let sa: f64 = a.iter().map(|&v| v as f64).sum();
    let sb: f64 = b.iter().map(|&v| v as f64).sum();
    let t: Vec<f64> = a
        .iter()
        .zip(b)
        .map(|(&x, &y)| ((x as f64 / sa) * (y as f64 / sb)).abs().sqrt())
        .collect();
    let bc: f64 = t.iter().sum();
    let dlog = if bc >= lo && bc <= hi { 1.0 / bc } else { 0.0 };
    let g = up * dlog;
    let da = a
        .iter()
        .zip(&t)
        .map(|(&x, &ti)| g * 0.5 * (if ti != 0.0 { ti / x as f64 } else { 0.0 } - bc / sa))
        .collect();
    let db = b
        .iter()
        .zip(&t)
        .map(|(&y, &ti)| g * 0.5 * (if ti != 0.0 { ti / y as f64 } else { 0.0 } - bc / sb))
        .collect();
    ([bc, bc.clamp(lo, hi).ln()], da, db)
}

/// Reference of softmax_ce_fwd_bwd: (loss_rows, dlogits).
pub fn softmax_ce(z: &[f32], labels: &[i32], classes: usize, scale: f64) -> (Vec<f64>, Vec<f64>) {
    let rows = labels.len();
    let mut loss = vec![0.0; rows];
    let mut dz = vec![0.0; rows * classes];
    for r in 0..rows {
        let lab = labels[r];
        if lab < 0 || lab as usize >= classes {
            continue;
        }
        let row: Vec<f64> = z[r * classes..(r + 1) * classes]
            .iter()
            .map(|&v| v as f64)
            .collect();
        let m = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let lse = m + row.iter().map(|v| (v - m).exp()).sum::<f64>().ln();
        loss[r] = lse - row[lab as usize];
        for c in 0..classes {
            let p = (row[c] - lse).exp();
            dz[r * classes + c] = scale * (p - if c == lab as usize { 1.0 } else { 0.0 });
        }
    }
    (loss, dz)
}

/// splitmix64 finaliser, as common.cuh.
pub fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Uniform in [0, 1) at (seed, index), as common.cuh:uniform_at.
pub fn uniform_at(seed: u64, index: u64) -> f32 {
    let h = splitmix64(seed ^ splitmix64(index));
    (h >> 40) as f32 * (1.0 / 16_777_216.0)
}

/// Leaky ReLU epilogue reference: (out, dpre) for upstream dout.
#[allow(clippy::too_many_arguments)]
pub fn leaky_epilogue(
    input: &[f32],
    bias: &[f32],
    cols: usize,
    slope: f64,
    keep: f32,
    seed: u64,
    dout: &[f32],
) -> (Vec<f64>, Vec<f64>) {
    let mut out = vec![0.0; input.len()];
    let mut dpre = vec![0.0; input.len()];
    for i in 0..input.len() {
        let x = input[i] as f64 + bias[i % cols] as f64;
        let a = if x > 0.0 { x } else { slope * x };
        let kept = keep >= 1.0 || uniform_at(seed, i as u64) < keep;
        let k = if kept { 1.0 / keep as f64 } else { 0.0 };
        out[i] = a * k;
        dpre[i] = dout[i] as f64 * k * if x > 0.0 { 1.0 } else { slope };
    }
    (out, dpre)
}
