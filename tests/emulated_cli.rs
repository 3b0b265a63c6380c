//! `--device cuda` honoured by every command, checked through the real binary on the emulated
//! CUDA device (`SCDREAMER_EMULATE_CUDA=1`): `integrate --backed` streams its chunks to the
//! device and `embed` runs a saved model there, and each agrees with the same command on the
//! CPU. (`integrate --device cuda` in memory: tests/cuda_emulator.rs.)
#![cfg(feature = "cuda")]

mod common;

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::process::Command;

use common::{BIN, DEMO, argv, embedding, max_abs_diff, read, run_with, scratch};
use scdreamer::backend::cuda::emulator;

const EPOCHS: &str = "10";
const SUP_EPOCHS: &str = "3";

/// Runs the binary with `args` (on the emulated device when `stats` names a counters file) and
/// returns its stderr; a failure fails the test with that text.
fn cli(args: &[String], stats: Option<&Path>) -> String {
    let mut cmd = Command::new(BIN);
    if let Some(stats) = stats {
        cmd.env("SCDREAMER_EMULATE_CUDA", "1")
            .env("SCDREAMER_EMULATE_CUDA_STATS", stats);
    }
    run_with(&mut cmd, args).expect_ok("scdreamer")
}

/// The run was on the emulated device: its log says so; the test names itself in
/// `SCDREAMER_EMULATED_TEST_LOG` (scripts/test.sh counts these).
fn ran_emulated(test: &str, log: &str) {
    assert!(
        log.contains("emulated CUDA device"),
        "says it is emulated:\n{log}"
    );
    let Some(path) = std::env::var_os(emulator::TEST_LOG_ENV) else {
        return;
    };
    // Appended: the tests of a run share the file.
    let file = File::options().append(true).create(true).open(path);
    writeln!(file.unwrap(), "{test}").unwrap();
}

/// Runs `words` twice, on the CPU and on the emulated device: its last two `{}` are the
/// output and the device, the others are `paths`. Checks that the second run was emulated
/// (naming `test` for scripts/test.sh) and returns its log, the CPU and the device embeddings
/// and the emulator's counters.
fn cpu_and_emulated(
    test: &str,
    words: &str,
    paths: &[&dyn AsRef<Path>],
) -> (String, Vec<f32>, Vec<f32>, serde_json::Value) {
    let (_dir, [cpu, cuda, counters]) = scratch(["cpu.h5ad", "cuda.h5ad", "stats.json"]);
    let run = |out: &Path, device: &str, stats: Option<&Path>| {
        let mut all = paths.to_vec();
        all.extend([&out as &dyn AsRef<Path>, &device]);
        (cli(&argv(words, &all), stats), embedding(out))
    };
    let (_, zc) = run(&cpu, "cpu", None);
    let (log, zg) = run(&cuda, "cuda", Some(&counters));
    ran_emulated(test, &log);
    (log, zc, zg, stats(&counters))
}

fn stats(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).expect("counters written"))
        .expect("counters parse")
}

/// 15-NN cell-type purity and batch entropy of an embedding of the demo's cells.
fn demo_scores(z: &[f32]) -> (f64, f64) {
    common::knn_scores(&read(Path::new(DEMO)).obs, z)
}

/// The emulated device's embedding `zg` of the demo is finite and scores as the CPU's `zc`
/// within 0.02 on 15-NN purity and batch entropy; prints both (`run` names the run).
fn assert_scores_match_the_cpu(run: &str, zc: &[f32], zg: &[f32]) {
    assert!(zg.iter().all(|v| v.is_finite()), "non-finite embedding");
    let ((pc, ec), (pg, eg)) = (demo_scores(zc), demo_scores(zg));
    println!(
        "{run}: cpu purity {pc:.4} entropy {ec:.4}; emulated cuda purity {pg:.4} entropy \
         {eg:.4}; max |z_cpu - z_cuda| {:.3e}",
        max_abs_diff(zc, zg)
    );
    assert!((pc - pg).abs() <= 0.02, "purity {pg} vs cpu {pc}");
    assert!((ec - eg).abs() <= 0.02, "batch entropy {eg} vs cpu {ec}");
}

