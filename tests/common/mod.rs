//! What the integration test files share: the binary and its command lines, the bundled demo,
//! the shared datasets and reading an h5ad back.

#![allow(dead_code)] // each test crate uses a different part

use std::ffi::OsStr;
use std::fmt::Debug;
use std::path::{Path, PathBuf};
use std::process::Command;

use scdreamer::data::AnnData;
use scdreamer::data::h5ad::{ReadOptions, read_h5ad};

pub const BIN: &str = env!("CARGO_BIN_EXE_scdreamer");

/// The bundled demo file.
pub const DEMO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/data/demo.h5ad");

/// A file below the repository root.
pub fn repo_file(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// How a run of the binary ended.
pub struct Run {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// (success, stderr).
    pub fn status(self) -> (bool, String) {
        (self.ok, self.stderr)
    }

    /// The stderr of a run that must succeed.
    pub fn expect_ok(self, what: &str) -> String {
        assert!(self.ok, "{what} failed: {}", self.stderr);
        self.stderr
    }

    /// The stderr of a run that must fail naming every string of `needles`.
    pub fn expect_err(self, needles: &[&str]) -> String {
        assert!(!self.ok, "the run succeeded: {}", self.stderr);
        for n in needles {
            assert!(self.stderr.contains(n), "no {n:?} in: {}", self.stderr);
        }
        self.stderr
    }
}

/// Runs the binary on `args`; a panic is a failure whatever the test expects.
pub fn run<S: AsRef<OsStr> + Debug>(args: &[S]) -> Run {
    run_with(&mut Command::new(BIN), args)
}

/// [`run`] with `cmd` (the binary, with its environment set by the caller).
pub fn run_with<S: AsRef<OsStr> + Debug>(cmd: &mut Command, args: &[S]) -> Run {
    let out = cmd.args(args).output().expect("binary runs");
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!stderr.contains("panicked"), "panic in {args:?}: {stderr}");
    Run {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).to_string(),
        stderr,
    }
}

/// A command line: `words` split on whitespace, each `{}` replaced in turn by one of `paths`
/// whole (so a path may hold spaces).
pub fn argv(words: &str, paths: &[&dyn AsRef<Path>]) -> Vec<String> {
    let mut paths = paths.iter();
    let args: Vec<String> = words
        .split_whitespace()
        .map(|w| match w {
            "{}" => s(paths.next().expect("a path for every {}").as_ref()).to_string(),
            w => w.to_string(),
        })
        .collect();
    assert!(paths.next().is_none(), "more paths than {{}} in {words:?}");
    args
}

/// `argv(words, paths)` with `extra` appended.
pub fn argv_plus(words: &str, paths: &[&dyn AsRef<Path>], extra: &[&str]) -> Vec<String> {
    let mut v = argv(words, paths);
    v.extend(extra.iter().map(|e| e.to_string()));
    v
}

pub fn s(p: &Path) -> &str {
    p.to_str().expect("a UTF-8 path")
}

/// Reads an h5ad with the default options (integer counts, no progress bar).
pub fn read(path: &Path) -> AnnData {
    read_h5ad(path, &ReadOptions::default()).expect("h5ad reads")
}

/// ../shared/data, or None (skip, with the reason printed) when it is absent; under CI=true
/// absence is a failure.
pub fn shared_data() -> Option<PathBuf> {
    let dir = repo_file("../shared/data");
    if dir.is_dir() {
        return Some(dir);
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!(
            "CI=true but the shared datasets are missing at {}",
            dir.display()
        );
    }
    eprintln!("skipping: shared datasets not found at {}", dir.display());
    None
}

/// An f32 dataset of an HDF5 file, flat.
pub fn dataset_f32(path: &Path, key: &str) -> Vec<f32> {
    let f = scdreamer::data::h5ad::open_h5(path).unwrap();
    f.dataset(key).unwrap().read_raw().unwrap()
}

/// `obsm/X_scdreamer` of an output, flat (cells x latent).
pub fn embedding(path: &Path) -> Vec<f32> {
    dataset_f32(path, "obsm/X_scdreamer")
}

/// The largest |a - b| over paired values.
pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0f32, f32::max)
}

/// A scratch directory and the paths of `names` in it.
pub fn scratch<const N: usize>(names: [&str; N]) -> (tempfile::TempDir, [PathBuf; N]) {
    let dir = tempfile::tempdir().unwrap();
    let paths = names.map(|n| dir.path().join(n));
    (dir, paths)
}

/// The Harmony embedding of the demo committed for the `evaluate` tests.
pub fn harmony() -> String {
    repo_file("tests/fixtures/evaluate/demo_harmony.npy")
        .display()
        .to_string()
}

/// Writes `x` (rows x cols, row-major) as a little-endian f32 .npy, format 1.0: magic,
/// version, header length, then the header dict padded with spaces so that the data starts
/// at a multiple of 64 bytes.
pub fn write_npy(path: &Path, x: &[f32], rows: usize, cols: usize) {
    let dict = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({rows}, {cols}), }}");
    let header_len = (10 + dict.len() + 1).next_multiple_of(64) - 10;
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend((header_len as u16).to_le_bytes());
    bytes.extend(format!("{dict:<0$}\n", header_len - 1).as_bytes());
    bytes.extend(x.iter().flat_map(|v| v.to_le_bytes()));
    std::fs::write(path, bytes).unwrap();
}

/// 15-NN cell-type purity and batch entropy (over ln #batches) of the embedding `z` of the
/// cells of `obs` (its `cell_type` and `batch` columns).
pub fn knn_scores(obs: &scdreamer::data::Frame, z: &[f32]) -> (f64, f64) {
    use scdreamer::data::validate::batch_codes;
    use scdreamer::metrics::{knn_batch_entropy, knn_indices, knn_label_purity};
    let codes = |key| batch_codes(obs, key, false).unwrap();
    let ((batch, names), (labels, _)) = (codes("batch"), codes("cell_type"));
    let nb = knn_indices(z, obs.len(), z.len() / obs.len(), 15);
    let purity = knn_label_purity(&nb, &labels);
    (purity, knn_batch_entropy(&nb, &batch, names.len()))
}

/// The `config.json` of a saved model directory.
pub fn model_config(model: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(model.join("config.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}
