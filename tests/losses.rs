//! Loss kernels against an independent reference (scvi-tools + torch autograd + scipy, written
//! by scripts/make_loss_fixtures.py), finite differences in f64, normalisation of the
//! distributions, extremes, and thread-count determinism.
//!
//! Tolerances: `|got - want| <= rtol * |want| + atol`, stated per test. f32 storage rounds
//! every input and output once (relative 6e-8), the kernels compute in f64, so f32 checks
//! use rtol 1e-6 and f64 checks use rtol 1e-9 or tighter.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use scdreamer::backend::cpu::losses::{
    self, CountGrads, Counts, PerRow, cross_entropy_masked_fwd_bwd, kl_normal_fwd_bwd,
    kl_std_normal_fwd_bwd, label_loss_masked_fwd_bwd, likelihood_fwd, likelihood_fwd_bwd,
};
use scdreamer::ops::bhattacharyya::bhattacharyya_fwd_bwd;
use scdreamer::special;
use serde_json::Value;

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/losses/losses_reference.json"
);

fn fixture() -> Value {
    let text = std::fs::read_to_string(FIXTURE)
        .expect("fixture missing: run scripts/make_loss_fixtures.py");
    serde_json::from_str(&text).expect("fixture is not valid JSON")
}

fn nums(v: &Value, key: &str) -> Vec<f64> {
    v[key]
        .as_array()
        .unwrap_or_else(|| panic!("fixture key `{key}` missing"))
        .iter()
        .map(|x| x.as_f64().expect("number"))
        .collect()
}

fn to_f32(v: &[f64]) -> Vec<f32> {
    v.iter().map(|&x| x as f32).collect()
}

#[track_caller]
fn assert_close(what: &str, got: f64, want: f64, rtol: f64, atol: f64) {
    let ok = (got - want).abs() <= rtol * want.abs() + atol;
    assert!(
        ok,
        "{what}: got {got:e}, want {want:e} (diff {:e}, rtol {rtol:e}, atol {atol:e})",
        (got - want).abs()
    );
}

/// [`assert_close`] at every index of `want`, each named `what[i]`.
#[track_caller]
fn assert_all_close(what: &str, got: &[f64], want: &[f64], rtol: f64, atol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    for i in 0..want.len() {
        assert_close(&format!("{what}[{i}]"), got[i], want[i], rtol, atol);
    }
}

/// Outputs of one ZINB call in f64, whatever the storage type.
struct ZinbOut {
    ll: Vec<f64>,
    dmu: Vec<f64>,
    dtheta: Vec<f64>,
    dlogit: Vec<f64>,
}

/// The fused ZINB kernel (`logit` given) or the NB kernel on `[x, mu, theta]`, in f64.
fn run_lik<T: losses::LossFloat>(
    xmt: [&[T]; 3],
    logit: Option<&[T]>,
    rows: usize,
    cols: usize,
    eps: T,
    up: &[T],
) -> ZinbOut {
    let [x, mu, theta] = xmt;
    let zero = T::from_f64(0.0);
    let (mut ll, mut dmu, mut dth) = (vec![zero; rows], vec![zero; rows * cols], vec![zero; cols]);
    let mut dl = vec![zero; if logit.is_some() { rows * cols } else { 0 }];
    let a = Counts::new(x, mu, theta, rows, eps);
    let g = CountGrads::new(up, &mut dmu, &mut dth);
    match logit {
        Some(logit) => likelihood_fwd_bwd(&a.zinb(logit), &mut ll, g.zinb(&mut dl)),
        None => likelihood_fwd_bwd(&a, &mut ll, g),
    }
    let w = |v: Vec<T>| v.into_iter().map(|t| t.to_f64()).collect();
    ZinbOut {
        ll: w(ll),
        dmu: w(dmu),
        dtheta: w(dth),
        dlogit: w(dl),
    }
}

// ---------------------------------------------------------------- fixture: ZINB and NB

/// Absolute rounding noise of the f64 reference at one element: scVI forms
/// θ(ln(θ+e) - ln(θ+μ+e)) and lgamma(x+θ) - lgamma(θ) as differences of numbers of size
/// θ·|ln(θ+μ)|, so they carry ~θ(1 + |ln(θ+μ)|)·2e-16 absolute error (at θ = 1e5 a relative
/// error of ~1e-7 on a d of 1e-3); the gradients inherit it through O(1) factors.
fn reference_noise(theta: f64, mu: f64) -> f64 {
    1e-15 * (1.0 + theta) * (1.0 + (theta + mu).ln().abs())
}

/// Per element (rows = cols = 1), f32 storage as in training, against scvi-tools in f64.
/// Absolute floors: ll 1e-6 (values up to ~1e6 are covered by rtol), gradients 1e-9.
#[test]
fn zinb_elements_match_scvi_f32() {
    let fx = fixture();
    for set in fx["zinb"].as_array().unwrap() {
        let eps = set["eps"].as_f64().unwrap();
        let (x, mu, th, lg) = (
            nums(set, "x"),
            nums(set, "mu"),
            nums(set, "theta"),
            nums(set, "logit"),
        );
        let (ll, dmu, dth, dl) = (
            nums(set, "ll"),
            nums(set, "dmu"),
            nums(set, "dtheta"),
            nums(set, "dlogit"),
        );
        for i in 0..x.len() {
            let o = run_lik(
                [&[x[i] as f32], &[mu[i] as f32], &[th[i] as f32]],
                Some(&[lg[i] as f32]),
                1,
                1,
                eps as f32,
                &[1.0f32],
            );
            let case = format!(
                "eps={eps} x={} mu={} theta={} logit={}",
                x[i], mu[i], th[i], lg[i]
            );
            assert_close(&format!("ll {case}"), o.ll[0], ll[i], 1e-6, 1e-6);
            assert_close(&format!("dmu {case}"), o.dmu[0], dmu[i], 1e-6, 1e-9);
            assert_close(&format!("dtheta {case}"), o.dtheta[0], dth[i], 1e-6, 1e-9);
            assert_close(&format!("dlogit {case}"), o.dlogit[0], dl[i], 1e-6, 1e-9);
        }
    }
}

