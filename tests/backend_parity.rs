//! One suite that runs every `Backend` method on every available device and compares it with
//! the CPU backend (the reference), dfdx style: the same seeded inputs go through each device,
//! every output is downloaded and compared elementwise with a stated tolerance
//! `|got - want| <= rtol |want| + atol_rel * max|want|`.
//!
//! Without a GPU the CUDA half is skipped with the reason printed (and FAILS when
//! `SCDREAMER_REQUIRE_GPU=1`, as scripts/gpu_check.sh sets); what still runs here is the CPU
//! suite itself (finite, deterministic, and the comparator provably able to fail).
//! A short training run on the bundled demo compares CPU and CUDA embeddings (finite, kNN
//! purity and batch mixing within a margin of each other).

use std::collections::BTreeSet;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use scdreamer::backend::cpu::Cpu;
use scdreamer::backend::{
    AdamStep, AdamTensor, Binary, GemmSpec, InputTransform, Labelled, Likelihood, LikelihoodGrads,
    Unary,
};
use scdreamer::data::Csr;
use scdreamer::ops::Backend;

// ------------------------------------------------------------------------------ harness

/// Tolerance of one output: `|got - want| <= rtol |want| + atol_rel * max|want|`.
#[derive(Clone, Copy, Debug)]
struct Tol {
    rtol: f64,
    atol_rel: f64,
}

impl Tol {
    const fn new(rtol: f64, atol_rel: f64) -> Self {
        Tol { rtol, atol_rel }
    }
}

/// Bit-for-bit (integer-valued or pure data movement results).
const EXACT: Tol = Tol::new(0.0, 0.0);
/// One f32 rounding per element (FMA contraction or operand order may differ).
const ROUNDING: Tol = Tol::new(1e-6, 1e-7);
/// Reductions in a different order, f32 transcendental functions.
const REDUCE: Tol = Tol::new(1e-5, 1e-6);
/// cuBLAS vs the CPU GEMM (both full FP32; blocking order differs).
const GEMM: Tol = Tol::new(1e-4, 1e-5);
/// The f32 NB/ZINB kernel vs the CPU's f64 arithmetic.
const LIKELIHOOD: Tol = Tol::new(1e-3, 1e-4);
/// dtheta: a sum over rows of differences of digammas in f32.
const LIKELIHOOD_THETA: Tol = Tol::new(3e-3, 1e-3);

/// One downloaded output of one case.
struct Output {
    name: String,
    data: Vec<f32>,
    tol: Tol,
}

/// Runs the cases on one backend and records every output.
struct Runner<'a, B: Backend> {
    b: &'a B,
    outputs: Vec<Output>,
}

impl<'a, B: Backend> Runner<'a, B> {
    fn new(b: &'a B) -> Self {
        Runner {
            b,
            outputs: Vec::new(),
        }
    }
    fn up(&self, v: &[f32]) -> B::Buf {
        let mut x = self.b.alloc(v.len());
        self.b.upload(v, &mut x);
        x
    }
    fn up_idx(&self, v: &[u32]) -> B::IdxBuf {
        let mut x = self.b.alloc_idx(v.len());
        self.b.upload_idx(v, &mut x);
        x
    }
    fn down(&self, x: &B::Buf) -> Vec<f32> {
        let mut v = vec![0f32; self.b.len(x)];
        self.b.download(x, &mut v);
        v
    }
    fn rec(&mut self, name: &str, x: &B::Buf, tol: Tol) {
        let data = self.down(x);
        self.rec_host(name, data, tol);
    }
    fn rec_host(&mut self, name: &str, data: Vec<f32>, tol: Tol) {
        assert!(
            !self.outputs.iter().any(|o| o.name == name),
            "duplicate case name {name}"
        );
        self.outputs.push(Output {
            name: name.to_string(),
            data,
            tol,
        });
    }
}

/// Compares `got` with `want` (the CPU); returns a description of the worst violation.
fn compare(name: &str, got: &[f32], want: &[f32], tol: Tol) -> Result<(), String> {
    if got.len() != want.len() {
        return Err(format!("{name}: length {} vs {}", got.len(), want.len()));
    }
    let scale = want
        .iter()
        .filter(|v| v.is_finite())
        .fold(0f64, |m, &v| m.max((v as f64).abs()));
    let atol = tol.atol_rel * scale;
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        if w.is_nan() || g.is_nan() {
            if w.is_nan() != g.is_nan() {
                return Err(format!("{name}[{i}]: got {g}, want {w}"));
            }
            continue;
        }
        if w.is_infinite() || g.is_infinite() {
            if g != w {
                return Err(format!("{name}[{i}]: got {g}, want {w}"));
            }
            continue;
        }
        let err = (g as f64 - w as f64).abs();
        if err > tol.rtol * (w as f64).abs() + atol {
            return Err(format!(
                "{name}[{i}]: got {g}, want {w} (|err| {err:.3e} > rtol {} * |want| + atol {atol:.3e})",
                tol.rtol
            ));
        }
    }
    Ok(())
}

/// Every output of `dev` against the CPU's; panics listing all failures.
fn compare_suites(device: &str, cpu: &[Output], dev: &[Output]) {
    let mut failures = Vec::new();
    for (w, g) in cpu.iter().zip(dev) {
        assert_eq!(w.name, g.name, "cases ran in a different order");
        match compare(&g.name, &g.data, &w.data, w.tol) {
            Ok(()) => {}
            Err(e) => failures.push(e),
        }
    }
    assert_eq!(cpu.len(), dev.len(), "{device}: number of outputs");
    println!(
        "{device}: {} outputs compared with the CPU, {} failures",
        cpu.len(),
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "{device} differs from the CPU:\n{}",
        failures.join("\n")
    );
}

// ------------------------------------------------------------------------------ inputs

fn uniform(rng: &mut ChaCha8Rng, n: usize, lo: f32, hi: f32) -> Vec<f32> {
    (0..n).map(|_| rng.gen_range(lo..hi)).collect()
}

