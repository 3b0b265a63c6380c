//! CPU-vs-CUDA parity of one op folder's kernels, for the folder's own tests: the same inputs go
//! through the CPU and through the CUDA backend (a real GPU, else the emulated CUDA device), and
//! every output must agree within `|got - want| <= rtol |want| + atol_rel * max|want|`.
//!
//! Without the `cuda` feature or any device the CUDA half is skipped with the reason printed; it
//! fails instead where it must run (`SCDREAMER_REQUIRE_GPU=1` or `CI=true`).

use super::Backend;
use crate::backend::cpu::Cpu;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The kernel calls of one op, run on any backend: every output it wants compared, by name.
pub(crate) trait Kernels {
    fn run<B: Backend>(&self, b: &B) -> Vec<(String, Vec<f32>)>;
}

/// Runs `kernels` on the CPU and on the CUDA backend and compares every output.
pub(crate) fn check(test: &str, kernels: &impl Kernels, rtol: f64, atol_rel: f64) {
    let want = kernels.run(&Cpu::new());
    assert!(!want.is_empty(), "{test}: no output to compare");
    let Some(got) = on_cuda(test, kernels) else {
        return;
    };
    let mut failures = Vec::new();
    for ((name, w), (gname, g)) in want.iter().zip(&got) {
        assert_eq!(name, gname, "{test}: outputs in a different order");
        if let Err(e) = compare(w, g, rtol, atol_rel) {
            failures.push(format!("{name}: {e}"));
        }
    }
    assert!(failures.is_empty(), "{test}: {}", failures.join("; "));
}

/// `n` values drawn uniformly from `[lo, hi]` (seeded).
pub(crate) fn uniform(seed: u64, n: usize, lo: f32, hi: f32) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n).map(|_| rng.gen_range(lo..=hi)).collect()
}

/// A backend buffer holding `data`.
pub(crate) fn upload<B: Backend>(b: &B, data: &[f32]) -> B::Buf {
    let mut buf = b.alloc(data.len());
    b.upload(data, &mut buf);
    buf
}

/// The contents of a backend buffer.
pub(crate) fn download<B: Backend>(b: &B, buf: &B::Buf) -> Vec<f32> {
    let mut out = vec![0.0; b.len(buf)];
    b.download(buf, &mut out);
    out
}

fn compare(want: &[f32], got: &[f32], rtol: f64, atol_rel: f64) -> Result<(), String> {
    if want.len() != got.len() {
        return Err(format!("length {} vs {}", got.len(), want.len()));
    }
    let scale = want.iter().fold(0f64, |m, &v| m.max((v as f64).abs()));
    for (i, (&w, &g)) in want.iter().zip(got).enumerate() {
        let err = (g as f64 - w as f64).abs();
        if err.is_nan() || err > rtol * (w as f64).abs() + atol_rel * scale {
            return Err(format!("[{i}] got {g}, want {w}"));
        }
    }
    Ok(())
}

fn must_run() -> bool {
    std::env::var("SCDREAMER_REQUIRE_GPU").as_deref() == Ok("1")
        || std::env::var("CI").as_deref() == Ok("true")
}

#[cfg(feature = "cuda")]
fn on_cuda(test: &str, kernels: &impl Kernels) -> Option<Vec<(String, Vec<f32>)>> {
    use crate::backend::cuda::{CudaBackend, emulator};
    match crate::backend::device::probe_gpu_or_emulated() {
        Ok((rt, _)) => {
            let b = CudaBackend::new(rt).expect("CUDA backend opens");
            emulator::note_test(test);
            Some(kernels.run(&b))
        }
        Err(why) if must_run() => panic!("the CUDA half of {test} cannot run: {why}"),
        Err(why) => {
            println!("skipping the CUDA half of {test}: {why}");
            None
        }
    }
}

#[cfg(not(feature = "cuda"))]
fn on_cuda(test: &str, _: &impl Kernels) -> Option<Vec<(String, Vec<f32>)>> {
    assert!(!must_run(), "{test}: built without the `cuda` feature");
    println!("skipping the CUDA half of {test}: built without the `cuda` feature");
    None
}

#[cfg(test)]
mod tests {
    use super::compare;

    #[test]
    fn the_comparison_can_fail() {
        assert!(compare(&[1.0, 2.0], &[1.0, 2.0], 0.0, 0.0).is_ok());
        assert!(compare(&[1.0, 2.0], &[1.0, 2.001], 1e-4, 0.0).is_err());
        assert!(compare(&[1.0], &[f32::NAN], 1.0, 1.0).is_err());
        assert!(compare(&[1.0], &[1.0, 1.0], 1.0, 1.0).is_err());
    }
}