/// Same cases in f64 storage, batched as a [x, mu, logit] x [theta] matrix with random
/// upstream weights: checks the row sums, the upstream weighting and the dθ reduction.
/// rtol 1e-9, plus the reference's own rounding noise (see [`reference_noise`]).
#[test]
fn zinb_batched_matches_scvi_f64() {
    let fx = fixture();
    let (nx, nm, nt, nl) = (5, 4, 4, 3);
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    for set in fx["zinb"].as_array().unwrap() {
        let eps = set["eps"].as_f64().unwrap();
        let f = |k: &str| nums(set, k);
        let (x, mu, th, lg, ll, dmu, dth, dl) = (
            f("x"),
            f("mu"),
            f("theta"),
            f("logit"),
            f("ll"),
            f("dmu"),
            f("dtheta"),
            f("dlogit"),
        );
        assert_eq!(x.len(), nx * nm * nt * nl);
        let rows = nx * nm * nl;
        let cols = nt;
        // Fixture order is itertools.product(x, mu, theta, logit).
        let idx = |r: usize, c: usize| {
            let (xi, rest) = (r / (nm * nl), r % (nm * nl));
            let (mi, li) = (rest / nl, rest % nl);
            ((xi * nm + mi) * nt + c) * nl + li
        };
        let gather = |v: &[f64]| -> Vec<f64> {
            (0..rows * cols)
                .map(|k| v[idx(k / cols, k % cols)])
                .collect()
        };
        let theta: Vec<f64> = (0..cols).map(|c| th[idx(0, c)]).collect();
        let up: Vec<f64> = (0..rows).map(|_| rng.gen_range(0.25..2.0)).collect();
        let o = run_lik(
            [&gather(&x), &gather(&mu), &theta],
            Some(&gather(&lg)),
            rows,
            cols,
            eps,
            &up,
        );
        let (ref_ll, ref_dmu, ref_dl) = (gather(&ll), gather(&dmu), gather(&dl));
        let mu_m = gather(&mu);
        let noise = |k: usize| reference_noise(theta[k % cols], mu_m[k]);
        for r in 0..rows {
            let want: f64 = ref_ll[r * cols..(r + 1) * cols].iter().sum();
            let row_noise: f64 = (r * cols..(r + 1) * cols).map(noise).sum();
            assert_close(
                &format!("eps={eps} row {r} ll"),
                o.ll[r],
                want,
                1e-9,
                row_noise,
            );
            for c in 0..cols {
                let k = r * cols + c;
                let (what, n) = (format!("eps={eps} [{r},{c}]"), up[r] * noise(k));
                assert_close(
                    &format!("dmu {what}"),
                    o.dmu[k],
                    up[r] * ref_dmu[k],
                    1e-9,
                    n,
                );
                assert_close(
                    &format!("dlogit {what}"),
                    o.dlogit[k],
                    up[r] * ref_dl[k],
                    1e-9,
                    n,
                );
            }
        }
        for c in 0..cols {
            let want: f64 = (0..rows).map(|r| up[r] * dth[idx(r, c)]).sum();
            let col_noise: f64 = (0..rows).map(|r| up[r] * noise(r * cols + c)).sum();
            let what = format!("eps={eps} dtheta[{c}] (theta {})", theta[c]);
            assert_close(&what, o.dtheta[c], want, 1e-9, col_noise);
        }
    }
}