/// Count-like values: about half exact zeros, the rest integers 1..30.
fn counts(rng: &mut ChaCha8Rng, n: usize) -> Vec<f32> {
    (0..n)
        .map(|_| {
            if rng.gen_bool(0.5) {
                0.0
            } else {
                rng.gen_range(1..30) as f32
            }
        })
        .collect()
}

/// A random CSR matrix of counts (density ~`density`).
fn random_csr(rng: &mut ChaCha8Rng, n_rows: usize, n_cols: usize, density: f64) -> Csr {
    scdreamer::sim::uniform::uniform_counts(rng, n_rows, n_cols, density, 25)
}

// ------------------------------------------------------------------------------ the suite

/// Shapes deliberately not multiples of 32 (warp) or 256 (block).
const R: usize = 37;
const C: usize = 53;

/// Every Backend method, on one backend. The inputs depend only on the seed, so every
/// device sees the same numbers.
fn suite<B: Backend>(b: &B) -> Vec<Output> {
    let mut rng = ChaCha8Rng::seed_from_u64(42);
    let mut t = Runner::new(b);
    let n = R * C;
    // A step marker only counts (emulated device) or does nothing; it must not fail.
    b.step_boundary();
    // Host memory is a property of the backend, not a result: only read here.
    let _ = b.host_memory();

    // ---- memory
    let empty = b.alloc(0);
    assert_eq!(b.len(&empty), 0, "alloc(0) has length 0");
    let zeros = b.alloc(n);
    t.rec("alloc_zeroed", &zeros, EXACT);
    let xs = uniform(&mut rng, n, -3.0, 3.0);
    let x = t.up(&xs);
    t.rec("upload_download", &x, EXACT);
    let mut x2 = b.alloc(n);
    b.upload(&xs, &mut x2);
    let mut host = vec![0f32; n];
    b.download(&x2, &mut host);
    assert_eq!(host, xs, "upload then download is the identity");
    let mut idx_probe = b.alloc_idx(5);
    b.upload_idx(&[4, 3, 2, 1, 0], &mut idx_probe);

    // ---- basic
    let mut f = b.alloc(n);
    b.fill(&mut f, -1.25);
    t.rec("fill", &f, EXACT);
    let mut cp = b.alloc(n);
    b.copy(&x, &mut cp);
    t.rec("copy", &cp, EXACT);
    let ys = uniform(&mut rng, n, -1.0, 1.0);
    let mut y = t.up(&ys);
    b.axpy(0.37, &x, &mut y);
    t.rec("axpy", &y, ROUNDING);
    let g1 = t.up(&[1.7]);
    let mut bc = t.up(&ys);
    b.broadcast_acc(&g1, -0.5, &mut bc);
    t.rec("broadcast_acc", &bc, ROUNDING);

    // ---- gemm: every transpose combination, beta 0 over NaN, beta 1, alpha != 1, k = 0
    let (m, nn, k) = (33, 45, 29);
    let a_s = uniform(&mut rng, m * k, -1.0, 1.0);
    let b_s = uniform(&mut rng, k * nn, -1.0, 1.0);
    let c_s = uniform(&mut rng, m * nn, -1.0, 1.0);
    let (ga, gb) = (t.up(&a_s), t.up(&b_s));
    for ta in [false, true] {
        for tb in [false, true] {
            for (beta, alpha) in [(0.0, 1.0), (1.0, 0.5)] {
                let mut c = if beta == 0.0 {
                    t.up(&vec![f32::NAN; m * nn])
                } else {
                    t.up(&c_s)
                };
                let spec = GemmSpec {
                    m,
                    n: nn,
                    k,
                    trans_a: ta,
                    trans_b: tb,
                    alpha,
                    beta,
                };
                b.gemm(spec, &ga, &gb, &mut c);
                t.rec(&format!("gemm_ta{ta}_tb{tb}_beta{beta}"), &c, GEMM);
            }
        }
    }
    for beta in [0.0f32, 2.0] {
        let mut c = t.up(&c_s);
        let spec = GemmSpec {
            m,
            n: nn,
            k: 0,
            trans_a: false,
            trans_b: false,
            alpha: 1.0,
            beta,
        };
        b.gemm(spec, &b.alloc(0), &b.alloc(0), &mut c);
        t.rec(&format!("gemm_k0_beta{beta}"), &c, EXACT);
    }

    // ---- sparse first layer: every transform, duplicate and permuted rows
    let csr = random_csr(&mut rng, 60, 70, 0.2);
    let scale_s = uniform(&mut rng, 60, 0.01, 2.0);
    let xs_csr = b.upload_csr(&csr, Some(&scale_s)).expect("upload csr");
    assert_eq!(b.csr_shape(&xs_csr), (60, 70, csr.data.len()));
    let xs_noscale = b.upload_csr(&csr, None).expect("upload csr");
    let rows_h: Vec<u32> = (0..41).map(|i| ((i * 7 + 3) % 60) as u32).collect();
    let rows = t.up_idx(&rows_h);
    let n_out = 67;
    let w = t.up(&uniform(&mut rng, 70 * n_out, -0.5, 0.5));
    let dy_s = uniform(&mut rng, rows_h.len() * n_out, -1.0, 1.0);
    let dy = t.up(&dy_s);
    for (tn, tr) in [
        ("identity", InputTransform::Identity),
        ("log1p", InputTransform::Log1p),
        ("log1p_scaled", InputTransform::Log1pScaled),
    ] {
        let mut out = t.up(&vec![f32::NAN; rows_h.len() * n_out]);
        b.csr_matmul(&xs_csr, &rows, rows_h.len(), tr, &w, n_out, &mut out);
        t.rec(&format!("csr_matmul_{tn}"), &out, REDUCE);
        let mut dw = t.up(&uniform(&mut rng, 70 * n_out, -1.0, 1.0));
        b.csr_matmul_wgrad(&xs_csr, &rows, rows_h.len(), tr, &dy, n_out, &mut dw);
        t.rec(&format!("csr_matmul_wgrad_{tn}"), &dw, REDUCE);
        let mut dense = t.up(&vec![f32::NAN; rows_h.len() * 70]);
        b.csr_gather_dense(&xs_csr, &rows, rows_h.len(), tr, &mut dense);
        t.rec(&format!("csr_gather_dense_{tn}"), &dense, ROUNDING);
    }
    // A matrix handed over (upload_csr_owned): the same kernels read the same values, and the
    // host matrix is either kept by the backend (host_csr, CPU) or handed back, never lost.
    let (xs_owned, back) = b
        .upload_csr_owned(csr.clone(), Some(&scale_s))
        .expect("upload owned csr");
    assert_eq!(b.csr_shape(&xs_owned), (60, 70, csr.data.len()));
    let kept = B::host_csr(&xs_owned).cloned();
    assert!(
        kept.is_some() != back.is_some(),
        "host matrix kept xor handed back"
    );
    assert_eq!(kept.or(back).as_ref(), Some(&csr));
    let mut out = t.up(&vec![f32::NAN; rows_h.len() * n_out]);
    let tr = InputTransform::Log1pScaled;
    b.csr_matmul(&xs_owned, &rows, rows_h.len(), tr, &w, n_out, &mut out);
    t.rec("csr_matmul_owned_log1p_scaled", &out, REDUCE);
    let mut dense = b.alloc(rows_h.len() * 70);
    b.csr_gather_dense(
        &xs_noscale,
        &rows,
        rows_h.len(),
        InputTransform::Log1pScaled,
        &mut dense,
    );
    t.rec("csr_gather_dense_scaled_without_scale", &dense, ROUNDING);
    // A minibatch above the GPU weight-gradient kernel's 4096-cell chunk.
    let big_rows_h: Vec<u32> = (0..5000).map(|i| ((i * 13) % 60) as u32).collect();
    let big_rows = t.up_idx(&big_rows_h);
    let big_dy = t.up(&uniform(&mut rng, 5000 * 8, -1.0, 1.0));
    let mut big_dw = b.alloc(70 * 8);
    b.csr_matmul_wgrad(
        &xs_csr,
        &big_rows,
        5000,
        InputTransform::Log1p,
        &big_dy,
        8,
        &mut big_dw,
    );
    t.rec("csr_matmul_wgrad_batch5000", &big_dw, REDUCE);

    // ---- row gather, bias
    let n_table = 5;
    let table = t.up(&uniform(&mut rng, n_table * C, -1.0, 1.0));
    let idx_h: Vec<u32> = (0..R).map(|i| ((i * 3) % n_table) as u32).collect();
    let idx = t.up_idx(&idx_h);
    let mut out = b.alloc(n);
    b.gather_add_rows(&x, &table, &idx, C, &mut out);
    t.rec("gather_add_rows", &out, ROUNDING);
    let mut dtable = t.up(&uniform(&mut rng, n_table * C, -1.0, 1.0));
    b.scatter_add_rows(&y, &idx, C, &mut dtable);
    t.rec("scatter_add_rows", &dtable, ROUNDING);
    let bias = t.up(&uniform(&mut rng, C, -1.0, 1.0));
    let mut out = b.alloc(n);
    b.add_bias(&x, &bias, C, &mut out);
    t.rec("add_bias", &out, ROUNDING);
    let mut db = t.up(&uniform(&mut rng, C, -1.0, 1.0));
    b.col_sum_acc(&y, C, &mut db);
    t.rec("col_sum_acc", &db, REDUCE);

    // ---- elementwise
    let pos_s = uniform(&mut rng, n, 1e-3, 40.0);
    let pos = t.up(&pos_s);
    let dys = uniform(&mut rng, n, -1.0, 1.0);
    let dyv = t.up(&dys);
    let unaries = [
        ("relu", Unary::Relu, false),
        ("leaky_relu", Unary::LeakyRelu(0.2), false),
        ("softplus", Unary::Softplus, false),
        ("sigmoid", Unary::Sigmoid, false),
        ("exp", Unary::Exp, false),
        ("log", Unary::Log, true),
        ("sqrt", Unary::Sqrt, true),
        ("square", Unary::Square, false),
        ("scale", Unary::Scale(-1.5), false),
        ("add_scalar", Unary::AddScalar(0.75), false),
        ("clamp", Unary::Clamp(-1.0, 2.0), false),
        ("lgamma", Unary::Lgamma, true),
    ];
    for (name, f, positive) in unaries {
        let input = if positive { &pos } else { &x };
        let mut yv = b.alloc(n);
        b.unary(f, input, &mut yv);
        t.rec(&format!("unary_{name}"), &yv, REDUCE);
        let mut dx = t.up(&ys);
        b.unary_bwd(f, input, &yv, &dyv, &mut dx);
        t.rec(&format!("unary_bwd_{name}"), &dx, REDUCE);
    }
    for (name, f) in [
        ("add", Binary::Add),
        ("sub", Binary::Sub),
        ("mul", Binary::Mul),
    ] {
        let mut o = b.alloc(n);
        b.binary(f, &x, &y, &mut o);
        t.rec(&format!("binary_{name}"), &o, ROUNDING);
        let (mut da, mut dbb) = (t.up(&ys), t.up(&xs));
        b.binary_bwd(f, &x, &y, &dyv, Some(&mut da), Some(&mut dbb));
        t.rec(&format!("binary_bwd_a_{name}"), &da, ROUNDING);
        t.rec(&format!("binary_bwd_b_{name}"), &dbb, ROUNDING);
    }
    let cvec = t.up(&uniform(&mut rng, R, -2.0, 2.0));
    let mut o = b.alloc(n);
    b.mul_rows(&x, &cvec, C, &mut o);
    t.rec("mul_rows", &o, ROUNDING);
    let (mut dx, mut dc) = (t.up(&ys), t.up(&uniform(&mut rng, R, -1.0, 1.0)));
    b.mul_rows_bwd(&x, &cvec, &dyv, C, Some(&mut dx), Some(&mut dc));
    t.rec("mul_rows_bwd_x", &dx, ROUNDING);
    t.rec("mul_rows_bwd_c", &dc, REDUCE);
    let (ca, cb) = (C, 11);
    let bmat = t.up(&uniform(&mut rng, R * cb, -1.0, 1.0));
    let mut cat = b.alloc(R * (ca + cb));
    b.concat_cols(&x, ca, &bmat, cb, &mut cat);
    t.rec("concat_cols", &cat, EXACT);
    let dcat = t.up(&uniform(&mut rng, R * (ca + cb), -1.0, 1.0));
    let (mut da, mut dbm) = (t.up(&ys), b.alloc(R * cb));
    b.concat_cols_bwd(&dcat, ca, cb, Some(&mut da), Some(&mut dbm));
    t.rec("concat_cols_bwd_a", &da, ROUNDING);
    t.rec("concat_cols_bwd_b", &dbm, ROUNDING);

    // ---- randomness: the GPU reproduces the CPU's counter-based streams
    let mut mask = b.alloc(100_003);
    b.dropout_mask(0xdead_beef_1234, 0.8, &mut mask);
    t.rec("dropout_mask", &mask, EXACT);
    let mut nrm = b.alloc(100_003);
    b.normal(987_654_321, &mut nrm);
    t.rec("normal", &nrm, REDUCE);
    let var_s = uniform(&mut rng, n, 1e-3, 5.0);
    let var = t.up(&var_s);
    let eps = t.up(&uniform(&mut rng, n, -2.0, 2.0));
    let mut z = b.alloc(n);
    b.reparam(&x, &var, &eps, &mut z);
    t.rec("reparam", &z, ROUNDING);
    let (mut dm, mut dv) = (t.up(&ys), t.up(&xs));
    b.reparam_bwd(&var, &eps, &dyv, Some(&mut dm), Some(&mut dv));
    t.rec("reparam_bwd_mean", &dm, ROUNDING);
    t.rec("reparam_bwd_var", &dv, ROUNDING);

    // ---- reductions
    let big = t.up(&uniform(&mut rng, 1_000_003, -1.0, 1.5));
    let mut s1 = b.alloc(1);
    b.sum_all(&big, &mut s1);
    t.rec("sum_all", &s1, REDUCE);
    let mut sr = t.up(&[f32::NAN; R]);
    b.sum_rows(&x, C, &mut sr);
    t.rec("sum_rows", &sr, REDUCE);
    let mut sr0 = t.up(&[f32::NAN; 4]);
    b.sum_rows(&b.alloc(0), 0, &mut sr0);
    t.rec("sum_rows_zero_cols", &sr0, EXACT);
    let mut dsr = t.up(&ys);
    b.sum_rows_bwd(&t.up(&uniform(&mut rng, R, -1.0, 1.0)), C, &mut dsr);
    t.rec("sum_rows_bwd", &dsr, ROUNDING);
    let sq = b.sq_norm(&big);
    t.rec_host("sq_norm", vec![sq as f32], REDUCE);

    // ---- fused likelihoods (eps of the default and of the authors' preset)
    let (lr, lc) = (40, 70);
    let xc = t.up(&counts(&mut rng, lr * lc));
    let mu = t.up(&uniform(&mut rng, lr * lc, -2.0, 3.5)
        .iter()
        .map(|v| v.exp())
        .collect::<Vec<_>>());
    let theta = t.up(&uniform(&mut rng, lc, 0.3, 30.0));
    let logit = t.up(&uniform(&mut rng, lr * lc, -3.0, 3.0));
    let up_s = uniform(&mut rng, lr, 0.5, 1.5);
    let upv = t.up(&up_s);
    for eps_l in [1e-8f32, 1e-4] {
        let tag = format!("eps{eps_l:e}");
        for (kind, logit) in [("zinb", Some(&logit)), ("nb", None)] {
            let a = Likelihood {
                x: &xc,
                mu: &mu,
                theta: &theta,
                logit,
                rows: lr,
                cols: lc,
                eps: eps_l,
            };
            // The value alone.
            let mut ll = t.up(&vec![f32::NAN; lr]);
            b.likelihood(&a, Some(&mut ll), None);
            t.rec(&format!("{kind}_fwd_{tag}"), &ll, LIKELIHOOD);
            // The gradients alone, then both in one pass.
            for (mode, with_value) in [("bwd", false), ("fwd_bwd", true)] {
                let (mut ll, mut dmu, mut dth) = (b.alloc(lr), b.alloc(lr * lc), b.alloc(lc));
                let mut dl = b.alloc(lr * lc);
                let grads = LikelihoodGrads {
                    upstream: &upv,
                    dmu: &mut dmu,
                    dtheta: &mut dth,
                    dlogit: if logit.is_some() { Some(&mut dl) } else { None },
                };
                b.likelihood(&a, with_value.then_some(&mut ll), Some(grads));
                if with_value {
                    t.rec(&format!("{kind}_{mode}_ll_{tag}"), &ll, LIKELIHOOD);
                }
                t.rec(&format!("{kind}_{mode}_dmu_{tag}"), &dmu, LIKELIHOOD);
                t.rec(
                    &format!("{kind}_{mode}_dtheta_{tag}"),
                    &dth,
                    LIKELIHOOD_THETA,
                );
                if logit.is_some() {
                    t.rec(&format!("{kind}_{mode}_dlogit_{tag}"), &dl, LIKELIHOOD);
                }
            }
        }
    }
    let uni = t.up(&[0.25; 9]);
    let non_uni = t.up(&[0.25, 0.25, 0.5]);
    let flags = [
        b.uniform_value(&uni).map_or(-1.0, |v| v),
        b.uniform_value(&non_uni).map_or(-1.0, |v| v),
    ];
    t.rec_host("uniform_value", flags.to_vec(), EXACT);

    // ---- KL terms (variances inside and outside the log clip)
    let (kr, kc) = (R, 10);
    let kvar = |rng: &mut ChaCha8Rng| -> Vec<f32> {
        (0..kr * kc)
            .map(|i| match i % 7 {
                0 => 1e-6,
                1 => 2e4,
                _ => rng.gen_range(0.01f32..4.0),
            })
            .collect()
    };
    let km1 = t.up(&uniform(&mut rng, kr * kc, -2.0, 2.0));
    let kv1 = t.up(&kvar(&mut rng));
    let km2 = t.up(&uniform(&mut rng, kr * kc, -2.0, 2.0));
    let kv2 = t.up(&kvar(&mut rng));
    let kg = t.up(&uniform(&mut rng, kr, 0.5, 1.5));
    let mut kl = b.alloc(kr);
    b.kl_std_normal_fwd(&km1, &kv1, kc, &mut kl);
    t.rec("kl_std_normal_fwd", &kl, REDUCE);
    let (mut dm, mut dv) = (t.up(&vec![f32::NAN; kr * kc]), b.alloc(kr * kc));
    b.kl_std_normal_bwd(&km1, &kv1, kc, &kg, &mut dm, &mut dv);
    t.rec("kl_std_normal_bwd_mean", &dm, REDUCE);
    t.rec("kl_std_normal_bwd_var", &dv, REDUCE);
    let mut kl = b.alloc(kr);
    b.kl_normal_fwd([&km1, &kv1, &km2, &kv2], kc, &mut kl);
    t.rec("kl_normal_fwd", &kl, REDUCE);
    let mut gr: Vec<B::Buf> = (0..4).map(|_| b.alloc(kr * kc)).collect();
    {
        let [g0, g1, g2, g3] = &mut gr[..] else {
            unreachable!()
        };
        b.kl_normal_bwd([&km1, &kv1, &km2, &kv2], kc, &kg, [g0, g1, g2, g3]);
    }
    for (i, g) in gr.iter().enumerate() {
        t.rec(&format!("kl_normal_bwd_{i}"), g, REDUCE);
    }

    // ---- cross-entropy: no mask, a partial mask, per-row weights (Sup's balanced labels), an
    // all-zero mask
    let classes = 7;
    let logits = t.up(&uniform(&mut rng, R * classes, -4.0, 4.0));
    let labels = t.up_idx(&(0..R).map(|i| (i % classes) as u32).collect::<Vec<_>>());
    let partial: Vec<f32> = (0..R).map(|i| if i % 3 == 0 { 0.0 } else { 1.0 }).collect();
    let weights: Vec<f32> = (0..R).map(|i| [0.0, 0.25, 1.0, 3.5][i % 4]).collect();
    let masks = [
        ("none", None),
        ("partial", Some(t.up(&partial))),
        ("weighted", Some(t.up(&weights))),
        ("all_zero", Some(b.alloc(R))),
    ];
    // Each mask with the cross-entropy (q = 0) and with Sup's generalized cross-entropy.
    for ((name, mask), q) in masks.iter().flat_map(|m| [(m, 0.0), (m, 0.7)]) {
        let ce = Labelled {
            logits: &logits,
            labels: &labels,
            mask: mask.as_ref(),
            rows: R,
            cols: classes,
            gce_q: q,
        };
        let name = format!("{name}_q{q}");
        let mut l = t.up(&[f32::NAN]);
        b.cross_entropy_fwd(&ce, &mut l);
        t.rec(&format!("cross_entropy_fwd_{name}"), &l, REDUCE);
        let mut d = t.up(&vec![f32::NAN; R * classes]);
        b.cross_entropy_bwd(&ce, &t.up(&[1.3]), &mut d);
        t.rec(&format!("cross_entropy_bwd_{name}"), &d, REDUCE);
    }

    // ---- Adam / AdamW over tensors of three sizes in one multi-tensor call, two steps (the
    // second reuses the table: the device copy of the addresses must still be right)
    let mut tensors: Vec<_> = [n, 3, 700]
        .iter()
        .map(|&k| {
            let p = t.up(&uniform(&mut rng, k, -1.0, 1.0));
            let g = t.up(&uniform(&mut rng, k, -1.0, 1.0));
            (p, g, b.alloc(k), b.alloc(k))
        })
        .collect();
    let mut table = B::TensorTable::default();
    for step in 1..=2 {
        let s = AdamStep {
            lr: 1e-2,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.01,
            bias_c1: 1.0 - 0.9f32.powi(step),
            bias_c2: 1.0 - 0.999f32.powi(step),
            grad_scale: 0.8,
        };
        for (p, g, m, v) in tensors.iter_mut() {
            let t = AdamTensor {
                param: p,
                grad: g,
                m,
                v,
            };
            b.adam_queue(&mut table, s, t, None);
        }
        // SAFETY: every queued buffer lives in `tensors` until after the flush.
        unsafe { b.adam_flush(&mut table, s, None) };
    }
    for (k, (p, _, m, v)) in tensors.iter().enumerate() {
        t.rec(&format!("adam_param_{k}"), p, REDUCE);
        t.rec(&format!("adam_m_{k}"), m, REDUCE);
        t.rec(&format!("adam_v_{k}"), v, REDUCE);
    }

    // ---- the device-resident step: gathers from per-cell tables, running sums, clipping
    let cells = 61;
    let rows_h: Vec<u32> = (0..R).map(|_| rng.gen_range(0..cells as u32)).collect();
    let rows_d = t.up_idx(&rows_h);
    let table_h: Vec<u32> = (0..cells).map(|_| rng.gen_range(0..7)).collect();
    let mut gi = b.alloc_idx(R);
    b.gather_idx(&t.up_idx(&table_h), &rows_d, R, &mut gi);
    assert_eq!(b.idx_len(&gi), R, "idx_len");
    let mut gi_f = b.alloc(R);
    // u32 outputs are compared as f32 through a second gather (codes < 7 are exact in f32).
    let codes_f: Vec<f32> = (0..7).map(|c| c as f32 * 1.5).collect();
    b.gather_values(&t.up(&codes_f), &gi, R, &mut gi_f);
    t.rec("gather_idx_then_values", &gi_f, EXACT);
    let lib_h = uniform(&mut rng, cells, 100.0, 5000.0);
    let mut gv = b.alloc(R);
    b.gather_values(&t.up(&lib_h), &rows_d, R, &mut gv);
    t.rec("gather_values", &gv, EXACT);
    let label_table: Vec<u32> = (0..cells)
        .map(|i| {
            if i % 3 == 0 {
                scdreamer::backend::UNLABELLED
            } else {
                rng.gen_range(0..5)
            }
        })
        .collect();
    // The mask is the cells' label-loss weights (0 for the unlabelled ones), gathered with the
    // codes in one launch.
    let label_weights: Vec<f32> = label_table
        .iter()
        .enumerate()
        .map(|(i, &c)| {
            if c == scdreamer::backend::UNLABELLED {
                0.0
            } else {
                0.25 + (i % 7) as f32
            }
        })
        .collect();
    let (mut gl, mut gm) = (b.alloc_idx(R), b.alloc(R));
    b.gather_labels(
        &t.up_idx(&label_table),
        &t.up(&label_weights),
        &rows_d,
        R,
        &mut gl,
        &mut gm,
    );
    t.rec("gather_labels_mask", &gm, EXACT);
    let mut gl_f = b.alloc(R);
    b.gather_values(&t.up(&codes_f), &gl, R, &mut gl_f);
    t.rec("gather_labels_codes", &gl_f, EXACT);
    let mut acc = b.alloc_acc(6);
    b.zero_acc(&mut acc);
    let (v1, v2) = (t.up(&[1.25]), t.up(&[-3.5]));
    for _ in 0..3 {
        b.acc_values(&mut acc, &[(0, &v1), (1, &v2), (0, &v2)]);
    }
    let (da, db) = (
        t.up(&uniform(&mut rng, R, 0.0, 1.0)),
        t.up(&uniform(&mut rng, R, 0.0, 1.0)),
    );
    b.acc_greater_frac(&mut acc, 2, &da, &db);
    // Ties between columns test the last-maximum rule.
    let mut lg = uniform(&mut rng, R * 5, -2.0, 2.0);
    for r in (0..R).step_by(4) {
        lg[r * 5 + 3] = lg[r * 5 + 1].max(lg[r * 5 + 3]);
        lg[r * 5 + 1] = lg[r * 5 + 3];
    }
    let lgd = t.up(&lg);
    for (slot, mask) in [(3, None), (4, Some(&gm))] {
        let hits = Labelled {
            logits: &lgd,
            labels: &gl,
            mask,
            rows: R,
            cols: 5,
            gce_q: 0.0,
        };
        b.acc_argmax_hits(&mut acc, slot, &hits);
    }
    let mut norm_table = B::TensorTable::default();
    for _ in 0..2 {
        b.sq_norm_queue(&mut norm_table, &x);
        b.sq_norm_queue(&mut norm_table, &dyv);
        // SAFETY: `x` and `dyv` outlive the flush.
        unsafe { b.sq_norm_flush(&mut norm_table, &mut acc, 5) };
    }
    let mut acc_h = vec![0f64; 6];
    b.download_acc(&acc, &mut acc_h);
    t.rec_host(
        "acc_values_greater_argmax_sq_norm",
        acc_h.iter().map(|&v| v as f32).collect(),
        REDUCE,
    );
    let mut scale = b.alloc(1);
    let mut clip_h = Vec::new();
    for clip in [1.0f32, 1e6] {
        b.clip_scale(&acc, 5, clip, &mut scale);
        clip_h.extend(t.down(&scale));
    }
    t.rec_host("clip_scale", clip_h, REDUCE);
    let (mut p2, mut am2, mut av2) = (t.up(&xs), b.alloc(n), b.alloc(n));
    let s = AdamStep {
        lr: 1e-2,
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        weight_decay: 0.0,
        bias_c1: 0.1,
        bias_c2: 0.001,
        grad_scale: 1.0,
    };
    let scale_dev = t.up(&[0.25]);
    let t2 = AdamTensor {
        param: &mut p2,
        grad: &dyv,
        m: &mut am2,
        v: &mut av2,
    };
    b.adam_queue(&mut table, s, t2, Some(&scale_dev));
    // SAFETY: the queued buffers outlive the flush.
    unsafe { b.adam_flush(&mut table, s, Some(&scale_dev)) };
    t.rec("adam_device_grad_scale", &p2, REDUCE);

    t.outputs
}

