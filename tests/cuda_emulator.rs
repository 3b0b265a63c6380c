//! The emulated CUDA device can fail: each class of GPU bug it exists to catch is planted here
//! and must be reported (an error naming the kernel, or a wrong result the parity checks see):
//! a wrong launch argument, out-of-bounds accesses, launch-bound and shared-memory violations,
//! full-mask warp operations with absent lanes, a swapped GEMM transpose, and (by building the
//! kernels library from mutated copies of kernels/) a missing `__syncthreads` and an off-by-one
//! in a kernel's bound. The same run with the real sources passes, so the harness itself is
//! shown to pass and to fail. Runs on the emulated device only (a real GPU is not needed, and
//! these tests provoke faults on purpose).
#![cfg(feature = "cuda")]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, MutexGuard};

use cudarc::cublas::sys::cublasOperation_t;
use cudarc::cublas::{Gemm, GemmConfig};
use cudarc::driver::{CudaFunction, CudaSlice, LaunchConfig, PushKernelArg};
use scdreamer::backend::cuda::{CudaRuntime, emulator};

mod common;

#[path = "../emu/builder.rs"]
#[allow(dead_code)]
mod emu_builder;

/// Faults are sticky on the device (as on a GPU): tests that provoke one run one at a time.
fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

fn emulated(test: &str) -> Arc<CudaRuntime> {
    assert!(
        emulator::directory().is_some(),
        "this build has no emulated CUDA device (no C++ compiler at build time)"
    );
    emulator::install().expect("the emulated device loads");
    let rt = CudaRuntime::open(0).expect("the emulated device opens");
    emulator::note_test(test);
    rt
}

/// One kernel launched raw by a test: the test's hold on the device (see [`serial`]), the
/// runtime, the kernel, an input of ones and a zeroed output.
struct RawKernel {
    _serial: MutexGuard<'static, ()>,
    rt: Arc<CudaRuntime>,
    f: CudaFunction,
    input: CudaSlice<f32>,
    out: CudaSlice<f32>,
}