/// NB per element in f32 and batched along θ in f64 (same tolerances as ZINB).
#[test]
fn nb_matches_scvi() {
    let fx = fixture();
    let set = &fx["nb"];
    let eps = set["eps"].as_f64().unwrap();
    let (x, mu, th) = (nums(set, "x"), nums(set, "mu"), nums(set, "theta"));
    let (ll, dmu, dth) = (nums(set, "ll"), nums(set, "dmu"), nums(set, "dtheta"));
    for i in 0..x.len() {
        let o = run_lik(
            [&[x[i] as f32], &[mu[i] as f32], &[th[i] as f32]],
            None,
            1,
            1,
            eps as f32,
            &[1.0f32],
        );
        let case = format!("x={} mu={} theta={}", x[i], mu[i], th[i]);
        assert_close(&format!("NB ll {case}"), o.ll[0], ll[i], 1e-6, 1e-6);
        assert_close(&format!("NB dmu {case}"), o.dmu[0], dmu[i], 1e-6, 1e-9);
        assert_close(
            &format!("NB dtheta {case}"),
            o.dtheta[0],
            dth[i],
            1e-6,
            1e-9,
        );
    }
    // Batched: rows = (x, mu) pairs, cols = the 4 thetas; order product(x, mu, theta).
    let (rows, cols) = (x.len() / 4, 4);
    let up = vec![1.0f64; rows];
    let o = run_lik([&x, &mu, &th[..cols]], None, rows, cols, eps, &up);
    for r in 0..rows {
        let want: f64 = ll[r * cols..(r + 1) * cols].iter().sum();
        let row_noise: f64 = (r * cols..(r + 1) * cols)
            .map(|k| reference_noise(th[k], mu[k]))
            .sum();
        assert_close(&format!("NB row {r}"), o.ll[r], want, 1e-9, row_noise);
    }
    for c in 0..cols {
        let want: f64 = (0..rows).map(|r| dth[r * cols + c]).sum();
        let col_noise: f64 = (0..rows)
            .map(|r| reference_noise(th[c], mu[r * cols + c]))
            .sum();
        assert_close(
            &format!("NB dtheta[{c}]"),
            o.dtheta[c],
            want,
            1e-9,
            col_noise,
        );
    }
    // Forward-only entry point agrees with the fused one.
    let mut ll_only = vec![0.0f64; rows];
    likelihood_fwd(&Counts::new(&x, &mu, &th[..cols], rows, eps), &mut ll_only);
    assert_eq!(ll_only, o.ll);
}

// ---------------------------------------------------------------- fixture: special functions

/// scipy.special.gammaln / psi: f64 to 1e-13 relative (+1e-14 abs near the roots),
/// f32 versions to 2e-6 relative (+2e-6 abs).
#[test]
fn special_functions_match_scipy() {
    let fx = fixture();
    let s = &fx["special"];
    let (z, lg, dg) = (nums(s, "z"), nums(s, "lgamma"), nums(s, "digamma"));
    for i in 0..z.len() {
        assert_close(
            &format!("lgamma({})", z[i]),
            special::lgamma(z[i]),
            lg[i],
            1e-13,
            1e-14,
        );
        assert_close(
            &format!("digamma({})", z[i]),
            special::digamma(z[i]),
            dg[i],
            1e-13,
            1e-14,
        );
        let z32 = z[i] as f32;
        // Compare the f32 versions at the f32-rounded argument.
        let (lg_at, dg_at) = (special::lgamma(z32 as f64), special::digamma(z32 as f64));
        assert_close(
            &format!("lgamma_f32({z32})"),
            special::lgamma_f32(z32) as f64,
            lg_at,
            2e-6,
            2e-6,
        );
        assert_close(
            &format!("digamma_f32({z32})"),
            special::digamma_f32(z32) as f64,
            dg_at,
            2e-6,
            2e-6,
        );
    }
}

// ---------------------------------------------------------------- fixture: BC, KL, CE

#[test]
fn bhattacharyya_matches_torch() {
    let fx = fixture();
    for (k, case) in fx["bhattacharyya"].as_array().unwrap().iter().enumerate() {
        let (a, b) = (nums(case, "a"), nums(case, "b"));
        let (loss, da, db) = (
            case["loss"].as_f64().unwrap(),
            nums(case, "da"),
            nums(case, "db"),
        );
        let n = a.len();
        let (mut ga, mut gb) = (vec![0.0f64; n], vec![0.0f64; n]);
        let got = bhattacharyya_fwd_bwd(&a, &b, &mut ga, &mut gb);
        assert_close(&format!("BC case {k} loss"), got, loss, 1e-12, 1e-12);
        assert_all_close(&format!("BC case {k} da"), &ga, &da, 1e-10, 1e-12);
        assert_all_close(&format!("BC case {k} db"), &gb, &db, 1e-10, 1e-12);
        let (mut ga32, mut gb32) = (vec![0.0f32; n], vec![0.0f32; n]);
        let got32 = bhattacharyya_fwd_bwd(&to_f32(&a), &to_f32(&b), &mut ga32, &mut gb32);
        assert_close(
            &format!("BC f32 case {k} loss"),
            got32 as f64,
            loss,
            1e-6,
            1e-6,
        );
        let ga32: Vec<f64> = ga32.iter().map(|&v| v as f64).collect();
        assert_all_close(&format!("BC f32 case {k} da"), &ga32, &da, 1e-5, 1e-7);
    }
}

#[test]
fn kl_matches_torch() {
    let fx = fixture();
    let s = &fx["kl_std_normal"];
    let (rows, cols) = (
        s["rows"].as_u64().unwrap() as usize,
        s["cols"].as_u64().unwrap() as usize,
    );
    let (m, v, up) = (nums(s, "m"), nums(s, "v"), nums(s, "upstream"));
    let (mut kl, mut dm, mut dv) = (
        vec![0.0; rows],
        vec![0.0; rows * cols],
        vec![0.0; rows * cols],
    );
    kl_std_normal_fwd_bwd(&m, &v, PerRow::new(cols, &up, &mut kl), &mut dm, &mut dv);
    for (name, got, want) in [
        ("kl", &kl, nums(s, "kl")),
        ("dm", &dm, nums(s, "dm")),
        ("dv", &dv, nums(s, "dv")),
    ] {
        assert_all_close(&format!("KL std {name}"), got, &want, 1e-12, 1e-12);
    }
    let s = &fx["kl_normal"];
    let f = |k: &str| nums(s, k);
    let (m1, v1, m2, v2, up) = (f("m1"), f("v1"), f("m2"), f("v2"), f("upstream"));
    let n = rows * cols;
    let (mut kl, mut g1, mut h1, mut g2, mut h2) = (
        vec![0.0; rows],
        vec![0.0; n],
        vec![0.0; n],
        vec![0.0; n],
        vec![0.0; n],
    );
    let kl_rows = PerRow::new(cols, &up, &mut kl);
    kl_normal_fwd_bwd(
        &m1, &v1, &m2, &v2, kl_rows, &mut g1, &mut h1, &mut g2, &mut h2,
    );
    for (name, got, want) in [
        ("kl", &kl, f("kl")),
        ("dm1", &g1, f("dm1")),
        ("dv1", &h1, f("dv1")),
        ("dm2", &g2, f("dm2")),
        ("dv2", &h2, f("dv2")),
    ] {
        assert_all_close(&format!("KL normal {name}"), got, &want, 1e-11, 1e-12);
    }
}

