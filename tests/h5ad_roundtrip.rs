//! Every X encoding reads back to the same counts; `write_h5ad` output reads back
//! identically; writes are atomic and never touch the input.

mod h5ad_fixtures;

use std::path::{Path, PathBuf};

use h5ad_fixtures::{Fixture, XKind, write_fixture};
use scdreamer::data::anndata::XEncoding;
use scdreamer::data::h5ad::{
    Dense, ReadOptions, Results, check_output_path, read_h5ad, write_h5ad,
};
use scdreamer::data::{AnnData, Column};

fn dense_of(a: &AnnData) -> Vec<f64> {
    let mut out = vec![0.0f32; a.n_obs() * a.n_vars()];
    let rows: Vec<usize> = (0..a.n_obs()).collect();
    a.x.gather_dense(&rows, &mut out);
    out.into_iter().map(f64::from).collect()
}

const KINDS: [(XKind, XEncoding, &str); 5] = [
    (XKind::CsrF32I32, XEncoding::Csr, "float32"),
    (XKind::CsrF64I64, XEncoding::Csr, "float64"),
    (XKind::CscI32, XEncoding::Csc, "int32"),
    (XKind::DenseI64, XEncoding::Dense, "int64"),
    (XKind::DenseF64, XEncoding::Dense, "float64"),
];

#[test]
fn every_x_encoding_reads_the_same_counts() {
    let dir = tempfile::tempdir().unwrap();
    let fx = Fixture::small();
    for (kind, enc, dtype) in KINDS {
        for layer in [None, Some("counts")] {
            let p = dir.path().join(format!("{kind:?}-{layer:?}.h5ad"));
            write_fixture(&p, &fx, kind, layer);
            let opts = ReadOptions {
                layer: layer.map(String::from),
                ..Default::default()
            };
            let a = read_h5ad(&p, &opts).unwrap_or_else(|e| panic!("{kind:?}: {e:#}"));
            assert_eq!((a.n_obs(), a.n_vars()), (5, 4), "{kind:?}");
            assert_eq!(dense_of(&a), fx.values, "{kind:?} {layer:?}");
            assert_eq!(a.x_encoding, enc);
            assert_eq!(a.x_dtype, dtype);
            assert_eq!(
                a.x.nnz(),
                8,
                "{kind:?}: explicit zeros of a dense X are not stored"
            );
            assert_eq!(a.obs.index, fx.cells);
            assert_eq!(a.var.index, fx.genes);
            assert_eq!(a.obs.keys(), vec!["batch", "cell_type"]);
            let ct = a.obs.get("cell_type").unwrap();
            let labels: Vec<String> = (0..5).map(|i| ct.label(i).unwrap()).collect();
            assert_eq!(labels, fx.cell_type);
        }
    }
}

/// A larger random matrix that spans several read chunks (1M values each), in CSR and CSC.
#[test]
fn chunked_reads_match_across_encodings() {
    let dir = tempfile::tempdir().unwrap();
    let (n, g) = (1500, 1000);
    let mut state = 12345u64;
    let mut values = vec![0.0f64; n * g];
    for v in values.iter_mut() {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let r = (state >> 33) % 10;
        if r < 8 {
            *v = r as f64;
        }
    }
    let fx = Fixture {
        cells: (0..n).map(|i| format!("c{i}")).collect(),
        genes: (0..g).map(|j| format!("g{j}")).collect(),
        values: values.clone(),
        batch: (0..n).map(|i| if i % 2 == 0 { "a" } else { "b" }).collect(),
        cell_type: vec!["x"; n],
    };
    let nnz = values.iter().filter(|&&v| v != 0.0).count();
    assert!(nnz > 1 << 20, "the test must span more than one chunk");
    for kind in [XKind::CsrF32I32, XKind::CscI32, XKind::DenseF64] {
        let p = dir.path().join(format!("big-{kind:?}.h5ad"));
        write_fixture(&p, &fx, kind, None);
        let a = read_h5ad(&p, &ReadOptions::default()).unwrap();
        assert_eq!(a.x.nnz(), nnz, "{kind:?}");
        assert!(dense_of(&a) == values, "{kind:?} differs");
    }
}

/// An obs column named `name`.
fn col(name: &str, c: Column) -> (String, Column) {
    (name.into(), c)
}

fn results_for(a: &AnnData) -> Results {
    let n = a.n_obs();
    Results {
        obsm: vec![(
            "X_scdreamer".into(),
            Dense::new(n, 2, (0..2 * n).map(|i| i as f32 * 0.25).collect()).unwrap(),
        )],
        layers: vec![("norm".into(), Dense::zeros(n, a.n_vars()))],
        obs: vec![
            (
                "cluster".into(),
                Column::Categorical {
                    codes: (0..n as i32)
                        .map(|i| if i == 1 { -1 } else { i % 2 })
                        .collect(),
                    categories: vec!["k0".into(), "k1".into()],
                    ordered: true,
                },
            ),
            col("i32", Column::I32((0..n as i32).collect())),
            col("i64", Column::I64((0..n as i64).map(|i| i << 40).collect())),
            col("f64", Column::F64((0..n).map(|i| i as f64 / 3.0).collect())),
            col("f32", Column::F32((0..n).map(|i| i as f32 / 3.0).collect())),
            col("flag", Column::Bool((0..n).map(|i| i % 3 == 0).collect())),
            col(
                "text",
                Column::Str((0..n).map(|i| format!("é-{i}")).collect()),
            ),
        ],
        uns: vec![(
            "scdreamer".into(),
            serde_json::json!({"version": "x", "n": 3}),
        )],
    }
}