/// Method names of the `Backend` trait that the suite must exercise (kept in sync by hand
/// with the Backend trait's files; `suite_covers_every_backend_method` checks them).
const COVERED: &[&str] = &[
    "name",
    "step_boundary",
    "alloc",
    "alloc_idx",
    "len",
    "upload",
    "upload_idx",
    "download",
    "upload_csr",
    "upload_csr_owned",
    "host_csr",
    "csr_shape",
    "fill",
    "copy",
    "axpy",
    "broadcast_acc",
    "gemm",
    "csr_matmul",
    "csr_matmul_wgrad",
    "csr_gather_dense",
    "gather_add_rows",
    "scatter_add_rows",
    "add_bias",
    "col_sum_acc",
    "unary",
    "unary_bwd",
    "binary",
    "binary_bwd",
    "mul_rows",
    "mul_rows_bwd",
    "concat_cols",
    "concat_cols_bwd",
    "dropout_mask",
    "normal",
    "reparam",
    "reparam_bwd",
    "sum_all",
    "sum_rows",
    "sum_rows_bwd",
    "sq_norm",
    "likelihood",
    "uniform_value",
    "kl_std_normal_fwd",
    "kl_std_normal_bwd",
    "kl_normal_fwd",
    "kl_normal_bwd",
    "cross_entropy_fwd",
    "cross_entropy_bwd",
    "host_memory",
    "idx_len",
    "alloc_acc",
    "zero_acc",
    "download_acc",
    "gather_idx",
    "gather_values",
    "gather_labels",
    "acc_values",
    "acc_greater_frac",
    "acc_argmax_hits",
    "sq_norm_queue",
    "sq_norm_flush",
    "clip_scale",
    "adam_queue",
    "adam_flush",
];