/// `integrate --backed --chunk-cells 500 --device cuda`: the three chunks of the demo go to
/// the emulated device in turn (one training step per minibatch of each chunk), and the
/// embedding scores as the CPU run's with the same flags within 0.02 on 15-NN purity and batch
/// entropy (the tolerance of the in-memory `--device cuda` test).
#[test]
fn integrate_backed_device_cuda_streams_chunks_to_the_emulated_device() {
    let words = format!(
        "integrate --input {{}} --backed --chunk-cells 500 --epochs {EPOCHS} --seed 0 \
         --threads 2 --quiet --output {{}} --device {{}}"
    );
    let (log, zc, zg, s) = cpu_and_emulated(
        "integrate_backed_device_cuda_streams_chunks_to_the_emulated_device",
        &words,
        &[&DEMO],
    );
    assert!(log.contains("device cuda"), "{log}");
    assert!(log.contains("read in 3 chunk(s) of 500 cells"), "{log}");
    assert_eq!(zc.len(), zg.len());
    assert_scores_match_the_cpu(
        &format!("demo --backed, 3 chunks, {EPOCHS} epochs"),
        &zc,
        &zg,
    );
    // Trained on the device, chunk by chunk: chunks of 500, 500 and 345 cells give 3 + 3 + 2
    // minibatches of 128 per epoch (one counters record per step but the last).
    let epochs: usize = EPOCHS.parse().unwrap();
    let steps = s["steps"].as_array().expect("steps");
    assert_eq!(steps.len(), epochs * 8 - 1, "one record per step");
    assert!(s["kernels"]["zinb_fwd_bwd_tile"].as_u64().unwrap_or(0) > 0);
}

/// `integrate --labels-key --device cuda` (scDREAMER-Sup at the default label balance 1): each
/// training step gathers the minibatch's labels and label mask in one launch (`gather_labels`;
/// the mask is the cells' label-loss weights, one table for any balance), beside one gather of
/// batch codes and one of library sizes, and the embedding scores as the CPU run's within 0.02
/// on 15-NN purity and batch entropy (a short run: the counters are per step).
#[test]
fn integrate_sup_device_cuda_gathers_labels_and_weights_in_one_launch() {
    let words = format!(
        "integrate --input {{}} --labels-key cell_type --epochs {SUP_EPOCHS} --seed 0 \
         --threads 2 --quiet --output {{}} --device {{}}"
    );
    let (log, zc, zg, s) = cpu_and_emulated(
        "integrate_sup_device_cuda_gathers_labels_and_weights_in_one_launch",
        &words,
        &[&DEMO],
    );
    assert!(log.contains("device cuda"), "{log}");
    assert_scores_match_the_cpu(&format!("demo Sup, {SUP_EPOCHS} epochs"), &zc, &zg);
    let closed = s["steps"].as_array().expect("steps").len() as u64;
    assert!(closed > 0);
    let launches = |k: &str| s["step_kernels"][k]["launches"].as_u64().unwrap_or(0);
    for (kernel, per_step) in [("gather_labels", 1), ("gather_f32", 1), ("gather_u32", 1)] {
        assert_eq!(
            launches(kernel),
            per_step * closed,
            "{kernel} launches in {closed} steps: {}",
            s["step_kernels"]
        );
    }
}

/// `embed --device cuda` runs a saved model on the emulated device: the embedding of the same
/// cells by the same weights agrees elementwise with `embed --device cpu` within
/// `1e-3 |cpu| + 1e-4 max|cpu|` (the parity suite's tolerance for f32 kernels against the CPU's
/// arithmetic), and so do its scores.
#[test]
fn embed_device_cuda_on_the_emulated_device_matches_the_cpu_embed() {
    let (_dir, [model, trained]) = scratch(["model", "trained.h5ad"]);
    let train = "integrate --input {} --output {} --save-model {} --device cpu --epochs 3 \
                 --threads 2 --quiet";
    cli(&argv(train, &[&DEMO, &trained, &model]), None);
    let (_, zc, zg, s) = cpu_and_emulated(
        "embed_device_cuda_on_the_emulated_device_matches_the_cpu_embed",
        "embed --model {} --input {} --quiet --output {} --device {}",
        &[&model, &DEMO],
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
    assert!(
        s["kernels"]["cublasSgemm_v2"].as_u64().unwrap_or(0) > 0,
        "{s}"
    );
}