fn raw_kernel(test: &str, kernel: (&'static str, &str), n_in: usize, n_out: usize) -> RawKernel {
    let _serial = serial();
    let rt = emulated(test);
    RawKernel {
        f: rt.function(kernel.0, kernel.1).unwrap(),
        input: up(&rt, &vec![1.0; n_in]),
        out: rt.stream.alloc_zeros::<f32>(n_out).unwrap(),
        rt,
        _serial,
    }
}

fn up(rt: &CudaRuntime, v: &[f32]) -> CudaSlice<f32> {
    rt.stream.clone_htod(v).expect("upload")
}

/// Runs `launch`, expects an error, and returns the emulator's message (fault cleared after).
fn expect_error(what: &str, launch: impl FnOnce() -> Result<(), String>) -> String {
    let r = launch();
    let message = emulator::last_error();
    emulator::reset_error();
    assert!(r.is_err(), "{what}: the emulated device accepted it");
    message
}

/// Launches `f` with the arguments pushed in order as they are (no host-side check: the
/// faults planted here must reach the device); the launch's error as text.
macro_rules! launch_raw {
    ($rt:expr, $f:expr, $cfg:expr; $($arg:expr),+ $(,)?) => {{
        let mut l = $rt.stream.launch_builder(&$f);
        $(l.arg($arg);)+
        unsafe { l.launch($cfg) }
            .map(|_| ())
            .map_err(|e| format!("{e:?}"))
    }};
}

fn cfg(blocks: u32, threads: u32, shared: u32) -> LaunchConfig {
    LaunchConfig {
        grid_dim: (blocks, 1, 1),
        block_dim: (threads, 1, 1),
        shared_mem_bytes: shared,
    }
}

#[test]
fn runs_the_host_code_on_the_emulated_device() {
    let _g = serial();
    let rt = emulated("runs_the_host_code_on_the_emulated_device");
    assert!(rt.describe().contains("emulated"), "{}", rt.describe());
    rt.load_all().expect("every kernel module loads");
    let log = rt.load_log().join("; ");
    assert!(log.contains("ptx"), "modules load from the PTX: {log}");
    // A kernel through the real launcher: out[j] = sum_p in[p * n + j].
    let x: Vec<f32> = (0..6).map(|i| i as f32).collect();
    let input = up(&rt, &x);
    let mut out = rt.stream.alloc_zeros::<f32>(3).unwrap();
    scdreamer::backend::cuda::ops::reduce::sum_leading_axis(&rt, &input, &mut out, false)
        .expect("launch");
    assert_eq!(rt.stream.clone_dtoh(&out).unwrap(), vec![3.0, 5.0, 7.0]);
}

#[test]
fn a_bad_launch_argument_or_an_out_of_bounds_read_is_an_error() {
    // sum_leading_axis(const float* in, int parts, int n, float* out, int accumulate).
    let mut k = raw_kernel(
        "a_bad_launch_argument_or_an_out_of_bounds_read_is_an_error",
        ("reduce", "sum_leading_axis"),
        8,
        5,
    );
    let (parts, n, acc, c) = (2i32, 4i32, 0i32, cfg(1, 256, 0));
    // The first two arguments swapped.
    let msg = expect_error(
        "swapped arguments",
        || launch_raw!(k.rt, k.f, c; &parts, &k.input, &n, &mut k.out, &acc),
    );
    let names_kernel =
        |msg: &str, says: &str| msg.contains("sum_leading_axis") && msg.contains(says);
    assert!(names_kernel(&msg, "argument"), "{msg}");
    // A host pointer where the kernel takes device memory.
    let host = [0.0f32; 4];
    let host_ptr = host.as_ptr() as u64;
    let msg = expect_error(
        "host pointer",
        || launch_raw!(k.rt, k.f, c; &host_ptr, &parts, &n, &mut k.out, &acc),
    );
    assert!(msg.contains("not device memory"), "{msg}");
    // n = 5 columns of 2 parts of an 8-element input: elements 8 and 9 are past the end.
    let n_past = 5i32;
    let msg = expect_error(
        "read past the end",
        || launch_raw!(k.rt, k.f, c; &k.input, &parts, &n_past, &mut k.out, &acc),
    );
    assert!(names_kernel(&msg, "past the end"), "{msg}");
}

#[test]
fn launch_bounds_and_shared_memory_limits_are_enforced() {
    // softmax_rows_fwd(const float* in, int rows, int cols, float* out), __launch_bounds__(256).
    let mut k = raw_kernel(
        "launch_bounds_and_shared_memory_limits_are_enforced",
        ("softmax", "softmax_rows_fwd"),
        64,
        64,
    );
    let (rows, cols) = (2i32, 32i32);
    let launch = |c: LaunchConfig, out: &mut CudaSlice<f32>| launch_raw!(k.rt, k.f, c; &k.input, &rows, &cols, out);
    let msg = expect_error("512 threads", || launch(cfg(2, 512, 0), &mut k.out));
    assert!(msg.contains("__launch_bounds__"), "{msg}");
    // 64 KiB of dynamic shared memory without the opt-in attribute.
    let msg = expect_error("64 KiB shared", || {
        launch(cfg(2, 256, 64 * 1024), &mut k.out)
    });
    assert!(msg.contains("48 KiB"), "{msg}");
    // A full-mask warp shuffle in a warp with absent lanes (48 threads: warp 1 has 16).
    let msg = expect_error("48 threads", || launch(cfg(2, 48, 0), &mut k.out));
    assert!(
        msg.contains("softmax_rows_fwd") && msg.contains("only 16 lanes"),
        "{msg}"
    );
    // The same launch done right works.
    launch(cfg(2, 256, 0), &mut k.out).expect("a valid launch");
    let got = k.rt.stream.clone_dtoh(&k.out).unwrap();
    assert!(
        got.iter().all(|&v| (v - 1.0 / 32.0).abs() < 1e-7),
        "{got:?}"
    );
}

/// Column-major reference: C = op(A) op(B), element (i, j) of an ld-strided matrix at i + j ld.
fn gemm_reference(
    ta: bool,
    tb: bool,
    m: usize,
    n: usize,
    k: usize,
    a: &[f32],
    b: &[f32],
) -> Vec<f64> {
    let lda = if ta { k } else { m };
    let ldb = if tb { n } else { k };
    let mut c = vec![0.0f64; m * n];
    for j in 0..n {
        for i in 0..m {
            let mut s = 0.0f64;
            for p in 0..k {
                let aip = if ta { a[p + i * lda] } else { a[i + p * lda] };
                let bpj = if tb { b[j + p * ldb] } else { b[p + j * ldb] };
                s += aip as f64 * bpj as f64;
            }
            c[i + j * m] = s;
        }
    }
    c
}

/// C = op(A) op(B) for an m x n column-major C (ldc = m), alpha 1, beta 0; `ld`: (lda, ldb).
fn gemm_config(
    transa: cublasOperation_t,
    transb: cublasOperation_t,
    (m, n, k): (usize, usize, usize),
    (lda, ldb): (usize, usize),
) -> GemmConfig<f32> {
    GemmConfig {
        transa,
        transb,
        m: m as i32,
        n: n as i32,
        k: k as i32,
        alpha: 1.0,
        lda: lda as i32,
        ldb: ldb as i32,
        beta: 0.0,
        ldc: m as i32,
    }
}

#[test]
fn cublas_follows_column_major_semantics_and_a_swapped_transpose_is_caught() {
    let _g = serial();
    let rt = emulated("cublas_follows_column_major_semantics_and_a_swapped_transpose_is_caught");
    let blas = rt.blas().unwrap();
    let (m, n, k) = (5usize, 4usize, 3usize);
    let a: Vec<f32> = (0..m * k).map(|i| (i as f32 * 0.37).sin()).collect();
    let b: Vec<f32> = (0..k * n).map(|i| (i as f32 * 0.71).cos()).collect();
    let (da, db) = (up(&rt, &a), up(&rt, &b));
    let op = |t| {
        if t {
            cublasOperation_t::CUBLAS_OP_T
        } else {
            cublasOperation_t::CUBLAS_OP_N
        }
    };
    for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
        let mut dc = rt.stream.alloc_zeros::<f32>(m * n).unwrap();
        let c = gemm_config(
            op(ta),
            op(tb),
            (m, n, k),
            (if ta { k } else { m }, if tb { n } else { k }),
        );
        unsafe { blas.gemm(c, &da, &db, &mut dc) }.expect("sgemm");
        let got = rt.stream.clone_dtoh(&dc).unwrap();
        let want = gemm_reference(ta, tb, m, n, k, &a, &b);
        for (g, w) in got.iter().zip(&want) {
            assert!((*g as f64 - w).abs() < 1e-5, "({ta}, {tb}): {g} vs {w}");
        }
        // The same data read with the other transpose of A gives another product: a host
        // that swapped transa would fail any comparison with the CPU.
        let swapped = gemm_reference(!ta, tb, m, n, k, &a, &b);
        assert!(
            got.iter()
                .zip(&swapped)
                .any(|(g, w)| (*g as f64 - w).abs() > 1e-3),
            "a swapped transpose is indistinguishable for ({ta}, {tb})"
        );
    }
    // A leading dimension too small for column-major A (a row-major slip) is refused.
    let mut dc = rt.stream.alloc_zeros::<f32>(m * n).unwrap();
    let (no, lda_row_major) = (op(false), k);
    let bad = gemm_config(no, no, (m, n, k), (lda_row_major, k));
    let r = unsafe { blas.gemm(bad, &da, &db, &mut dc) };
    let msg = emulator::last_error();
    assert!(r.is_err(), "lda < m accepted");
    assert!(msg.contains("lda"), "{msg}");
}

