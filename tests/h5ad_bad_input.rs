//! Bad inputs give clear errors (never panics) that name the file, key, cell, gene or value.

mod h5ad_fixtures;

use std::path::{Path, PathBuf};

use h5ad_fixtures::{Fixture, XKind, write_fixture};
use scdreamer::data::h5ad::{ReadOptions, read_h5ad};
use scdreamer::data::validate::{batch_codes, drop_empty};

fn demo() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/data/demo.h5ad"))
}

fn read_err(path: &Path, opts: &ReadOptions) -> String {
    match read_h5ad(path, opts) {
        Ok(_) => panic!("{} should not read", path.display()),
        Err(e) => format!("{e:#}"),
    }
}

fn fixture_file(dir: &Path, name: &str, fx: &Fixture, kind: XKind) -> PathBuf {
    let p = dir.join(name);
    write_fixture(&p, fx, kind, None);
    p
}

/// The small fixture with the value at (cell `i`, gene `j`) set to `v`.
fn small_with(i: usize, j: usize, v: f64) -> Fixture {
    let mut fx = Fixture::small();
    fx.set(i, j, v);
    fx
}

fn assert_has(msg: &str, parts: &[&str]) {
    for p in parts {
        assert!(msg.contains(p), "expected {p:?} in error: {msg}");
    }
}

/// Opens a fixture for corruption without HDF5 file locking: the tests of this file run in
/// parallel threads of one process, and a lock held there intermittently refused the open with
/// EAGAIN (errno 11), as `open_h5` documents for reads.
fn open_rw_unlocked(p: &std::path::Path) -> hdf5::Result<hdf5::File> {
    let mut b = hdf5::File::with_options();
    b.fapl().file_locking(false);
    b.open_rw(p)
}

/// [`open_rw_unlocked`] for reading (a fixture copied from: the same EAGAIN refused this open).
fn open_unlocked(p: &std::path::Path) -> hdf5::Result<hdf5::File> {
    let mut b = hdf5::File::with_options();
    b.fapl().file_locking(false);
    b.open(p)
}

/// Files that are no h5ad at all (missing, text, truncated, a directory): the error names the
/// file and why.
#[test]
fn unreadable_files_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("text.h5ad");
    std::fs::write(&text, "cell,gene,count\nA,B,1\n").unwrap();
    let half = dir.path().join("half.h5ad");
    let bytes = std::fs::read(demo()).unwrap();
    std::fs::write(&half, &bytes[..bytes.len() / 2]).unwrap();
    let not_h5ad = "not a valid HDF5/h5ad file";
    let cases = [
        (
            dir.path().join("nope.h5ad"),
            vec!["cannot read", "nope.h5ad", "no such file"],
        ),
        (text, vec!["cannot read", "text.h5ad", not_h5ad]),
        (half, vec!["cannot read", "half.h5ad", not_h5ad]),
        (dir.path().to_path_buf(), vec!["directory"]),
    ];
    for (p, want) in cases {
        assert_has(&read_err(&p, &ReadOptions::default()), &want);
    }
}

#[test]
fn no_x_lists_layers_and_missing_layer_lists_layers() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("nox.h5ad");
    write_fixture(&p, &Fixture::small(), XKind::CsrF32I32, Some("counts"));
    let e = read_err(&p, &ReadOptions::default());
    assert_has(&e, &["nox.h5ad", "no X matrix", "--layer", "counts"]);
    let opts = ReadOptions {
        layer: Some("raw".into()),
        ..Default::default()
    };
    let e = read_err(&p, &opts);
    assert_has(&e, &["layer 'raw' not found", "layers in the file: counts"]);
    let opts = ReadOptions {
        layer: Some("counts".into()),
        ..Default::default()
    };
    let a = read_h5ad(&p, &opts).unwrap();
    assert_eq!(a.x.nnz(), 8);
}

#[test]
fn bad_values_name_cell_gene_and_value() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(f64, &str); 4] = [
        (-1.0, "negative value -1"),
        (f64::NAN, "non-finite value NaN"),
        (f64::INFINITY, "non-finite value inf"),
        (0.5, "non-integer value 0.5"),
    ];
    for kind in [XKind::CsrF64I64, XKind::DenseF64] {
        for (k, (v, what)) in cases.iter().enumerate() {
            let fx = small_with(3, 2, *v);
            let p = fixture_file(dir.path(), &format!("bad{k}-{kind:?}.h5ad"), &fx, kind);
            let e = read_err(&p, &ReadOptions::default());
            assert_has(&e, &[what, "cell 'cell3'", "gene 'gene2'", "bad"]);
            let lenient = ReadOptions {
                allow_non_integer: true,
                ..Default::default()
            };
            if *v == 0.5 {
                assert_has(&e, &["--allow-non-integer", "--layer"]);
                let a = read_h5ad(&p, &lenient).unwrap();
                assert_eq!(a.x.row(3), (&[1u32, 2][..], &[1.0f32, 0.5][..]));
            } else {
                // allow_non_integer never lets negatives or NaN/Inf through
                read_err(&p, &lenient);
            }
        }
    }
}

#[test]
fn bad_value_in_csc_names_cell_and_gene() {
    let dir = tempfile::tempdir().unwrap();
    let fx = small_with(4, 1, -3.0);
    let p = fixture_file(dir.path(), "csc.h5ad", &fx, XKind::CscI32);
    let e = read_err(&p, &ReadOptions::default());
    assert_has(&e, &["negative value -3", "cell 'cell4'", "gene 'gene1'"]);
}

#[test]
fn duplicate_cell_names() {
    let dir = tempfile::tempdir().unwrap();
    let mut fx = Fixture::small();
    fx.cells[3] = "cell1".into();
    let p = fixture_file(dir.path(), "dup.h5ad", &fx, XKind::CsrF32I32);
    let e = read_err(&p, &ReadOptions::default());
    assert_has(&e, &["duplicate cell name 'cell1'", "row 3"]);
}

