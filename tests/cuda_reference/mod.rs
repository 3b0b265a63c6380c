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