// ------------------------------------------------------------------ mutated kernel sources

/// The kernels library built from a copy of the reduce and softmax sources and the shared
/// header with `edit` applied to `file`.
fn mutant_library(tag: &str, file: &str, from: &str, to: &str) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let work = std::env::temp_dir().join(format!("scd-emu-mutant-{tag}-{}", std::process::id()));
    let kernels = work.join("kernels");
    std::fs::create_dir_all(&kernels).unwrap();
    // Only the modules under test (and the shared header): a smaller library, built faster.
    let mut sources = Vec::new();
    for path in [
        "kernels/common.cuh",
        "kernels/reduce.cu",
        "src/ops/softmax/softmax.cu",
    ] {
        let name = Path::new(path).file_name().unwrap();
        let mut text = std::fs::read_to_string(root.join(path)).unwrap();
        if name == file {
            assert!(text.contains(from), "{file} no longer contains {from:?}");
            text = text.replacen(from, to, 1);
        }
        std::fs::write(kernels.join(name), text).unwrap();
        if path.ends_with(".cu") {
            sources.push(kernels.join(name));
        }
    }
    let out = work.join("libmutant.so");
    let driver = Path::new(emulator::directory().unwrap()).join(emu_builder::DRIVER);
    emu_builder::build_kernels(
        &sources,
        &kernels,
        &root.join("emu"),
        &work.join("gen"),
        &out,
        &driver,
    )
    .expect("the mutant kernels build");
    out
}