#[test]
fn cross_entropy_matches_torch() {
    let fx = fixture();
    for (k, case) in fx["cross_entropy"].as_array().unwrap().iter().enumerate() {
        let rows = case["rows"].as_u64().unwrap() as usize;
        let classes = case["classes"].as_u64().unwrap() as usize;
        let logits = nums(case, "logits");
        let labels: Vec<u32> = case["labels"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u32)
            .collect();
        let mask: Option<Vec<f64>> = case["mask"]
            .as_array()
            .map(|m| m.iter().map(|v| v.as_f64().unwrap()).collect());
        let (loss, dl) = (case["loss"].as_f64().unwrap(), nums(case, "dlogits"));
        let mut g = vec![f64::NAN; rows * classes];
        let got =
            cross_entropy_masked_fwd_bwd(&logits, &labels, mask.as_deref(), rows, classes, &mut g);
        assert_close(&format!("CE case {k} loss"), got, loss, 1e-12, 1e-12);
        assert_all_close(&format!("CE case {k} dlogits"), &g, &dl, 1e-10, 1e-13);
        // f32 with the large logit (80): the max shift keeps it finite and accurate.
        let mask32 = mask.as_ref().map(|m| to_f32(m));
        let mut g32 = vec![0.0f32; rows * classes];
        let got32 = cross_entropy_masked_fwd_bwd(
            &to_f32(&logits),
            &labels,
            mask32.as_deref(),
            rows,
            classes,
            &mut g32,
        );
        assert_close(
            &format!("CE f32 case {k} loss"),
            got32 as f64,
            loss,
            1e-5,
            1e-6,
        );
    }
}

/// The generalized cross-entropy (Sup's `--label-loss gce`): its value is the weighted mean of
/// (1 - p^q) / q, its gradient matches central differences of that value, and it tends to the
/// cross-entropy as q -> 0.
#[test]
fn generalized_cross_entropy_value_gradient_and_limit() {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let (rows, classes) = (9, 4);
    let logits: Vec<f64> = (0..rows * classes)
        .map(|_| rng.gen_range(-3.0..3.0))
        .collect();
    let labels: Vec<u32> = (0..rows).map(|r| (r * 7 % classes) as u32).collect();
    let mask: Vec<f64> = (0..rows).map(|r| [0.0, 1.0, 0.5, 2.0][r % 4]).collect();
    let q = 0.7;
    let value = |z: &[f64]| {
        let mut g = vec![0.0; rows * classes];
        label_loss_masked_fwd_bwd(z, &labels, Some(&mask), rows, classes, q, &mut g)
    };
    // Reference: softmax by hand, weighted mean over the selected rows.
    let (mut num, mut den) = (0.0, 0.0);
    for r in 0..rows {
        let row = &logits[r * classes..(r + 1) * classes];
        let sum: f64 = row.iter().map(|v| v.exp()).sum();
        let p = row[labels[r] as usize].exp() / sum;
        num += mask[r] * (1.0 - p.powf(q)) / q;
        den += mask[r];
    }
    let mut grad = vec![f64::NAN; rows * classes];
    let got = label_loss_masked_fwd_bwd(&logits, &labels, Some(&mask), rows, classes, q, &mut grad);
    assert_close("GCE value", got, num / den, 1e-12, 1e-14);
    let h = 1e-6;
    for i in 0..rows * classes {
        let (mut up, mut down) = (logits.clone(), logits.clone());
        up[i] += h;
        down[i] -= h;
        let fd = (value(&up) - value(&down)) / (2.0 * h);
        assert_close(&format!("GCE dlogit {i}"), grad[i], fd, 1e-6, 1e-9);
    }
    // q -> 0: the cross-entropy, value and gradient.
    let mut g_ce = vec![0.0; rows * classes];
    let ce = cross_entropy_masked_fwd_bwd(&logits, &labels, Some(&mask), rows, classes, &mut g_ce);
    let mut g_small = vec![0.0; rows * classes];
    let small = label_loss_masked_fwd_bwd(
        &logits,
        &labels,
        Some(&mask),
        rows,
        classes,
        1e-7,
        &mut g_small,
    );
    assert_close("GCE q -> 0 value", small, ce, 1e-5, 1e-6);
    assert_all_close("GCE q -> 0 dlogits", &g_small, &g_ce, 1e-5, 1e-6);
    // A row the model finds unlikely pulls less than under the cross-entropy (the robustness).
    let r = (0..rows)
        .filter(|&r| mask[r] > 0.0)
        .min_by(|&a, &b| {
            let p = |r: usize| logits[r * classes + labels[r] as usize];
            p(a).total_cmp(&p(b))
        })
        .unwrap();
    let norm = |g: &[f64]| {
        g[r * classes..(r + 1) * classes]
            .iter()
            .map(|v| v.abs())
            .sum::<f64>()
    };
    assert!(
        norm(&grad) < 0.8 * norm(&g_ce),
        "GCE does not damp an unlikely label"
    );
}

