//! Files written by `write_h5ad` load in Python anndata + scanpy with warnings as errors,
//! with the same shape, counts, categoricals, obsm, layers and uns.
//!
//! Needs a Python with anndata and scanpy in `SCDREAMER_PYTHON`; skipped (with a message)
//! when unset, except under CI=true where it must be set.

use std::path::{Path, PathBuf};
use std::process::Command;

use scdreamer::data::Column;
use scdreamer::data::h5ad::{Dense, ReadOptions, Results, read_h5ad, write_h5ad};
use serde_json::{Value, json};

fn python() -> Option<PathBuf> {
    match std::env::var_os("SCDREAMER_PYTHON") {
        Some(p) if !p.is_empty() => Some(PathBuf::from(p)),
        _ if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("CI=true but SCDREAMER_PYTHON (a python with anndata + scanpy) is not set")
        }
        _ => {
            eprintln!("skipping: set SCDREAMER_PYTHON to a python with anndata and scanpy");
            None
        }
    }
}

fn demo() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/data/demo.h5ad"))
}

fn run_check(py: &Path, files: &[&Path]) -> Vec<Value> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/check_h5ad.py");
    let out = Command::new(py)
        .arg(script)
        .args(files)
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "check_h5ad.py failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON line per file"))
        .collect()
}

#[test]
fn written_files_load_in_anndata_and_scanpy() {
    let Some(py) = python() else { return };
    let a = read_h5ad(&demo(), &ReadOptions::default()).unwrap();
    let (n, g) = (a.n_obs(), a.n_vars());
    let latent: Vec<f32> = (0..n * 10)
        .map(|i| ((i * 37 % 101) as f32 - 50.0) / 25.0)
        .collect();
    let norm: Vec<f32> = (0..n * g).map(|i| (i % 13) as f32 * 0.5).collect();
    let clusters = Column::Categorical {
        codes: (0..n).map(|i| (i % 3) as i32).collect(),
        categories: vec!["c0".into(), "c1".into(), "c2".into()],
        ordered: false,
    };
    let results = Results {
        obsm: vec![(
            "X_scdreamer".into(),
            Dense::new(n, 10, latent.clone()).unwrap(),
        )],
        layers: vec![(
            "scdreamer_normalized".into(),
            Dense::new(n, g, norm).unwrap(),
        )],
        obs: vec![
            ("scdreamer_cluster".into(), clusters),
            (
                "score".into(),
                Column::F32((0..n).map(|i| i as f32 / 7.0).collect()),
            ),
            (
                "flag".into(),
                Column::Bool((0..n).map(|i| i % 2 == 0).collect()),
            ),
            (
                "note".into(),
                Column::Str((0..n).map(|i| format!("cell-{i}")).collect()),
            ),
        ],
        uns: vec![
            (
                "scdreamer".into(),
                json!({
                    "version": scdreamer::VERSION,
                    "params": {"epochs": 10, "lr": 0.001, "batch_key": "batch", "sup": false},
                    "loss_history": [3.5, 2.25, 1.0],
                    "batches": ["10x", "CEL-seq2", "Drop-seq"],
                    "matrix": [[1, 2], [3, 4]],
                    "skipped": null
                }),
            ),
            ("answer".into(), json!(42)),
        ],
    };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.h5ad");
    write_h5ad(&out, &a, &results).unwrap();
    // A file with no results at all must load too (empty obsm/layers/uns).
    let bare = dir.path().join("bare.h5ad");
    write_h5ad(&bare, &a, &Results::default()).unwrap();

    let seen = run_check(&py, &[&out, &bare]);
    assert_eq!(seen.len(), 2);
    let s = &seen[0];
    assert_eq!(s["shape"], json!([n, g]));
    assert_eq!(s["nnz"], json!(a.x.nnz()));
    let sum: f64 = a.x.data.iter().map(|&v| v as f64).sum();
    assert!((s["x_sum"].as_f64().unwrap() - sum).abs() < 1e-3);
    assert_eq!(s["obs_names_head"], json!(a.obs.index[..3]));
    assert_eq!(s["var_names_head"], json!(a.var.index[..3]));
    let mut cols: Vec<&str> = a.obs.keys();
    cols.extend(["scdreamer_cluster", "score", "flag", "note"]);
    assert_eq!(s["obs_columns"], json!(cols));
    assert_eq!(
        s["categories"]["batch"],
        json!(["10x", "CEL-seq2", "Drop-seq"])
    );
    assert_eq!(
        s["categories"]["scdreamer_cluster"],
        json!(["c0", "c1", "c2"])
    );
    assert_eq!(s["obs_dtypes"]["flag"], json!("bool"));
    assert_eq!(s["obs_dtypes"]["score"], json!("float32"));
    assert_eq!(s["obsm"]["X_scdreamer"], json!([n, 10]));
    let row0 = s["obsm_first_row"]["X_scdreamer"].as_array().unwrap();
    assert_eq!(row0.len(), 10);
    for (got, want) in row0.iter().zip(&latent[..10]) {
        assert!(
            (got.as_f64().unwrap() - *want as f64).abs() < 1e-6,
            "{got} vs {want}"
        );
    }
    assert_eq!(s["layers"]["scdreamer_normalized"], json!([n, g]));
    let u = &s["uns"]["scdreamer"];
    assert_eq!(u["version"], json!(scdreamer::VERSION));
    assert_eq!(u["params"]["epochs"], json!(10));
    assert_eq!(u["params"]["lr"], json!(0.001));
    assert_eq!(u["params"]["sup"], json!(false));
    assert_eq!(u["loss_history"], json!([3.5, 2.25, 1.0]));
    assert_eq!(u["batches"], json!(["10x", "CEL-seq2", "Drop-seq"]));
    assert_eq!(u["matrix"], json!([[1.0, 2.0], [3.0, 4.0]]));
    assert!(u.get("skipped").is_none());
    assert_eq!(s["uns"]["answer"], json!(42));
    let b = &seen[1];
    assert_eq!(b["shape"], json!([n, g]));
    assert_eq!(b["obsm"], json!({}));
    assert_eq!(b["uns"], json!({}));
}