/// A scratch directory holding the small fixture as `in.h5ad` (X stored as `kind`), and the
/// fixture read back.
fn small_input(kind: XKind) -> (tempfile::TempDir, AnnData) {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("in.h5ad");
    write_fixture(&src, &Fixture::small(), kind, None);
    let a = read_h5ad(&src, &ReadOptions::default()).unwrap();
    (dir, a)
}

#[test]
fn written_file_reads_back_identically() {
    let (dir, a) = small_input(XKind::CscI32);
    let out = dir.path().join("out.h5ad");
    let r = results_for(&a);
    write_h5ad(&out, &a, &r).unwrap();
    let b = read_h5ad(&out, &ReadOptions::default()).unwrap();
    assert_eq!(b.x, a.x);
    assert_eq!(b.x_encoding, XEncoding::Csr);
    assert_eq!(b.x_dtype, "float32");
    assert_eq!(b.var, a.var);
    assert_eq!(b.obs.index, a.obs.index);
    let mut expected = a.obs.columns.clone();
    expected.extend(r.obs.iter().cloned());
    assert_eq!(b.obs.columns, expected);
    // the dense obsm / layers datasets are where they should be, float32
    let f = hdf5::File::open(&out).unwrap();
    let emb = f.dataset("obsm/X_scdreamer").unwrap();
    assert_eq!(emb.shape(), vec![5, 2]);
    assert_eq!(emb.read_raw::<f32>().unwrap(), r.obsm[0].1.data);
    assert_eq!(f.dataset("layers/norm").unwrap().shape(), vec![5, 4]);
    assert_eq!(
        f.dataset("uns/scdreamer/n")
            .unwrap()
            .read_scalar::<i64>()
            .unwrap(),
        3
    );
    for g in ["obsp", "varm", "varp"] {
        assert!(f.group(g).unwrap().is_empty(), "{g}");
    }
    // Replacing an input column keeps its position.
    let mut r2 = Results::default();
    r2.obs
        .push(("batch".into(), Column::Str(vec!["z".into(); 5])));
    let out2 = dir.path().join("out2.h5ad");
    write_h5ad(&out2, &a, &r2).unwrap();
    let c = read_h5ad(&out2, &ReadOptions::default()).unwrap();
    assert_eq!(c.obs.keys(), vec!["batch", "cell_type"]);
    assert_eq!(c.obs.get("batch"), Some(&Column::Str(vec!["z".into(); 5])));
}

fn dir_entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn failing_write_leaves_nothing_and_keeps_old_output() {
    let (dir, a) = small_input(XKind::CsrF32I32);
    let out = dir.path().join("out.h5ad");

    let mut bad = results_for(&a);
    bad.obsm[0].1 = Dense::zeros(4, 2); // 4 rows for 5 cells
    let e = write_h5ad(&out, &a, &bad).unwrap_err().to_string();
    assert!(
        e.contains("obsm 'X_scdreamer'") && e.contains("5 cells"),
        "{e}"
    );
    assert_eq!(dir_entries(dir.path()), vec!["in.h5ad"]);

    // A failure in the middle of writing (invalid uns key) removes the temp file and
    // leaves an existing output as it was.
    write_h5ad(&out, &a, &Results::default()).unwrap();
    let before = std::fs::read(&out).unwrap();
    let mut bad = results_for(&a);
    bad.uns.push(("a/b".into(), serde_json::json!(1)));
    let e = format!("{:#}", write_h5ad(&out, &a, &bad).unwrap_err());
    assert!(e.contains("invalid uns key"), "{e}");
    assert_eq!(dir_entries(dir.path()), vec!["in.h5ad", "out.h5ad"]);
    assert_eq!(std::fs::read(&out).unwrap(), before);

    // Success leaves exactly the output, no temp file.
    write_h5ad(&out, &a, &results_for(&a)).unwrap();
    assert_eq!(dir_entries(dir.path()), vec!["in.h5ad", "out.h5ad"]);
    assert_ne!(std::fs::read(&out).unwrap(), before);
}

#[test]
fn output_onto_input_is_refused() {
    let (dir, _) = small_input(XKind::CsrF32I32);
    let src = dir.path().join("in.h5ad");
    let e = check_output_path(&src, &src).unwrap_err().to_string();
    assert!(e.contains("refusing") && e.contains("in.h5ad"), "{e}");
    // the same file through another spelling, a symlink and a hard link
    let other: PathBuf = dir.path().join(".").join("in.h5ad");
    assert!(check_output_path(&other, &src).is_err());
    let link = dir.path().join("link.h5ad");
    std::os::unix::fs::symlink(&src, &link).unwrap();
    assert!(check_output_path(&link, &src).is_err());
    let hard = dir.path().join("hard.h5ad");
    std::fs::hard_link(&src, &hard).unwrap();
    assert!(check_output_path(&hard, &src).is_err());
    // a new file beside it is fine
    assert!(check_output_path(&dir.path().join("out.h5ad"), &src).is_ok());
}

#[test]
fn output_directory_must_exist() {
    let (dir, a) = small_input(XKind::CsrF32I32);
    let e = write_h5ad(
        &dir.path().join("no/such/out.h5ad"),
        &a,
        &Results::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("does not exist"), "{e}");
}