// ---------------------------------------------------------------- finite differences (f64)

/// Random ZINB/NB inputs: 40% zeros, integer counts, and continuous values in [0, 1] as in
/// the authors' preset; μ, θ log-uniform over six decades; logits N(0, 3).
fn random_inputs(rng: &mut ChaCha8Rng, rows: usize, cols: usize) -> [Vec<f64>; 5] {
    let n = rows * cols;
    let x = (0..n)
        .map(|_| match rng.gen_range(0..5) {
            0 | 1 => 0.0,
            2 => rng.gen_range(0..30) as f64,
            _ => rng.gen_range(0.0..1.0),
        })
        .collect();
    let mu = (0..n)
        .map(|_| 10f64.powf(rng.gen_range(-3.0..3.0)))
        .collect();
    let theta = (0..cols)
        .map(|_| 10f64.powf(rng.gen_range(-2.0..4.0)))
        .collect();
    let logit = (0..n).map(|_| rng.gen_range(-6.0..6.0)).collect();
    let up = (0..rows).map(|_| rng.gen_range(-1.5..2.0)).collect();
    [x, mu, theta, logit, up]
}

/// Central difference of `f` at coordinate `k` of `v`, relative step 1e-6.
fn central_diff(v: &mut [f64], k: usize, f: &mut dyn FnMut(&[f64]) -> f64) -> (f64, f64) {
    let orig = v[k];
    let h = 1e-6 * orig.abs().max(1e-3);
    v[k] = orig + h;
    let plus = f(v);
    v[k] = orig - h;
    let minus = f(v);
    v[k] = orig;
    ((plus - minus) / (2.0 * h), h)
}

/// Checks every coordinate for small shapes and 40 random ones otherwise. Tolerance:
/// rtol 1e-5 (truncation of the central difference is ~1e-12 relative; most of this is
/// slack) plus the rounding noise of the objective, 1e-15 · Σ|terms| / h.
fn check_fd(
    name: &str,
    rng: &mut ChaCha8Rng,
    v: &mut [f64],
    analytic: &[f64],
    scale: f64,
    f: &mut dyn FnMut(&[f64]) -> f64,
) {
    let coords: Vec<usize> = if v.len() <= 200 {
        (0..v.len()).collect()
    } else {
        (0..40).map(|_| rng.gen_range(0..v.len())).collect()
    };
    for k in coords {
        let (fd, h) = central_diff(v, k, f);
        let noise = 1e-15 * scale / h;
        assert_close(
            &format!("{name}[{k}] (value {})", v[k]),
            analytic[k],
            fd,
            1e-5,
            noise + 1e-12,
        );
    }
}

const SHAPES: [(usize, usize); 6] = [(1, 1), (1, 7), (3, 5), (13, 33), (5, 1), (37, 2000)];

#[test]
fn zinb_gradients_match_finite_differences() {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    for (s, &(rows, cols)) in SHAPES.iter().enumerate() {
        let eps = if s % 2 == 0 { 1e-4 } else { 1e-8 };
        let [x, mut mu, mut theta, mut logit, up] = random_inputs(&mut rng, rows, cols);
        let o = run_lik([&x, &mu, &theta], Some(&logit), rows, cols, eps, &up);
        let scale = o.ll.iter().map(|v| v.abs()).sum::<f64>() + (rows * cols) as f64;
        let objective = |x: &[f64], mu: &[f64], th: &[f64], lg: &[f64]| -> f64 {
            let mut ll = vec![0.0; rows];
            likelihood_fwd(&Counts::new(x, mu, th, rows, eps).zinb(lg), &mut ll);
            ll.iter().zip(&up).map(|(l, u)| l * u).sum()
        };
        let tag = format!("ZINB {rows}x{cols} eps={eps}");
        let (th0, lg0) = (theta.clone(), logit.clone());
        check_fd(
            &format!("{tag} dmu"),
            &mut rng,
            &mut mu,
            &o.dmu,
            scale,
            &mut |m| objective(&x, m, &th0, &lg0),
        );
        let mu0 = mu.clone();
        check_fd(
            &format!("{tag} dtheta"),
            &mut rng,
            &mut theta,
            &o.dtheta,
            scale,
            &mut |t| objective(&x, &mu0, t, &lg0),
        );
        check_fd(
            &format!("{tag} dlogit"),
            &mut rng,
            &mut logit,
            &o.dlogit,
            scale,
            &mut |l| objective(&x, &mu0, &th0, l),
        );
        // The forward-only entry point computes bit-identical row sums.
        let mut ll = vec![0.0; rows];
        likelihood_fwd(
            &Counts::new(&x, &mu, &theta, rows, eps).zinb(&logit),
            &mut ll,
        );
        assert_eq!(
            ll, o.ll,
            "{tag}: the forward-only ZINB differs from the fused one"
        );
    }
}

