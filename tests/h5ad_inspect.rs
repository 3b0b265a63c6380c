//! `scdreamer inspect` prints the right shapes and batch x cell type tables.

use std::path::PathBuf;
use std::process::Command;

fn inspect(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_scdreamer"))
        .arg("inspect")
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The last line starting with `name` (the table comes last), as whitespace-separated
/// cells after the name.
fn row(out: &str, name: &str) -> Vec<String> {
    out.lines()
        .rfind(|l| l.trim_start().starts_with(&format!("{name} ")))
        .unwrap_or_else(|| panic!("no row {name:?} in:\n{out}"))
        .trim_start()[name.len()..]
        .split_whitespace()
        .map(String::from)
        .collect()
}

fn line_value(out: &str, key: &str) -> String {
    out.lines()
        .find_map(|l| l.strip_prefix(key))
        .unwrap_or_else(|| panic!("no {key:?} in:\n{out}"))
        .trim()
        .to_string()
}

#[test]
fn demo_without_file() {
    let (ok, out, err) = inspect(&[]);
    assert!(ok, "{err}");
    assert!(out.contains("no input given: using the bundled demo (cellbench_3cl_10xsub)"));
    assert_eq!(line_value(&out, "cells:"), "1,345");
    assert_eq!(line_value(&out, "genes:"), "824");
    assert_eq!(line_value(&out, "nnz:"), "461,281 (density 41.6%)");
    assert!(out.contains("csr_matrix, float32"), "{out}");
    assert!(out.contains("integer counts"), "{out}");
    assert_eq!(
        row(&out, "batch"),
        vec!["H1975", "H2228", "HCC827", "total"]
    );
    assert_eq!(row(&out, "10x"), vec!["310", "312", "273", "895"]);
    assert_eq!(row(&out, "CEL-seq2"), vec!["103", "67", "70", "240"]);
    assert_eq!(row(&out, "Drop-seq"), vec!["79", "65", "66", "210"]);
    assert_eq!(row(&out, "total"), vec!["492", "444", "409", "1,345"]);
}

#[test]
fn chosen_keys_and_missing_key() {
    let (ok, out, err) = inspect(&["--batch-key", "cell_type", "--labels-key", "demuxlet_cls"]);
    assert!(ok, "{err}");
    assert_eq!(row(&out, "H1975"), vec!["492", "492"]);
    let (ok, _, err) = inspect(&["--labels-key", "donor"]);
    assert!(!ok);
    assert!(
        err.contains("error:") && err.contains("'donor' not found"),
        "{err}"
    );
    assert!(err.contains("batch, cell_type, demuxlet_cls"), "{err}");
}

#[test]
fn shared_datasets() {
    let dir = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data"));
    if !dir.is_dir() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true but no shared data"
        );
        eprintln!("skipping: shared datasets not found at {}", dir.display());
        return;
    }
    // file, cells, genes, (batch row, its total) from the README
    type Case = (
        &'static str,
        &'static str,
        &'static str,
        &'static [(&'static str, &'static str)],
    );
    let cases: [Case; 5] = [
        (
            "cellbench_3cl_10xsub.h5ad",
            "1,345",
            "824",
            &[("10x", "895"), ("CEL-seq2", "240"), ("Drop-seq", "210")],
        ),
        (
            "cellbench_5cl_10xsub.h5ad",
            "1,478",
            "967",
            &[
                ("10x", "907"),
                ("CEL-seq2_p1", "156"),
                ("CEL-seq2_p2", "163"),
                ("CEL-seq2_p3", "252"),
            ],
        ),
        (
            "cellbench_3cl.h5ad",
            "450",
            "15,073",
            &[("CEL-seq2", "240"), ("Drop-seq", "210")],
        ),
        ("cellbench_5cl.h5ad", "571", "12,653", &[("total", "571")]),
        (
            "kang_pbmc.h5ad",
            "8,684",
            "2,511",
            &[
                ("donor_1015", "2,257"),
                ("donor_1016", "1,045"),
                ("total", "8,684"),
            ],
        ),
    ];
    for (file, cells, genes, rows) in cases {
        let path = dir.join(file);
        let (ok, out, err) = inspect(&[path.to_str().unwrap()]);
        assert!(ok, "{file}: {err}");
        assert_eq!(line_value(&out, "cells:"), cells, "{file}");
        assert_eq!(line_value(&out, "genes:"), genes, "{file}");
        for (name, total) in rows {
            assert_eq!(row(&out, name).last().unwrap(), total, "{file} row {name}");
        }
    }
}