// ------------------------------------------------------------------------------ devices

/// The CUDA backend on a real GPU, else on the emulated CUDA device, or None after printing
/// why (panics when SCDREAMER_REQUIRE_GPU=1 finds no real GPU, and under CI=true, where the
/// CUDA half must not skip).
#[cfg(feature = "cuda")]
fn cuda_or_skip(test: &str) -> Option<scdreamer::backend::cuda::CudaBackend> {
    match scdreamer::backend::device::probe_gpu_or_emulated() {
        Ok((rt, emulated)) => {
            let b = scdreamer::backend::cuda::CudaBackend::new(rt).expect("CUDA backend opens");
            let how = if emulated { " (emulated)" } else { "" };
            scdreamer::backend::cuda::emulator::note_test(test);
            println!("{test}: running on {}{how}", b.describe());
            Some(b)
        }
        Err(why) if must_run() => panic!("the CUDA half of {test} cannot run: {why}"),
        Err(why) => {
            println!("skipping the CUDA half of {test}: {why}");
            None
        }
    }
}

/// True once the emulated CUDA device is in use in this process.
fn on_emulated_device() -> bool {
    #[cfg(feature = "cuda")]
    return scdreamer::backend::cuda::emulator::active();
    #[cfg(not(feature = "cuda"))]
    return false;
}