#[test]
fn nb_gradients_match_finite_differences() {
    let mut rng = ChaCha8Rng::seed_from_u64(12);
    for &(rows, cols) in &SHAPES {
        let eps = 1e-8;
        let [x, mut mu, mut theta, _, up] = random_inputs(&mut rng, rows, cols);
        let o = run_lik([&x, &mu, &theta], None, rows, cols, eps, &up);
        let scale = o.ll.iter().map(|v| v.abs()).sum::<f64>() + (rows * cols) as f64;
        let objective = |mu: &[f64], th: &[f64]| -> f64 {
            let mut ll = vec![0.0; rows];
            likelihood_fwd(&Counts::new(&x, mu, th, rows, eps), &mut ll);
            ll.iter().zip(&up).map(|(l, u)| l * u).sum()
        };
        let tag = format!("NB {rows}x{cols}");
        let th0 = theta.clone();
        check_fd(
            &format!("{tag} dmu"),
            &mut rng,
            &mut mu,
            &o.dmu,
            scale,
            &mut |m| objective(m, &th0),
        );
        let mu0 = mu.clone();
        check_fd(
            &format!("{tag} dtheta"),
            &mut rng,
            &mut theta,
            &o.dtheta,
            scale,
            &mut |t| objective(&mu0, t),
        );
    }
}

#[test]
fn kl_and_bc_and_ce_gradients_match_finite_differences() {
    let mut rng = ChaCha8Rng::seed_from_u64(13);
    for &(rows, cols) in &[(1usize, 1usize), (1, 10), (7, 3), (128, 10)] {
        let n = rows * cols;
        let normal = |rng: &mut ChaCha8Rng, sd: f64| {
            (0..n).map(|_| rng.gen_range(-sd..sd)).collect::<Vec<f64>>()
        };
        let var = |rng: &mut ChaCha8Rng| {
            (0..n)
                .map(|_| 10f64.powf(rng.gen_range(-3.0..3.0)))
                .collect::<Vec<f64>>()
        };
        let up: Vec<f64> = (0..rows).map(|_| rng.gen_range(-1.0..2.0)).collect();
        let (mut m1, mut v1, mut m2, mut v2) = (
            normal(&mut rng, 2.0),
            var(&mut rng),
            normal(&mut rng, 2.0),
            var(&mut rng),
        );
        let tag = format!("{rows}x{cols}");

        let (mut kl, mut dm, mut dv) = (vec![0.0; rows], vec![0.0; n], vec![0.0; n]);
        kl_std_normal_fwd_bwd(&m1, &v1, PerRow::new(cols, &up, &mut kl), &mut dm, &mut dv);
        let std_obj = |m: &[f64], v: &[f64]| {
            let (mut kl, mut a, mut b) = (vec![0.0; rows], vec![0.0; n], vec![0.0; n]);
            kl_std_normal_fwd_bwd(m, v, PerRow::new(cols, &up, &mut kl), &mut a, &mut b);
            kl.iter().zip(&up).map(|(k, u)| k * u).sum::<f64>()
        };
        let scale = kl.iter().map(|v| v.abs()).sum::<f64>() + n as f64 * 10.0;
        let v0 = v1.clone();
        check_fd(
            &format!("KL std {tag} dm"),
            &mut rng,
            &mut m1,
            &dm,
            scale,
            &mut |m| std_obj(m, &v0),
        );
        let m0 = m1.clone();
        check_fd(
            &format!("KL std {tag} dv"),
            &mut rng,
            &mut v1,
            &dv,
            scale,
            &mut |v| std_obj(&m0, v),
        );

        let (mut g1, mut h1, mut g2, mut h2) =
            (vec![0.0; n], vec![0.0; n], vec![0.0; n], vec![0.0; n]);
        let kl_rows = PerRow::new(cols, &up, &mut kl);
        kl_normal_fwd_bwd(
            &m1, &v1, &m2, &v2, kl_rows, &mut g1, &mut h1, &mut g2, &mut h2,
        );
        let scale = kl.iter().map(|v| v.abs()).sum::<f64>() + n as f64 * 1e3;
        let obj = |a: &[f64], b: &[f64], c: &[f64], d: &[f64]| {
            let mut kl = vec![0.0; rows];
            let mut s = vec![vec![0.0; n]; 4];
            let [s0, s1, s2, s3] = &mut s[..] else {
                unreachable!()
            };
            kl_normal_fwd_bwd(a, b, c, d, PerRow::new(cols, &up, &mut kl), s0, s1, s2, s3);
            kl.iter().zip(&up).map(|(k, u)| k * u).sum::<f64>()
        };
        let (a0, b0, c0, d0) = (m1.clone(), v1.clone(), m2.clone(), v2.clone());
        check_fd(
            &format!("KL {tag} dm1"),
            &mut rng,
            &mut m1,
            &g1,
            scale,
            &mut |a| obj(a, &b0, &c0, &d0),
        );
        check_fd(
            &format!("KL {tag} dv1"),
            &mut rng,
            &mut v1,
            &h1,
            scale,
            &mut |b| obj(&a0, b, &c0, &d0),
        );
        check_fd(
            &format!("KL {tag} dm2"),
            &mut rng,
            &mut m2,
            &g2,
            scale,
            &mut |c| obj(&a0, &b0, c, &d0),
        );
        check_fd(
            &format!("KL {tag} dv2"),
            &mut rng,
            &mut v2,
            &h2,
            scale,
            &mut |d| obj(&a0, &b0, &c0, d),
        );

        // Bhattacharyya on a vector of `n` discriminator outputs of mixed sign.
        let (mut a, mut b) = (normal(&mut rng, 1.0), normal(&mut rng, 1.0));
        a.iter_mut().for_each(|v| *v += 0.3);
        b.iter_mut().for_each(|v| *v += 0.3);
        let (mut da, mut db) = (vec![0.0; n], vec![0.0; n]);
        let loss = bhattacharyya_fwd_bwd(&a, &b, &mut da, &mut db);
        assert!(loss.abs() < 9.0, "{tag}: BC clipped, pick another seed");
        let bc_obj = |a: &[f64], b: &[f64]| {
            bhattacharyya_fwd_bwd(a, b, &mut vec![0.0; n], &mut vec![0.0; n])
        };
        let b0 = b.clone();
        check_fd(
            &format!("BC {tag} da"),
            &mut rng,
            &mut a,
            &da,
            10.0,
            &mut |a| bc_obj(a, &b0),
        );
        let a0 = a.clone();
        check_fd(
            &format!("BC {tag} db"),
            &mut rng,
            &mut b,
            &db,
            10.0,
            &mut |b| bc_obj(&a0, b),
        );

        // Masked cross-entropy with `cols + 1` classes; every third row masked out.
        let classes = cols + 1;
        let mut logits: Vec<f64> = (0..rows * classes)
            .map(|_| rng.gen_range(-4.0..4.0))
            .collect();
        let labels: Vec<u32> = (0..rows)
            .map(|_| rng.gen_range(0..classes as u32))
            .collect();
        let mask: Vec<f64> = (0..rows)
            .map(|r| if r % 3 == 1 { 0.0 } else { 1.0 })
            .collect();
        let mut dl = vec![0.0; rows * classes];
        cross_entropy_masked_fwd_bwd(&logits, &labels, Some(&mask), rows, classes, &mut dl);
        let ce_obj = |l: &[f64]| {
            cross_entropy_masked_fwd_bwd(
                l,
                &labels,
                Some(&mask),
                rows,
                classes,
                &mut vec![0.0; rows * classes],
            )
        };
        check_fd(
            &format!("CE {tag} dlogits"),
            &mut rng,
            &mut logits,
            &dl,
            10.0,
            &mut |l| ce_obj(l),
        );
    }
}