#[test]
fn shape_mismatch_between_x_and_obs_or_var() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("shape.h5ad");
    let fx = Fixture::small();
    write_fixture(&p, &fx, XKind::CsrF32I32, None);
    // Replace obs with one cell fewer.
    {
        let f = open_rw_unlocked(&p).unwrap();
        f.unlink("obs").unwrap();
        let mut short = fx.clone();
        short.cells.pop();
        short.batch.pop();
        short.cell_type.pop();
        let tmp = dir.path().join("short.h5ad");
        write_fixture(&tmp, &short, XKind::CsrF32I32, None);
        let src = open_unlocked(&tmp).unwrap();
        src.group("obs").unwrap().copy_to(&f, "obs").unwrap();
    }
    let e = read_err(&p, &ReadOptions::default());
    assert_has(&e, &["X has 5 rows but obs has 4 cells"]);

    let mut fx2 = Fixture::small();
    fx2.genes.push("extra".into());
    let p2 = dir.path().join("shape2.h5ad");
    // X written with 4 genes, var with 5: build by writing var from fx2.
    write_fixture(&p2, &fx, XKind::DenseI64, None);
    {
        let f = open_rw_unlocked(&p2).unwrap();
        let var = f.group("var").unwrap();
        var.unlink("_index").unwrap();
        let names: Vec<hdf5::types::VarLenUnicode> =
            fx2.genes.iter().map(|s| h5ad_fixtures::vlen(s)).collect();
        var.new_dataset_builder()
            .with_data(&names[..])
            .create("_index")
            .unwrap();
    }
    let e = read_err(&p2, &ReadOptions::default());
    assert_has(&e, &["X has 4 columns but var has 5 genes"]);
}

#[test]
fn corrupt_sparse_structure_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    // (file, array of X, position, value written there, what the error says)
    let cases = [
        ("idx.h5ad", "X/indices", 2, 99, vec!["X/indices", "99"]),
        ("ptr.h5ad", "X/indptr", 2, 0, vec!["X/indptr decreases"]),
    ];
    for (name, array, k, value, want) in cases {
        let p = fixture_file(dir.path(), name, &Fixture::small(), XKind::CsrF32I32);
        {
            let f = open_rw_unlocked(&p).unwrap();
            let ds = f.dataset(array).unwrap();
            let mut v = ds.read_raw::<i32>().unwrap();
            v[k] = value;
            ds.write_raw(&v).unwrap();
        }
        assert_has(&read_err(&p, &ReadOptions::default()), &want);
    }
}

#[test]
fn batch_key_missing_lists_keys_and_single_batch_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let p = fixture_file(dir.path(), "ok.h5ad", &Fixture::small(), XKind::CsrF32I32);
    let a = read_h5ad(&p, &ReadOptions::default()).unwrap();
    let e = batch_codes(&a.obs, "donor", false).unwrap_err().to_string();
    assert_has(
        &e,
        &["'donor' not found", "batch, cell_type", "--batch-key"],
    );
    let (codes, names) = batch_codes(&a.obs, "batch", false).unwrap();
    // categories were written in reverse first-seen order: b0, b1
    assert_eq!(names, vec!["b0", "b1"]);
    assert_eq!(codes, vec![1, 0, 1, 0, 1]);

    let mut fx = Fixture::small();
    fx.batch = vec!["only"; 5];
    let p = fixture_file(dir.path(), "single.h5ad", &fx, XKind::CsrF32I32);
    let a = read_h5ad(&p, &ReadOptions::default()).unwrap();
    let e = batch_codes(&a.obs, "batch", false).unwrap_err().to_string();
    assert_has(&e, &["single batch ('only')", "--allow-single-batch"]);
    assert!(batch_codes(&a.obs, "batch", true).is_ok());
}

#[test]
fn empty_after_dropping_zero_cells() {
    let dir = tempfile::tempdir().unwrap();
    let mut fx = Fixture::small();
    fx.values.iter_mut().for_each(|v| *v = 0.0);
    let p = fixture_file(dir.path(), "zero.h5ad", &fx, XKind::DenseI64);
    let a = read_h5ad(&p, &ReadOptions::default()).unwrap();
    assert_eq!(a.x.nnz(), 0);
    let e = drop_empty(&a).unwrap_err().to_string();
    assert_has(&e, &["no cells with non-zero counts"]);

    let p = fixture_file(dir.path(), "some.h5ad", &Fixture::small(), XKind::DenseI64);
    let a = read_h5ad(&p, &ReadOptions::default()).unwrap();
    let (b, report) = drop_empty(&a).unwrap();
    assert_eq!(
        report.to_string(),
        "dropped 1 cell and 0 genes with zero counts"
    );
    assert!(!b.obs.index.contains(&"cell1".to_string()));
}

#[test]
fn binary_reports_error_without_panic() {
    let dir = tempfile::tempdir().unwrap();
    let fx = small_with(0, 0, -2.0);
    let p = fixture_file(dir.path(), "neg.h5ad", &fx, XKind::CsrF64I64);
    let text = dir.path().join("text.h5ad");
    std::fs::write(&text, "not hdf5").unwrap();
    for (file, expect) in [(&p, "negative value -2"), (&text, "not a valid HDF5")] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_scdreamer"))
            .arg("inspect")
            .arg(file)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "should fail: {stderr}");
        assert!(stderr.contains("error:"), "{stderr}");
        assert!(stderr.contains(expect), "{stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
        // HDF5's own C error stack must not be printed
        assert!(!stderr.contains("HDF5-DIAG"), "{stderr}");
    }
}