/// Blocks (and threads) of later launches in reverse order on the emulated device.
fn reversed_block_order(reversed: bool) {
    #[cfg(feature = "cuda")]
    scdreamer::backend::cuda::emulator::set_reversed_order(reversed);
    #[cfg(not(feature = "cuda"))]
    let _ = reversed;
}

/// True where a skipped CUDA test is a failure: SCDREAMER_REQUIRE_GPU=1 or CI=true.
fn must_run() -> bool {
    std::env::var("SCDREAMER_REQUIRE_GPU").as_deref() == Ok("1")
        || std::env::var("CI").as_deref() == Ok("true")
}

#[cfg(not(feature = "cuda"))]
fn cuda_or_skip(test: &str) -> Option<Cpu> {
    assert!(
        !must_run(),
        "{test}: the CUDA half must run (SCDREAMER_REQUIRE_GPU=1 or CI=true) but this build has no `cuda` feature"
    );
    println!("skipping the CUDA half of {test}: built without the `cuda` feature");
    None
}

// ------------------------------------------------------------------------------ tests

#[test]
fn every_backend_method_matches_the_cpu_on_every_device() {
    let cpu = suite(&Cpu::new());
    for o in &cpu {
        // NaN is expected nowhere in the reference outputs of this suite.
        assert!(
            o.data.iter().all(|v| !v.is_nan()),
            "CPU output {} has NaN",
            o.name
        );
    }
    println!("cpu: {} outputs", cpu.len());
    if let Some(gpu) = cuda_or_skip("every_backend_method_matches_the_cpu_on_every_device") {
        assert_eq!(gpu.name(), "cuda");
        let dev = suite(&gpu);
        compare_suites("cuda", &cpu, &dev);
        // Twice on the GPU: the kernels are deterministic (fixed-order reductions). On the
        // emulated device the second run takes the blocks and threads in reverse order: no
        // result may depend on the order blocks run in.
        reversed_block_order(true);
        let again = suite(&gpu);
        reversed_block_order(false);
        for (a, b) in dev.iter().zip(&again) {
            assert!(
                a.data
                    .iter()
                    .zip(&b.data)
                    .all(|(x, y)| x.to_bits() == y.to_bits()),
                "cuda output {} differs between two runs (the second with blocks in reverse order on the emulated device)",
                a.name
            );
        }
    }
}