// ---------------------------------------------------------------- properties and extremes

/// Σ_x P(x) = 1 over x = 0..K for integer counts: an independent check of every ZINB term
/// (a dropped lgamma or a wrong sign breaks normalisation), including θ up to 1e6 where the
/// stable lgamma difference matters. f64, tolerance 1e-9.
/// eps inside the logs adds ~eps of mass ((1 + eps/θ)^θ), so use a tiny one; it must stay
/// > 0 because it is also the zero threshold of the ZINB.
const MASS_EPS: f64 = 1e-15;

#[test]
fn zinb_and_nb_are_normalised() {
    for &(mu, theta) in &[
        (0.3, 0.05),
        (2.0, 1.0),
        (50.0, 10.0),
        (20.0, 1e4),
        (20.0, 1e6),
        (5.0, 3e7),
    ] {
        for &logit in &[-3.0, 0.0, 2.5] {
            let kmax = 2000usize;
            let x: Vec<f64> = (0..kmax).map(|k| k as f64).collect();
            let m = vec![mu; kmax];
            let l = vec![logit; kmax];
            // One column per x would need θ per column; use rows = x, cols = 1.
            let mut ll = vec![0.0; kmax];
            likelihood_fwd(
                &Counts::new(&x, &m, &[theta], kmax, MASS_EPS).zinb(&l),
                &mut ll,
            );
            let total: f64 = ll.iter().map(|v| v.exp()).sum();
            assert_close(
                &format!("ZINB mass mu={mu} theta={theta} logit={logit}"),
                total,
                1.0,
                0.0,
                1e-9,
            );
            assert!(
                ll.iter().all(|&v| v <= 1e-12),
                "log-probability above 0 at mu={mu} theta={theta}"
            );
        }
        let mut ll = vec![0.0; 2000];
        let x: Vec<f64> = (0..2000).map(|k| k as f64).collect();
        likelihood_fwd(
            &Counts::new(&x, &vec![mu; 2000], &[theta], 2000, MASS_EPS),
            &mut ll,
        );
        let total: f64 = ll.iter().map(|v| v.exp()).sum();
        assert_close(
            &format!("NB mass mu={mu} theta={theta}"),
            total,
            1.0,
            0.0,
            1e-9,
        );
    }
}