/// Runs the test `child_reduce_kernels_match_the_cpu` of this binary in a child process with
/// the given kernels library; true when it passed.
fn child_passes(kernels: Option<&Path>) -> (bool, String) {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "--exact",
        "child_reduce_kernels_match_the_cpu",
        "--nocapture",
        "--test-threads=1",
    ]);
    cmd.env("SCDREAMER_EMU_QUIET", "1");
    if let Some(k) = kernels {
        cmd.env("SCDREAMER_EMU_KERNELS", k);
    }
    let out = cmd.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// The reduce kernels (block_max/block_sum: warp shuffles + __syncthreads; grid-stride bounds) against
/// the CPU. Passes with the real sources; the seeded-fault test runs it on mutants.
#[test]
fn child_reduce_kernels_match_the_cpu() {
    let _g = serial();
    let rt = emulated("child_reduce_kernels_match_the_cpu");
    use scdreamer::backend::cuda::ops::reduce;
    let (rows, cols) = (7usize, 300usize);
    let x: Vec<f32> = (0..rows * cols)
        .map(|i| ((i * 37 % 101) as f32) * 0.01 - 0.3)
        .collect();
    let input = up(&rt, &x);
    // softmax_rows: block_max and block_sum (warp shuffles, __syncthreads, shared scratch).
    let mut sm = rt.stream.alloc_zeros::<f32>(rows * cols).unwrap();
    let f = rt.function("softmax", "softmax_rows_fwd").unwrap();
    let (r, c) = (rows as i32, cols as i32);
    let mut l = rt.stream.launch_builder(&f);
    l.arg(&input).arg(&r).arg(&c).arg(&mut sm);
    unsafe { l.launch(cfg(rows as u32, 256, 0)) }.expect("softmax_rows launch");
    let got = rt.stream.clone_dtoh(&sm).expect("softmax_rows result");
    for r in 0..rows {
        let row = &x[r * cols..(r + 1) * cols];
        let m = row.iter().cloned().fold(f32::NEG_INFINITY, f32::max) as f64;
        let z: f64 = row.iter().map(|&v| (v as f64 - m).exp()).sum();
        for (j, &v) in row.iter().enumerate() {
            let want = (v as f64 - m).exp() / z;
            let g = got[r * cols + j] as f64;
            assert!(
                (g - want).abs() < 1e-6,
                "softmax_rows_fwd [{r}, {j}] {g} vs {want}"
            );
        }
    }
    let mut cols_out = rt.stream.alloc_zeros::<f32>(cols).unwrap();
    reduce::sum_leading_axis(&rt, &input, &mut cols_out, false).expect("sum_leading_axis launch");
    let got = rt
        .stream
        .clone_dtoh(&cols_out)
        .expect("sum_leading_axis result");
    for j in 0..cols {
        let want: f64 = (0..rows).map(|r| x[r * cols + j] as f64).sum();
        assert!(
            (got[j] as f64 - want).abs() < 1e-4,
            "sum_leading_axis[{j}] {} vs {want}",
            got[j]
        );
    }
}