/// The comparator can fail: a perturbation just above each tolerance is caught, one well
/// inside is not, and the CPU suite itself is deterministic.
#[test]
fn comparator_catches_perturbations_and_cpu_suite_is_repeatable() {
    let a = suite(&Cpu::new());
    let b = suite(&Cpu::new());
    compare_suites("cpu (second run)", &a, &b);
    let want = [1.0f32, -2.0, 4.0];
    for tol in [ROUNDING, REDUCE, GEMM, LIKELIHOOD] {
        let limit = tol.rtol * 4.0 + tol.atol_rel * 4.0;
        let mut bad = want;
        bad[2] = (4.0 + 2.0 * limit + 1e-6) as f32;
        assert!(compare("probe", &bad, &want, tol).is_err(), "{tol:?}");
        let mut fine = want;
        fine[2] = (4.0 + 0.25 * limit) as f32;
        assert!(compare("probe", &fine, &want, tol).is_ok(), "{tol:?}");
    }
    let mut nan = want;
    nan[0] = f32::NAN;
    assert!(compare("probe", &nan, &want, LIKELIHOOD).is_err());
    assert!(compare("probe", &want[..2], &want, LIKELIHOOD).is_err());
    assert!(compare("probe", &[1.0, -2.0, 4.000_001], &want, EXACT).is_err());
}

