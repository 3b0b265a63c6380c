//! `scdreamer evaluate` end to end on the demo: the scib-metrics 0.5.10 scores of a committed
//! Harmony embedding and of the unintegrated PCA, determinism, and clear errors.

mod common;

use std::path::{Path, PathBuf};

use common::{DEMO, argv, harmony, read, run, write_npy};
use scdreamer::metrics::pcr::unintegrated_pca;

/// (header, rows of (name, values)) of a metrics CSV.
fn read_csv(path: &Path) -> (Vec<String>, Vec<(String, Vec<f64>)>) {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    let head: Vec<String> = lines.next().unwrap().split(',').map(String::from).collect();
    let rows = lines
        .map(|l| {
            let mut cells = l.split(',');
            let name = cells.next().unwrap().to_string();
            (name, cells.map(|c| c.parse::<f64>().unwrap()).collect())
        })
        .collect();
    (head, rows)
}

/// scib-metrics 0.5.10 on the Harmony fixture (tests/fixtures/evaluate/README.md).
const SCIB_HARMONY: [(&str, f64); 13] = [
    ("Isolated labels", 0.7516072392463684),
    ("KMeans NMI", 1.0),
    ("KMeans ARI", 1.0),
    ("Silhouette label", 0.7498638033866882),
    ("cLISI", 1.0),
    ("BRAS", 0.8513293862342834),
    ("iLISI", 0.04700988531112671),
    ("KBET", 0.7903758759057226),
    ("Graph connectivity", 0.8632941039315898),
    ("PCR comparison", 0.9508176214096762),
    ("Batch correction", 0.7005653745584798),
    ("Bio conservation", 0.9002942085266114),
    ("Total", 0.8204026749393587),
];

/// The same run's scores of its unintegrated PCA (scanpy's; ours spans the same subspace).
const SCIB_PCA: [(&str, f64); 6] = [
    ("Isolated labels", 0.72255939245224),
    ("Silhouette label", 0.7208372354507446),
    ("BRAS", 0.5305051803588867),
    ("KBET", 0.0006775067750677508),
    ("Graph connectivity", 0.6294429679246901),
    ("Total", 0.6260576501372356),
];

fn pca_npy(dir: &Path) -> PathBuf {
    let adata = read(Path::new(DEMO));
    let genes: Vec<usize> = (0..adata.n_vars()).collect();
    let pca = unintegrated_pca(&adata.x, &genes, 50);
    let path = dir.join("pca.npy");
    write_npy(&path, &pca, adata.n_obs(), 50);
    path
}

#[test]
fn scores_agree_with_scib_metrics_and_repeat_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let pca = pca_npy(dir.path());
    let csv = dir.path().join("m.csv");
    let spec_h = format!("Harmony={}", harmony());
    let spec_p = format!("PCA={}", pca.display());
    let args = argv(
        "evaluate --input {} -e {} -e {} -o {}",
        &[&DEMO, &spec_h, &spec_p, &csv],
    );
    let r = run(&args);
    assert!(r.ok, "{}", r.stderr);
    let (stdout, err) = (r.stdout, r.stderr);
    assert!(
        stdout.contains("Harmony") && stdout.contains("Total"),
        "{stdout}"
    );
    assert!(
        err.contains("kBET"),
        "progress lines name the stages: {err}"
    );
    let (head, rows) = read_csv(&csv);
    assert_eq!(rows.len(), 2);
    let col = |name: &str| head.iter().position(|h| h == name).unwrap() - 1;
    for (m, want) in SCIB_HARMONY {
        let got = rows[0].1[col(m)];
        assert!(
            (got - want).abs() < 1e-4,
            "Harmony {m}: {got} vs scib {want}"
        );
    }
    for (m, want) in SCIB_PCA {
        let got = rows[1].1[col(m)];
        assert!((got - want).abs() < 0.01, "PCA {m}: {got} vs scib {want}");
    }
    // The unintegrated PCA against itself explains the same batch variance.
    assert!(rows[1].1[col("PCR comparison")].abs() < 1e-3);
    let (b, bio, total) = (
        rows[0].1[col("Batch correction")],
        rows[0].1[col("Bio conservation")],
        rows[0].1[col("Total")],
    );
    assert!((total - (0.4 * b + 0.6 * bio)).abs() < 1e-12);
    let first = std::fs::read_to_string(&csv).unwrap();
    run(&args).expect_ok("evaluate again");
    assert_eq!(
        first,
        std::fs::read_to_string(&csv).unwrap(),
        "same input, same scores"
    );
}

#[test]
fn bad_inputs_get_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    // NaN in the embedding: the cell and column are named.
    let mut x = vec![0.5f32; 1345 * 4];
    for (i, v) in x.iter_mut().enumerate() {
        *v = (i % 97) as f32;
    }
    x[7 * 4 + 2] = f32::NAN;
    let nan = dir.path().join("nan.npy");
    write_npy(&nan, &x, 1345, 4);
    // Fewer rows than cells.
    let short = dir.path().join("short.npy");
    write_npy(&short, &x[..1000 * 4], 1000, 4);
    let csv = dir.path().join("never.csv");
    let h = format!("H={}", harmony());
    let (nan, short) = (
        format!("bad={}", nan.display()),
        format!("short={}", short.display()),
    );
    let none: &[&str] = &[];
    let cases: [(&str, &[&str], &[&str]); 7] = [
        // A missing obsm key lists what exists.
        (
            "X_scVI",
            none,
            &["no obsm key 'X_scVI'", "available obsm keys"],
        ),
        // Missing obs keys.
        (
            &h,
            &["--label-key", "celltype"],
            &["'celltype'", "cell_type"],
        ),
        (&h, &["--batch-key", "donor"], &["'donor'"]),
        // A label column with one category (demuxlet_cls is 'singlet' everywhere).
        (
            &h,
            &["--label-key", "demuxlet_cls"],
            &["single category", "demuxlet_cls"],
        ),
        (&nan, none, &["non-finite", "cell 7", "column 2"]),
        (&short, none, &["1000 rows", "1345 cells"]),
        // Nothing half-written on failure.
        (&short, &["-o", common::s(&csv)], &["1000 rows"]),
    ];
    for (spec, extra, needles) in cases {
        let args = common::argv_plus("evaluate --input {} -e {}", &[&DEMO, &spec], extra);
        let err = run(&args).expect_err(needles);
        let last = err.trim_end().lines().last().unwrap_or("");
        assert!(last.starts_with("error:"), "{args:?}: {err}");
    }
    assert!(!csv.exists());
}
