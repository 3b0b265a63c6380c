//! `--device cuda` honoured by every command, checked through the real binary on the emulated
//! CUDA device (`SCDREAMER_EMULATE_CUDA=1`): `integrate --backed` streams its chunks to the
//! device and `embed` runs a saved model there, and each agrees with the same command on the
//! CPU. (`integrate --device cuda` in memory: tests/cuda_emulator.rs.)
#![cfg(feature = "cuda")]

use std::ffi::OsStr;
use std::path::Path;
use std::process::Command;

use scdreamer::backend::cuda::emulator;

const BIN: &str = env!("CARGO_BIN_EXE_scdreamer");
const EPOCHS: &str = "10";

fn demo() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/data/demo.h5ad"))
}

/// Runs the binary with `args` (on the emulated device when `stats` names a counters file) and
/// returns its stderr; a failure fails the test with that text.
fn cli<S: AsRef<OsStr>>(args: &[S], stats: Option<&Path>) -> String {
    let mut cmd = Command::new(BIN);
    cmd.args(args);
    if let Some(stats) = stats {
        cmd.env("SCDREAMER_EMULATE_CUDA", "1")
            .env("SCDREAMER_EMULATE_CUDA_STATS", stats);
    }
    let o = cmd.output().expect("the binary runs");
    let text = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "scdreamer failed:\n{text}");
    text
}

/// The run was on the emulated device: its log says so; the test names itself in
/// `SCDREAMER_EMULATED_TEST_LOG` (scripts/test.sh counts these).
fn ran_emulated(test: &str, log: &str) {
    assert!(
        log.contains("emulated CUDA device"),
        "says it is emulated:\n{log}"
    );
    if let Some(path) = std::env::var_os(emulator::TEST_LOG_ENV) {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap();
        writeln!(f, "{test}").unwrap();
    }
}

fn embedding(path: &Path) -> Vec<f32> {
    let f = hdf5::File::open(path).expect("output opens");
    f.dataset("obsm/X_scdreamer")
        .expect("obsm/X_scdreamer")
        .read_raw()
        .expect("embedding reads")
}

fn stats(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).expect("counters written"))
        .expect("counters parse")
}

/// 15-NN cell-type purity and batch entropy of an embedding of the demo's cells.
fn demo_scores(z: &[f32]) -> (f64, f64) {
    use scdreamer::data::h5ad::{ReadOptions, read_h5ad};
    use scdreamer::data::validate::batch_codes;
    use scdreamer::metrics::{knn_batch_entropy, knn_indices, knn_label_purity};
    let opts = ReadOptions {
        layer: None,
        allow_non_integer: false,
        progress: false,
    };
    let adata = read_h5ad(demo(), &opts).expect("demo reads");
    let (batch, names) = batch_codes(&adata.obs, "batch", false).unwrap();
    let (labels, _) = batch_codes(&adata.obs, "cell_type", false).unwrap();
    let n = adata.n_obs();
    let nb = knn_indices(z, n, z.len() / n, 15);
    (
        knn_label_purity(&nb, &labels),
        knn_batch_entropy(&nb, &batch, names.len()),
    )
}