/// Every method of the Backend trait's families appears in COVERED and is called by the suite;
/// an op folder's kernel trait (a supertrait named by its path) is checked by the folder's own
/// parity test instead, which this test finds there.
#[test]
fn suite_covers_every_backend_method() {
    // The Backend trait's families, one file each.
    let families = [
        ("Memory", include_str!("../src/backend/memory.rs")),
        ("DenseKernels", include_str!("../src/backend/dense.rs")),
        ("LossKernels", include_str!("../src/backend/losses.rs")),
        ("StepKernels", include_str!("../src/backend/step.rs")),
    ];
    // A family added to the Backend trait must be added to the files read above.
    let umbrella = include_str!("../src/ops/mod.rs");
    let listed_families: Vec<&str> = umbrella[umbrella
        .find("pub trait Backend:")
        .expect("the Backend trait")..]["pub trait Backend:".len()..]
        .split(['{', '$'])
        .next()
        .unwrap_or("")
        .split('+')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .collect();
    // The op folders' traits: the `op_folders!` registry's `<op> => <Op>Kernels` lines.
    let registry = &umbrella[umbrella
        .find("op_folders! {")
        .expect("the op_folders! registry")..];
    let op_traits: Vec<String> = registry[..registry.find('}').unwrap_or(registry.len())]
        .lines()
        .filter_map(|l| l.split_once("=>"))
        .map(|(op, kernels)| format!("{}::{}", op.trim(), kernels.trim().trim_end_matches(',')))
        .collect();
    assert!(
        !op_traits.is_empty(),
        "no op folder in the op_folders! registry"
    );
    let read: BTreeSet<&str> = families.iter().map(|(name, _)| *name).collect();
    assert_eq!(
        listed_families.into_iter().collect::<BTreeSet<_>>(),
        read,
        "the Backend trait's families and the files this test reads"
    );
    for path in &op_traits {
        let folder = path.split("::").next().unwrap_or("");
        let file = format!("{}/src/ops/{folder}/mod.rs", env!("CARGO_MANIFEST_DIR"));
        let src = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert!(
            src.contains("parity::check"),
            "{file} lists {path} in the Backend trait but runs no CPU-vs-CUDA parity::check"
        );
    }
    let methods: BTreeSet<&str> = families
        .iter()
        .chain([("Backend", umbrella)].iter())
        .flat_map(|(name, src)| {
            let at = src.find(&format!("pub trait {name}:"));
            let body = &src[at.unwrap_or_else(|| panic!("no trait {name} in its file"))..];
            body.split("fn ")
                .skip(1)
                .map(|s| s.split(['(', '<']).next().unwrap_or("").trim())
        })
        .collect();
    let covered: BTreeSet<&str> = COVERED.iter().copied().collect();
    let missing: Vec<_> = methods.difference(&covered).collect();
    assert!(
        missing.is_empty(),
        "Backend methods not in the parity suite: {missing:?}"
    );
    let this = include_str!("backend_parity.rs");
    let suite_src = &this[this.find("fn suite<B").unwrap()..this.find("const COVERED").unwrap()];
    for m in &methods {
        let called = suite_src.contains(&format!(".{m}("))
            || suite_src.contains(&format!(".{m}::"))
            || suite_src.contains(&format!("B::{m}("))
            || *m == "name";
        assert!(called, "the suite never calls Backend::{m}");
    }
}

