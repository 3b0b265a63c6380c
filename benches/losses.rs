//! Fused ZINB forward+backward vs the unfused composition of elementwise ops that autograd
//! would run (scVI's `log_zinb_positive` and its backward graph), at 512 x 2000.
//!
//! The unfused version materialises every temporary in its own parallel pass, like PyTorch
//! eager mode, but into buffers allocated once outside the timed loop (PyTorch would also
//! allocate), so the comparison favours the baseline.
//!
//! Run: `CARGO_TARGET_DIR=/work/target cargo bench --bench losses`

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use scdreamer::backend::cpu::losses::{CountGrads, Counts, likelihood_fwd_bwd};
use scdreamer::special::{digamma_f32, lgamma_f32};
use std::hint::black_box;

const ROWS: usize = 512;
const COLS: usize = 2000;
const EPS: f32 = 1e-4;
const CHUNK: usize = 16 * 1024;

struct Inputs {
    x: Vec<f32>,
    mu: Vec<f32>,
    theta: Vec<f32>,
    logit: Vec<f32>,
    up: Vec<f32>,
}

/// `zero_frac` of the entries are 0; the rest are counts 1..40 (NB-like) .
fn inputs(zero_frac: f64, seed: u64) -> Inputs {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let n = ROWS * COLS;
    let x = (0..n)
        .map(|_| {
            if rng.gen_bool(zero_frac) {
                0.0
            } else {
                rng.gen_range(1..40) as f32
            }
        })
        .collect();
    let mu = (0..n)
        .map(|_| 10f32.powf(rng.gen_range(-1.5..1.5)))
        .collect();
    let theta = (0..COLS)
        .map(|_| 10f32.powf(rng.gen_range(-1.0..2.0)))
        .collect();
    let logit = (0..n).map(|_| rng.gen_range(-4.0..2.0)).collect();
    Inputs {
        x,
        mu,
        theta,
        logit,
        up: vec![1.0; ROWS],
    }
}

fn softplus(z: f32) -> f32 {
    z.max(0.0) + (-z.abs()).exp().ln_1p()
}

fn sigmoid(z: f32) -> f32 {
    1.0 / (1.0 + (-z).exp())
}

fn map1(out: &mut [f32], a: &[f32], f: impl Fn(f32) -> f32 + Sync) {
    out.par_chunks_mut(CHUNK)
        .zip(a.par_chunks(CHUNK))
        .for_each(|(o, a)| {
            o.iter_mut().zip(a).for_each(|(o, &a)| *o = f(a));
        });
}

fn map2(out: &mut [f32], a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> f32 + Sync) {
    out.par_chunks_mut(CHUNK)
        .zip(a.par_chunks(CHUNK))
        .zip(b.par_chunks(CHUNK))
        .for_each(|((o, a), b)| {
            o.iter_mut()
                .zip(a)
                .zip(b)
                .for_each(|((o, &a), &b)| *o = f(a, b));
        });
}

/// `a` is `[rows*cols]`, `g` a per-gene vector broadcast over rows.
fn map_bcast(out: &mut [f32], a: &[f32], g: &[f32], f: impl Fn(f32, f32) -> f32 + Sync) {
    out.par_chunks_mut(COLS)
        .zip(a.par_chunks(COLS))
        .for_each(|(o, a)| {
            o.iter_mut()
                .zip(a)
                .zip(g)
                .for_each(|((o, &a), &g)| *o = f(a, g));
        });
}

/// Sum over rows (torch `sum(dim=0)`), parallel over column blocks.
fn col_sum(out: &mut [f32], a: &[f32]) {
    out.par_chunks_mut(256).enumerate().for_each(|(b, o)| {
        o.fill(0.0);
        for row in a.chunks(COLS) {
            o.iter_mut()
                .zip(&row[b * 256..])
                .for_each(|(o, &v)| *o += v);
        }
    });
}

fn row_sum(out: &mut [f32], a: &[f32]) {
    out.par_iter_mut()
        .zip(a.par_chunks(COLS))
        .for_each(|(o, row)| *o = row.iter().sum());
}

/// Temporaries of the unfused graph, allocated once.
struct Unfused {
    t: Vec<Vec<f32>>,
    g: Vec<Vec<f32>>,
    ll: Vec<f32>,
    dmu: Vec<f32>,
    dtheta: Vec<f32>,
    dlogit: Vec<f32>,
}