/// No NaN/Inf anywhere in f32 at extreme but legal inputs, and the f32 path agrees with the
/// f64 path (rtol 1e-5 + atol 1e-5 · (1 + row magnitude) for sums of mixed-size terms).
#[test]
fn extremes_are_finite_and_f32_matches_f64() {
    let xs = [0.0, 1e-9, 1e-5, 0.5, 1.0, 7.0, 1e4];
    let mus = [0.0, 1e-30, 1e-8, 1.0, 1e8];
    let thetas = [1e-6, 1e-3, 1.0, 1e4, 1e6];
    let logits = [-80.0, -5.0, 0.0, 5.0, 80.0];
    let rows = xs.len() * mus.len() * logits.len();
    let cols = thetas.len();
    let (mut x, mut mu, mut lg) = (vec![], vec![], vec![]);
    for &xv in &xs {
        for &m in &mus {
            for &l in &logits {
                for _ in 0..cols {
                    x.push(xv);
                    mu.push(m);
                    lg.push(l);
                }
            }
        }
    }
    let up = vec![1.0f64; rows];
    for eps in [1e-4, 1e-8] {
        let o64 = run_lik([&x, &mu, &thetas], Some(&lg), rows, cols, eps, &up);
        let o32 = run_lik(
            [&to_f32(&x), &to_f32(&mu), &to_f32(&thetas)],
            Some(&to_f32(&lg)),
            rows,
            cols,
            eps as f32,
            &vec![1.0f32; rows],
        );
        let n64 = run_lik([&x, &mu, &thetas], None, rows, cols, eps, &up);
        let n32 = run_lik(
            [&to_f32(&x), &to_f32(&mu), &to_f32(&thetas)],
            None,
            rows,
            cols,
            eps as f32,
            &vec![1.0f32; rows],
        );
        for (name, a, b) in [
            ("zinb ll", &o32.ll, &o64.ll),
            ("zinb dmu", &o32.dmu, &o64.dmu),
            ("zinb dtheta", &o32.dtheta, &o64.dtheta),
            ("zinb dlogit", &o32.dlogit, &o64.dlogit),
            ("nb ll", &n32.ll, &n64.ll),
            ("nb dmu", &n32.dmu, &n64.dmu),
            ("nb dtheta", &n32.dtheta, &n64.dtheta),
        ] {
            for (k, (&g32, &g64)) in a.iter().zip(b.iter()).enumerate() {
                assert!(
                    g64.is_finite() && g32.is_finite(),
                    "eps={eps} {name}[{k}] not finite: f32 {g32} f64 {g64}"
                );
                // mu = 1e-30 is not an f32 normal number; compare where inputs are exact in f32.
                if name.ends_with("ll") || name.ends_with("dtheta") {
                    continue;
                }
                if (mu[k] as f32) as f64 == mu[k] && (x[k] as f32) as f64 == x[k] {
                    assert_close(
                        &format!("eps={eps} {name}[{k}] f32 vs f64"),
                        g32,
                        g64,
                        1e-5,
                        1e-30,
                    );
                }
            }
        }
        // Row sums and θ gradients: compare relative to the row's magnitude.
        for r in 0..rows {
            let mag = 1.0 + o64.ll[r].abs();
            assert_close(
                &format!("eps={eps} zinb ll row {r}"),
                o32.ll[r],
                o64.ll[r],
                1e-5,
                1e-5 * mag,
            );
        }
    }
}

/// dθ is summed over fixed row chunks in a fixed order: bit-identical for 1 and 3 threads.
#[test]
fn results_do_not_depend_on_thread_count() {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let (rows, cols) = (101, 1999);
    let [x, mu, theta, logit, up] = random_inputs(&mut rng, rows, cols);
    let (x, mu, theta, logit, up) = (
        to_f32(&x),
        to_f32(&mu),
        to_f32(&theta),
        to_f32(&logit),
        to_f32(&up),
    );
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| run_lik([&x, &mu, &theta], Some(&logit), rows, cols, 1e-4f32, &up))
    };
    let (a, b) = (run(1), run(3));
    assert_eq!(a.ll, b.ll);
    assert_eq!(a.dmu, b.dmu);
    assert_eq!(a.dtheta, b.dtheta);
    assert_eq!(a.dlogit, b.dlogit);
}

#[test]
fn degenerate_shapes() {
    // rows = 0: dθ is zero; cols = 0: every row sums to zero.
    let mut dth = vec![f32::NAN; 3];
    likelihood_fwd_bwd::<f32>(
        &Counts::new(&[], &[], &[1.0, 2.0, 3.0], 0, 1e-4).zinb(&[]),
        &mut [],
        CountGrads::new(&[], &mut [], &mut dth).zinb(&mut []),
    );
    assert_eq!(dth, vec![0.0; 3]);
    let mut ll = vec![f32::NAN; 2];
    likelihood_fwd_bwd::<f32>(
        &Counts::new(&[], &[], &[], 2, 1e-4).zinb(&[]),
        &mut ll,
        CountGrads::new(&[1.0, 1.0], &mut [], &mut []).zinb(&mut []),
    );
    assert_eq!(ll, vec![0.0; 2]);
    // Cross-entropy with every row masked out: loss 0, zero gradient.
    let mut g = vec![f32::NAN; 4];
    let loss = cross_entropy_masked_fwd_bwd(
        &[1.0f32, 2.0, 3.0, 4.0],
        &[0, 1],
        Some(&[0.0, 0.0]),
        2,
        2,
        &mut g,
    );
    assert_eq!((loss, g), (0.0, vec![0.0; 4]));
    // Bhattacharyya with W = 0 (disjoint supports): lower clip, zero gradient, no NaN.
    let (mut da, mut db) = (vec![f32::NAN; 2], vec![f32::NAN; 2]);
    let loss = bhattacharyya_fwd_bwd(&[1.0f32, 0.0], &[0.0, 1.0], &mut da, &mut db);
    assert_eq!(loss, (1e-4f32).ln());
    assert_eq!((da, db), (vec![0.0; 2], vec![0.0; 2]));
}