/// A short training run on the bundled demo on each device: the CUDA embedding is finite and
/// as good as the CPU's (kNN cell-type purity and batch mixing within a margin).
#[test]
fn short_training_on_the_demo_matches_the_cpu() {
    let Some(gpu) = cuda_or_skip("short_training_on_the_demo_matches_the_cpu") else {
        return;
    };
    // The emulated device runs every CUDA thread on the CPU: fewer epochs keep CI fast.
    let epochs = if on_emulated_device() {
        EMULATED_EPOCHS
    } else {
        EPOCHS
    };
    let cpu = train_demo(&Cpu::new(), epochs);
    let dev = train_demo(&gpu, epochs);
    println!(
        "demo, {epochs} epochs: cpu purity {:.3} entropy {:.3} ({:.1} s); cuda purity {:.3} entropy {:.3} ({:.1} s)",
        cpu.purity, cpu.entropy, cpu.seconds, dev.purity, dev.entropy, dev.seconds
    );
    assert!(
        dev.purity >= cpu.purity - 0.05,
        "cuda purity {:.3} vs cpu {:.3}",
        dev.purity,
        cpu.purity
    );
    assert!(
        dev.entropy >= cpu.entropy - 0.1,
        "cuda batch entropy {:.3} vs cpu {:.3}",
        dev.entropy,
        cpu.entropy
    );
    assert!(dev.purity >= 0.85, "cuda purity {:.3}", dev.purity);
}

const EPOCHS: usize = 30;
const EMULATED_EPOCHS: usize = 10;

struct DemoScores {
    purity: f64,
    entropy: f64,
    seconds: f64,
}

fn train_demo<B: Backend>(backend: &B, epochs: usize) -> DemoScores {
    use scdreamer::data::h5ad::{ReadOptions, read_h5ad};
    use scdreamer::data::validate::batch_codes;
    use scdreamer::metrics::{knn_batch_entropy, knn_indices, knn_label_purity};
    use scdreamer::model::config::{ModelConfig, RunConfig, TrainConfig};
    use scdreamer::pipeline::{self, FitOptions, GeneSelection, Setup};

    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/data/demo.h5ad");
    let path = if std::path::Path::new(path).exists() {
        std::path::PathBuf::from(path)
    } else {
        // scripts/gpu_check.sh runs carried binaries from a copy of the repository.
        std::path::PathBuf::from("data/demo.h5ad")
    };
    let opts = ReadOptions {
        layer: None,
        allow_non_integer: false,
        progress: false,
    };
    let adata = read_h5ad(&path, &opts).expect("demo reads");
    let (batch, names) = batch_codes(&adata.obs, "batch", false).unwrap();
    let (labels, _) = batch_codes(&adata.obs, "cell_type", false).unwrap();
    let genes = pipeline::select_genes(&adata, &batch, names.len(), &GeneSelection::SeuratV3(2000))
        .unwrap();
    let m = ModelConfig::default_preset(genes.len(), names.len(), 0);
    let mut tc = TrainConfig::default_preset(adata.n_obs(), names.len(), 0, 0);
    tc.epochs = epochs;
    let mut setup = Setup::new_taking_x(
        &mut adata.clone(),
        "batch",
        batch.clone(),
        names.clone(),
        genes,
        &m,
        None,
    )
    .unwrap();
    let opts = FitOptions::new(RunConfig::new("default", m.clone(), tc), false);
    let t0 = std::time::Instant::now();
    let trained = pipeline::fit(backend, &mut setup, opts).unwrap();
    let latent = trained.latent(&setup.prep, 0);
    let seconds = t0.elapsed().as_secs_f64();
    assert!(
        latent.iter().all(|v| v.is_finite()),
        "{}: non-finite embedding",
        backend.name()
    );
    let nb = knn_indices(&latent, adata.n_obs(), m.latent, 15);
    DemoScores {
        purity: knn_label_purity(&nb, &labels),
        entropy: knn_batch_entropy(&nb, &batch, names.len()),
        seconds,
    }
}