/// `integrate --backed --chunk-cells 500 --device cuda`: the three chunks of the demo go to
/// the emulated device in turn (one training step per minibatch of each chunk), and the
/// embedding scores as the CPU run's with the same flags within 0.02 on 15-NN purity and batch
/// entropy (the tolerance of the in-memory `--device cuda` test).
#[test]
fn integrate_backed_device_cuda_streams_chunks_to_the_emulated_device() {
    let dir = tempfile::tempdir().unwrap();
    let run = |device: &str, out: &str, stats: Option<&Path>| {
        let out = dir.path().join(out);
        let log = cli(
            &[
                OsStr::new("integrate"),
                OsStr::new("--input"),
                demo().as_os_str(),
                OsStr::new("--output"),
                out.as_os_str(),
                OsStr::new("--backed"),
                OsStr::new("--chunk-cells"),
                OsStr::new("500"),
                OsStr::new("--device"),
                OsStr::new(device),
                OsStr::new("--epochs"),
                OsStr::new(EPOCHS),
                OsStr::new("--seed"),
                OsStr::new("0"),
                OsStr::new("--threads"),
                OsStr::new("2"),
                OsStr::new("--quiet"),
            ],
            stats,
        );
        (log, embedding(&out))
    };
    let counters = dir.path().join("stats.json");
    let (_, zc) = run("cpu", "cpu.h5ad", None);
    let (log, zg) = run("cuda", "cuda.h5ad", Some(&counters));
    ran_emulated(
        "integrate_backed_device_cuda_streams_chunks_to_the_emulated_device",
        &log,
    );
    assert!(log.contains("device cuda"), "{log}");
    assert!(log.contains("read in 3 chunk(s) of 500 cells"), "{log}");
    assert_eq!(zc.len(), zg.len());
    assert!(zg.iter().all(|v| v.is_finite()), "non-finite embedding");
    let ((pc, ec), (pg, eg)) = (demo_scores(&zc), demo_scores(&zg));
    let max_diff = zc
        .iter()
        .zip(&zg)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    println!(
        "demo --backed, 3 chunks, {EPOCHS} epochs: cpu purity {pc:.4} entropy {ec:.4}; \
         emulated cuda purity {pg:.4} entropy {eg:.4}; max |z_cpu - z_cuda| {max_diff:.3e}"
    );
    assert!((pc - pg).abs() <= 0.02, "purity {pg} vs cpu {pc}");
    assert!((ec - eg).abs() <= 0.02, "batch entropy {eg} vs cpu {ec}");
    // Trained on the device, chunk by chunk: chunks of 500, 500 and 345 cells give 3 + 3 + 2
    // minibatches of 128 per epoch (one counters record per step but the last).
    let s = stats(&counters);
    let epochs: usize = EPOCHS.parse().unwrap();
    let steps = s["steps"].as_array().expect("steps");
    assert_eq!(steps.len(), epochs * 8 - 1, "one record per step");
    assert!(s["kernels"]["zinb_fwd_bwd_tile"].as_u64().unwrap_or(0) > 0);
}

/// `embed --device cuda` runs a saved model on the emulated device: the embedding of the same
/// cells by the same weights agrees elementwise with `embed --device cpu` within
/// `1e-3 |cpu| + 1e-4 max|cpu|` (the parity suite's tolerance for f32 kernels against the CPU's
/// arithmetic), and so do its scores.
#[test]
fn embed_device_cuda_on_the_emulated_device_matches_the_cpu_embed() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("model");
    let trained = dir.path().join("trained.h5ad");
    let demo = demo().to_str().unwrap();
    cli(
        &[
            "integrate",
            "--input",
            demo,
            "--output",
            trained.to_str().unwrap(),
            "--save-model",
            model.to_str().unwrap(),
            "--device",
            "cpu",
            "--epochs",
            "3",
            "--threads",
            "2",
            "--quiet",
        ],
        None,
    );
    let embed = |device: &str, out: &str, stats: Option<&Path>| {
        let out = dir.path().join(out);
        let log = cli(
            &[
                "embed",
                "--model",
                model.to_str().unwrap(),
                "--input",
                demo,
                "--output",
                out.to_str().unwrap(),
                "--device",
                device,
                "--quiet",
            ],
            stats,
        );
        (log, embedding(&out))
    };
    let counters = dir.path().join("stats.json");
    let (_, zc) = embed("cpu", "cpu.h5ad", None);
    let (log, zg) = embed("cuda", "cuda.h5ad", Some(&counters));
    ran_emulated(
        "embed_device_cuda_on_the_emulated_device_matches_the_cpu_embed",
        &log,
    );
    assert_eq!(zc.len(), zg.len());
    let scale = zc.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let mut worst = 0.0f32;
    for (i, (&g, &c)) in zg.iter().zip(&zc).enumerate() {
        let err = (g - c).abs();
        worst = worst.max(err);
        assert!(
            err <= 1e-3 * c.abs() + 1e-4 * scale,
            "z[{i}]: cuda {g} vs cpu {c} (max|z| {scale})"
        );
    }
    let ((pc, ec), (pg, eg)) = (demo_scores(&zc), demo_scores(&zg));
    println!(
        "embed: max |z_cpu - z_cuda| {worst:.3e} (max|z| {scale:.3}); purity {pc:.4} vs \
         {pg:.4}, batch entropy {ec:.4} vs {eg:.4}"
    );
    assert!((pc - pg).abs() <= 0.02 && (ec - eg).abs() <= 0.02);
    // The model ran on the device: its matrix products went to (emulated) cuBLAS.
    let s = stats(&counters);
    assert!(
        s["kernels"]["cublasSgemm_v2"].as_u64().unwrap_or(0) > 0,
        "{s}"
    );
}