#[test]
fn seeded_kernel_faults_fail_the_suite() {
    let _g = serial();
    let _ = emulated("seeded_kernel_faults_fail_the_suite");
    let (ok, text) = child_passes(None);
    assert!(ok, "the unmodified kernels must pass:\n{text}");
    // (what, the mutation: tag, file, from, to; what the failure must name)
    let mutants = [
        // block_sum reads the per-warp partials before all are written.
        (
            "a missing __syncthreads",
            [
                "sync",
                "common.cuh",
                "    if (lane == 0) scratch[warp] = v;\n    __syncthreads();",
                "    if (lane == 0) scratch[warp] = v;",
            ],
            &["softmax_rows_fwd"][..],
        ),
        // Element n is read and written.
        (
            "an off-by-one bound",
            [
                "bound",
                "reduce.cu",
                "j < n; j += gridDim.x * blockDim.x",
                "j <= n; j += gridDim.x * blockDim.x",
            ],
            &["sum_leading_axis", "past the end"][..],
        ),
    ];
    for (what, [tag, file, from, to], names) in mutants {
        let (ok, text) = child_passes(Some(&mutant_library(tag, file, from, to)));
        assert!(!ok, "{what} went unnoticed:\n{text}");
        for name in names {
            assert!(text.contains(name), "{what}: no {name:?} in\n{text}");
        }
    }
}

// ------------------------------------------------------------------ the CLI on the device

const CLI_EPOCHS: &str = "10";

/// 15-NN cell-type purity and batch entropy of an embedding of the demo's cells.
fn demo_scores(z: &[f32]) -> (f64, f64) {
    common::knn_scores(&common::read(Path::new(common::DEMO)).obs, z)
}