impl Unfused {
    fn new() -> Self {
        let n = ROWS * COLS;
        Unfused {
            t: vec![vec![0.0; n]; 40],
            g: vec![vec![0.0; COLS]; 10],
            ll: vec![0.0; ROWS],
            dmu: vec![0.0; n],
            dtheta: vec![0.0; COLS],
            dlogit: vec![0.0; n],
        }
    }

    /// scVI's log_zinb_positive forward, then the backward pass autograd builds for it.
    fn run(&mut self, inp: &Inputs) {
        let (x, mu, theta, pi) = (&inp.x[..], &inp.mu[..], &inp.theta[..], &inp.logit[..]);
        let [
            neg_pi,
            sp_pi,
            t1,
            t2,
            ltme,
            t3,
            t4,
            ptl,
            sp2,
            cz,
            mask0,
            mcz,
            mu_eps,
            lme,
            t5,
            t6,
            xt,
            lg1,
            x1,
            lg3,
            a1,
            a2,
            a3,
            a4,
            nz,
            mask1,
            mnz,
            res,
            g_res,
            g_cz,
            g_nz,
            g_sp_pi,
            sig2,
            g_ptl,
            sig1,
            g_neg_pi,
            tmp,
            g_t3,
            g_t5,
            g_ltme,
        ] = &mut self.t[..]
        else {
            unreachable!()
        };
        let [
            th_eps,
            lte,
            lg2,
            g_lg2,
            g_theta_a,
            g_lte,
            g_theta_b,
            g_theta_c,
            _,
            _,
        ] = &mut self.g[..]
        else {
            unreachable!()
        };
        // ---- forward
        map1(neg_pi, pi, |p| -p);
        map1(sp_pi, neg_pi, softplus);
        th_eps
            .iter_mut()
            .zip(theta)
            .for_each(|(o, &t)| *o = t + EPS);
        lte.iter_mut()
            .zip(th_eps.iter())
            .for_each(|(o, &t)| *o = t.ln());
        map_bcast(t1, mu, theta, |m, t| t + m);
        map1(t2, t1, |v| v + EPS);
        map1(ltme, t2, f32::ln);
        map_bcast(t3, ltme, lte, |l, a| a - l);
        map_bcast(t4, t3, theta, |v, t| t * v);
        map2(ptl, neg_pi, t4, |a, b| a + b);
        map1(sp2, ptl, softplus);
        map2(cz, sp2, sp_pi, |a, b| a - b);
        map1(mask0, x, |v| if v < EPS { 1.0 } else { 0.0 });
        map2(mcz, mask0, cz, |a, b| a * b);
        map1(mu_eps, mu, |m| m + EPS);
        map1(lme, mu_eps, f32::ln);
        map2(t5, lme, ltme, |a, b| a - b);
        map2(t6, x, t5, |a, b| a * b);
        map_bcast(xt, x, theta, |v, t| v + t);
        map1(lg1, xt, lgamma_f32);
        lg2.iter_mut()
            .zip(theta)
            .for_each(|(o, &t)| *o = lgamma_f32(t));
        map1(x1, x, |v| v + 1.0);
        map1(lg3, x1, lgamma_f32);
        map2(a1, ptl, sp_pi, |a, b| a - b);
        map2(a2, a1, t6, |a, b| a + b);
        map2(a3, a2, lg1, |a, b| a + b);
        map_bcast(a4, a3, lg2, |a, g| a - g);
        map2(nz, a4, lg3, |a, b| a - b);
        map1(mask1, x, |v| if v > EPS { 1.0 } else { 0.0 });
        map2(mnz, mask1, nz, |a, b| a * b);
        map2(res, mcz, mnz, |a, b| a + b);
        row_sum(&mut self.ll, res);
        // ---- backward of sum_r ll[r] * up[r]
        g_res
            .par_chunks_mut(COLS)
            .zip(&inp.up)
            .for_each(|(o, &u)| o.fill(u));
        map2(g_cz, g_res, mask0, |a, b| a * b);
        map2(g_nz, g_res, mask1, |a, b| a * b);
        col_sum(g_lg2, g_nz);
        map2(g_sp_pi, g_cz, g_nz, |a, b| -(a + b));
        map1(sig2, ptl, sigmoid);
        map2(g_ptl, g_cz, sig2, |a, b| a * b);
        map2(tmp, g_ptl, g_nz, |a, b| a + b);
        std::mem::swap(g_ptl, tmp);
        map1(sig1, neg_pi, sigmoid);
        map2(tmp, g_sp_pi, sig1, |a, b| a * b);
        map2(g_neg_pi, g_ptl, tmp, |a, b| a + b);
        map1(&mut self.dlogit, g_neg_pi, |v| -v);
        map2(tmp, g_ptl, t3, |a, b| a * b);
        col_sum(g_theta_a, tmp);
        map_bcast(g_t3, g_ptl, theta, |g, t| g * t);
        col_sum(g_lte, g_t3);
        map2(g_t5, g_nz, x, |a, b| a * b);
        map2(g_ltme, g_t3, g_t5, |a, b| -a - b);
        map2(tmp, g_t5, mu_eps, |a, b| a / b);
        map2(g_t3, g_ltme, t2, |a, b| a / b); // g_t2, reusing g_t3's buffer
        map2(&mut self.dmu, tmp, g_t3, |a, b| a + b);
        col_sum(g_theta_b, g_t3);
        map1(tmp, xt, digamma_f32);
        map2(g_t5, g_nz, tmp, |a, b| a * b); // g_xt
        col_sum(g_theta_c, g_t5);
        for k in 0..COLS {
            self.dtheta[k] = g_theta_a[k] + g_theta_b[k] + g_theta_c[k]
                - g_lg2[k] * digamma_f32(theta[k])
                + g_lte[k] / th_eps[k];
        }
    }
}