/// `SCDREAMER_EMULATE_CUDA=1 scdreamer integrate --device cuda` on the demo: the real CLI on
/// the emulated device writes its output and the counters, and its embedding scores as the
/// CPU run's (same seed, threads and epochs) within 0.02 on 15-NN purity and batch entropy.
#[test]
fn integrate_device_cuda_on_the_emulated_device_matches_the_cpu_run() {
    let dir = tempfile::tempdir().unwrap();
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/demo.h5ad");
    let run = |device: &str, out: &Path, emulate: bool| {
        let mut cmd = Command::new(common::BIN);
        cmd.args(["integrate", "--input"])
            .arg(&demo)
            .arg("--output")
            .arg(out)
            .args(["--device", device, "--epochs", CLI_EPOCHS, "--seed", "0"])
            .args(["--threads", "2", "--quiet"]);
        if emulate {
            cmd.env("SCDREAMER_EMULATE_CUDA", "1").env(
                "SCDREAMER_EMULATE_CUDA_STATS",
                dir.path().join("stats.json"),
            );
        }
        let o = cmd.output().unwrap();
        let text = String::from_utf8_lossy(&o.stderr).into_owned();
        assert!(
            o.status.success(),
            "integrate --device {device} failed:\n{text}"
        );
        text
    };
    let cpu_out = dir.path().join("cpu.h5ad");
    let gpu_out = dir.path().join("cuda.h5ad");
    run("cpu", &cpu_out, false);
    let log = run("cuda", &gpu_out, true);
    assert!(
        log.contains("emulated CUDA device"),
        "says it is emulated:\n{log}"
    );
    assert!(log.contains("device cuda"), "{log}");
    if let Some(path) = std::env::var_os(emulator::TEST_LOG_ENV) {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap();
        writeln!(
            f,
            "integrate_device_cuda_on_the_emulated_device_matches_the_cpu_run"
        )
        .unwrap();
    }
    let (zc, zg) = (common::embedding(&cpu_out), common::embedding(&gpu_out));
    assert_eq!(zc.len(), zg.len());
    assert!(
        zg.iter().all(|v| v.is_finite()),
        "non-finite CUDA embedding"
    );
    let (pc, ec) = demo_scores(&zc);
    let (pg, eg) = demo_scores(&zg);
    let max_diff = common::max_abs_diff(&zc, &zg);
    println!(
        "demo, {CLI_EPOCHS} epochs: cpu purity {pc:.4} entropy {ec:.4}; emulated cuda purity \
         {pg:.4} entropy {eg:.4}; max |z_cpu - z_cuda| {max_diff:.3e}"
    );
    assert!((pc - pg).abs() <= 0.02, "purity {pg} vs cpu {pc}");
    assert!((ec - eg).abs() <= 0.02, "batch entropy {eg} vs cpu {ec}");

    // The counters: per kernel, totals and one record per training step.
    let stats: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("stats.json")).unwrap())
            .expect("stats JSON parses");
    assert!(
        stats["kernels"]["zinb_fwd_bwd_tile"].as_u64().unwrap_or(0) > 0,
        "{stats}"
    );
    assert!(stats["kernels"]["cublasSgemm_v2"].as_u64().unwrap_or(0) > 0);
    let steps = stats["steps"].as_array().expect("steps");
    // demo: 1,345 cells, batch 128 -> 10 steps per epoch; the last step is "after_last_step".
    let epochs: usize = CLI_EPOCHS.parse().unwrap();
    assert_eq!(steps.len(), epochs * 10 - 1, "one record per step");
    for key in [
        "h2d",
        "h2d_bytes",
        "d2h",
        "d2h_bytes",
        "syncs",
        "launches",
        "allocs",
    ] {
        assert!(
            steps[1][key].is_u64(),
            "step record lacks {key}: {}",
            steps[1]
        );
        assert!(stats["totals"][key].is_u64(), "totals lack {key}");
    }
    assert!(steps[1]["launches"].as_u64().unwrap() > 10);
    // Per kernel within the training steps: what bench/gpu_model.py reads.
    let gemm = &stats["step_kernels"]["cublasSgemm_v2"];
    assert!(gemm["flops"].as_u64().unwrap() > 0, "{gemm}");
    assert!(gemm["bytes"].as_u64().unwrap() > 0, "{gemm}");
    let in_steps: u64 = stats["step_kernels"]
        .as_object()
        .unwrap()
        .values()
        .map(|k| k["launches"].as_u64().unwrap())
        .sum();
    let per_step: u64 = steps.iter().map(|r| r["launches"].as_u64().unwrap()).sum();
    assert_eq!(
        in_steps, per_step,
        "step_kernels covers the closed steps' launches"
    );
    // Multi-tensor optimiser: one Adam launch per optimiser (three) and one clipping norm per
    // step, whatever the number of tensors.
    let launches_of = |k: &str| stats["step_kernels"][k]["launches"].as_u64().unwrap_or(0);
    let closed = steps.len() as u64;
    assert_eq!(
        launches_of("adam_many"),
        3 * closed,
        "{}",
        stats["step_kernels"]
    );
    assert_eq!(launches_of("sq_norm_many_partials"), closed);

    // The device-resident step: per step at most one host-to-device copy (the minibatch's
    // rows) and no device-to-host copy or synchronisation except where the running sums are
    // read (about nine times per epoch, and at its end): at most 10 per epoch.
    // The first step also uploads the optimisers' tensor tables (multi-tensor Adam: three
    // optimisers and the clipping norm), once.
    let count = |r: &serde_json::Value, k: &str| r[k].as_u64().unwrap();
    for (i, r) in steps.iter().enumerate() {
        let tables = if i == 0 { 4 } else { 0 };
        assert!(count(r, "h2d") <= 1 + tables, "step {i}: {r}");
        assert!(count(r, "d2h") <= 1, "step {i}: {r}");
        assert!(count(r, "syncs") <= 1, "step {i}: {r}");
    }
    let quiet = steps
        .iter()
        .filter(|r| count(r, "d2h") == 0 && count(r, "syncs") == 0)
        .count();
    assert!(
        quiet * 2 >= steps.len(),
        "{quiet} quiet steps of {}",
        steps.len()
    );
    for (e, epoch) in steps.chunks(10).enumerate() {
        let reads: u64 = epoch.iter().map(|r| count(r, "d2h")).sum();
        assert!(reads <= 10, "epoch {e}: {reads} device-to-host copies");
    }
    println!(
        "steady step: {}; quiet steps {quiet} of {}",
        steps[steps.len() / 2],
        steps.len()
    );
}