struct Fused {
    ll: Vec<f32>,
    dmu: Vec<f32>,
    dtheta: Vec<f32>,
    dlogit: Vec<f32>,
}

impl Fused {
    fn new() -> Self {
        let n = ROWS * COLS;
        Fused {
            ll: vec![0.0; ROWS],
            dmu: vec![0.0; n],
            dtheta: vec![0.0; COLS],
            dlogit: vec![0.0; n],
        }
    }

    fn run(&mut self, i: &Inputs) {
        likelihood_fwd_bwd(
            &Counts::new(&i.x, &i.mu, &i.theta, ROWS, EPS).zinb(&i.logit),
            &mut self.ll,
            CountGrads::new(&i.up, &mut self.dmu, &mut self.dtheta).zinb(&mut self.dlogit),
        );
    }
}

/// Guard against benchmarking two different computations: both must agree (f32 unfused
/// is the less accurate one, hence the loose tolerance).
fn assert_agree(name: &str, a: &[f32], b: &[f32], rtol: f32) {
    let scale = b.iter().map(|v| v.abs()).fold(0.0f32, f32::max).max(1e-6);
    for (k, (&u, &f)) in a.iter().zip(b).enumerate() {
        assert!(
            (u - f).abs() <= rtol * scale,
            "{name}[{k}]: unfused {u} vs fused {f}"
        );
    }
}

fn bench_zinb(c: &mut Criterion) {
    for (label, zero_frac) in [("zeros75", 0.75), ("zeros0", 0.0)] {
        let inp = inputs(zero_frac, 42);
        let (mut fused, mut unfused) = (Fused::new(), Unfused::new());
        fused.run(&inp);
        unfused.run(&inp);
        assert_agree("ll", &unfused.ll, &fused.ll, 1e-4);
        assert_agree("dmu", &unfused.dmu, &fused.dmu, 1e-4);
        assert_agree("dlogit", &unfused.dlogit, &fused.dlogit, 1e-4);
        assert_agree("dtheta", &unfused.dtheta, &fused.dtheta, 1e-3);

        let mut group = c.benchmark_group(format!("zinb_fwd_bwd_512x2000_{label}"));
        group.throughput(Throughput::Elements((ROWS * COLS) as u64));
        group.sample_size(20);
        group.bench_function("fused", |b| b.iter(|| fused.run(black_box(&inp))));
        group.bench_function("unfused", |b| b.iter(|| unfused.run(black_box(&inp))));
        group.finish();
    }
}

criterion_group!(benches, bench_zinb);
criterion_main!(benches);
