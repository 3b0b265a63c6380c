//! `scdreamer::sim`: determinism (seed and thread count), the statistics the model promises
//! (density, cell-type markers, batch effects, zero inflation), argument errors, and files
//! that read back exactly, in our reader and in Python scanpy.

use std::path::PathBuf;
use std::process::Command;

use scdreamer::data::Column;
use scdreamer::data::h5ad::{ReadOptions, read_h5ad};
use scdreamer::sim::{SimParams, Simulation, simulate, simulate_to_h5ad};

fn params(n_cells: usize, n_genes: usize, seed: u64) -> SimParams {
    SimParams {
        n_cells,
        n_genes,
        n_batches: 3,
        n_types: 4,
        seed,
        ..SimParams::default()
    }
}

/// Simulate on a private pool of `threads` workers.
fn run_on(p: &SimParams, threads: usize) -> Simulation {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap();
    pool.install(|| simulate(p, None)).unwrap()
}

fn density(s: &Simulation) -> f64 {
    s.counts.nnz() as f64 / (s.counts.n_rows * s.counts.n_cols) as f64
}

#[test]
fn same_seed_same_matrix_whatever_the_threads() {
    // 20,000 cells span five blocks: more than one wave of blocks on one thread (four per
    // thread), a single wave on three, so block order, waves and streams all matter.
    let p = params(20_000, 80, 42);
    let one = run_on(&p, 1);
    let three = run_on(&p, 3);
    assert!(one.counts.nnz() > 0);
    assert_eq!(one.counts, three.counts, "thread count changed the counts");
    assert_eq!(one.batch, three.batch);
    assert_eq!(one.cell_type, three.cell_type);

    let other = run_on(&params(20_000, 80, 43), 3);
    assert_ne!(
        one.counts, other.counts,
        "a different seed gave the same counts"
    );
    assert_ne!(one.batch, other.batch);
}

#[test]
fn csr_is_well_formed_integer_counts() {
    let s = run_on(&params(5_000, 300, 3), 2);
    let m = &s.counts;
    assert_eq!((m.n_rows, m.n_cols), (5_000, 300));
    assert_eq!(m.indptr.len(), m.n_rows + 1);
    assert_eq!(*m.indptr.last().unwrap() as usize, m.nnz());
    for i in 0..m.n_rows {
        let (idx, val) = m.row(i);
        assert!(
            idx.windows(2).all(|w| w[0] < w[1]),
            "row {i} indices unsorted"
        );
        assert!(idx.iter().all(|&j| (j as usize) < m.n_cols));
        assert!(val.iter().all(|&v| v >= 1.0 && v.fract() == 0.0), "row {i}");
    }
    assert!(s.batch.iter().all(|&b| b < 3));
    assert!(s.cell_type.iter().all(|&t| t < 4));
}

#[test]
fn density_hits_the_target_with_and_without_dropout() {
    for (target, dropout) in [(0.10, 0.0), (0.05, 0.0), (0.10, 0.3)] {
        let p = SimParams {
            density: target,
            dropout,
            ..params(8_000, 400, 11)
        };
        let s = run_on(&p, 2);
        let d = density(&s);
        eprintln!("target {target} dropout {dropout}: density {d:.4}");
        assert!(
            (d - target).abs() < 0.03 * target,
            "density {d} for target {target}, dropout {dropout}"
        );
    }
}

#[test]
fn dropout_zeroes_counts_that_the_nb_would_keep() {
    // Same seed, same global parameters except the offset: with dropout the NB means must
    // rise to keep the density, so non-zero counts get larger on average.
    let base = params(8_000, 400, 5);
    let plain = run_on(&base, 2);
    let zi = run_on(
        &SimParams {
            dropout: 0.4,
            ..base.clone()
        },
        2,
    );
    assert!(zi.model.offset > plain.model.offset + 0.3);
    let mean_nz = |s: &Simulation| {
        s.counts.data.iter().map(|&v| v as f64).sum::<f64>() / s.counts.nnz() as f64
    };
    assert!(
        mean_nz(&zi) > 1.1 * mean_nz(&plain),
        "mean non-zero count {} with dropout vs {} without",
        mean_nz(&zi),
        mean_nz(&plain)
    );
}

/// Mean library-normalised expression (counts / cell total * 1e4) per gene over `cells`.
fn normalised_means(s: &Simulation, cells: &[usize]) -> Vec<f64> {
    let mut sums = vec![0.0f64; s.counts.n_cols];
    for &i in cells {
        let (idx, val) = s.counts.row(i);
        let total: f64 = val.iter().map(|&v| v as f64).sum();
        if total == 0.0 {
            continue;
        }
        for (&j, &v) in idx.iter().zip(val) {
            sums[j as usize] += v as f64 / total * 1e4;
        }
    }
    sums.iter().map(|v| v / cells.len() as f64).collect()
}

fn cells_where(s: &Simulation, batch: u32, ty: Option<u32>) -> Vec<usize> {
    (0..s.counts.n_rows)
        .filter(|&i| s.batch[i] == batch && ty.is_none_or(|t| s.cell_type[i] == t))
        .collect()
}

/// |log ratio| of two mean profiles over genes that are well expressed in both.
fn abs_log_ratios(a: &[f64], b: &[f64], genes: impl Iterator<Item = usize>) -> Vec<f64> {
    genes
        .filter(|&g| a[g] > 5.0 && b[g] > 5.0)
        .map(|g| (a[g] / b[g]).ln().abs())
        .collect()
}

fn median(mut v: Vec<f64>) -> f64 {
    assert!(!v.is_empty(), "no well-expressed genes to compare");
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

#[test]
fn cell_types_differ_on_their_marker_genes() {
    let mut p = params(30_000, 400, 8);
    p.batch_sd = 0.0;
    let s = run_on(&p, 2);
    let g = p.n_genes;
    let (t0, t1) = (0usize, 1usize);
    let a = normalised_means(&s, &cells_where(&s, 0, Some(t0 as u32)));
    let b = normalised_means(&s, &cells_where(&s, 0, Some(t1 as u32)));
    let marker = |t: usize, j: usize| s.model.is_marker[t * g + j];
    let markers = abs_log_ratios(&a, &b, (0..g).filter(|&j| marker(t0, j) || marker(t1, j)));
    let others = abs_log_ratios(&a, &b, (0..g).filter(|&j| !marker(t0, j) && !marker(t1, j)));
    let (m, o) = (median(markers), median(others));
    eprintln!("median |log ratio| type0 vs type1: markers {m:.3}, other genes {o:.3}");
    // Marker log fold changes are N(0, 1.5): median |lfc| ~ 1. Elsewhere only noise
    // (and the small shift from renormalising by the library size).
    assert!(
        m > 0.5,
        "marker genes barely differ between types: median |log ratio| {m}"
    );
    assert!(
        o < 0.2,
        "non-marker genes differ between types: median |log ratio| {o}"
    );
}

#[test]
fn batches_shift_gene_means() {
    let spread = |batch_sd: f64| {
        let p = SimParams {
            batch_sd,
            ..params(30_000, 400, 9)
        };
        let s = run_on(&p, 2);
        // Same cell type in two batches: only the batch effect (and noise) separates them.
        let a = normalised_means(&s, &cells_where(&s, 0, Some(0)));
        let b = normalised_means(&s, &cells_where(&s, 1, Some(0)));
        median(abs_log_ratios(&a, &b, 0..p.n_genes))
    };
    let with = spread(0.5);
    let without = spread(0.0);
    eprintln!("median |log ratio| batch0 vs batch1: batch_sd 0.5 {with:.3}, 0 {without:.3}");
    // Difference of two N(0, 0.5) log fold changes: median |.| ~ 0.67 * 0.71 = 0.48.
    assert!(
        with > 0.3,
        "batch effect too weak: median |log ratio| {with}"
    );
    assert!(
        without < 0.15,
        "batches differ without a batch effect: {without}"
    );
}

#[test]
fn library_sizes_shift_by_batch() {
    let mut p = params(20_000, 300, 12);
    p.n_batches = 4;
    let s = run_on(&p, 2);
    let totals = s.counts.row_sums();
    let mean_log_total: Vec<f64> = (0..4u32)
        .map(|b| {
            let cells = cells_where(&s, b, None);
            cells.iter().map(|&i| (totals[i] + 1.0).ln()).sum::<f64>() / cells.len() as f64
        })
        .collect();
    let spread = mean_log_total.iter().cloned().fold(f64::MIN, f64::max)
        - mean_log_total.iter().cloned().fold(f64::MAX, f64::min);
    eprintln!("per-batch mean log totals {mean_log_total:?}");
    // Library shifts are N(0, 0.3) per batch, and batch gene effects move totals too.
    assert!(spread > 0.1, "per-batch mean log totals {mean_log_total:?}");
}

#[test]
fn bad_arguments_are_refused_with_the_flag_named() {
    // Each case edits a valid 10 cells x 5 genes setup (or sets its size).
    type Edit = fn(&mut SimParams);
    let cases: [(Edit, &str); 8] = [
        (|p| (p.n_cells, p.n_genes) = (0, 10), "--cells"),
        (|p| p.n_genes = 0, "--genes"),
        (|p| p.n_types = 11, "--types 11 is more than --cells 10"),
        (|p| p.n_batches = 0, "--batches"),
        (|p| p.density = 1.0, "--density"),
        (|p| (p.density, p.dropout) = (0.8, 0.5), "--density"),
        (|p| p.dropout = 1.0, "--dropout"),
        (|p| p.de_sd = f64::NAN, "--de-sd"),
    ];
    for (edit, want) in cases {
        let mut p = params(10, 5, 0);
        edit(&mut p);
        let err = simulate(&p, None).expect_err(want).to_string();
        assert!(err.contains(want), "error {err:?} should mention {want:?}");
    }
}
#[test]
fn tiny_simulation_with_one_type_and_batch_works() {
    let p = SimParams {
        n_batches: 1,
        n_types: 1,
        ..params(1, 1, 0)
    };
    let s = simulate(&p, None).unwrap();
    assert_eq!((s.counts.n_rows, s.counts.n_cols), (1, 1));
    assert_eq!(s.batch, vec![0]);
    assert_eq!(s.cell_type, vec![0]);
}

fn write_small(dir: &tempfile::TempDir) -> (PathBuf, SimParams, Simulation) {
    let p = params(5_000, 120, 21);
    let path = dir.path().join("sim.h5ad");
    let nnz = simulate_to_h5ad(&p, &path, None).unwrap();
    let s = run_on(&p, 1);
    assert_eq!(nnz, s.counts.nnz());
    (path, p, s)
}

#[test]
fn written_file_reads_back_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let (path, p, s) = write_small(&dir);
    let a = read_h5ad(&path, &ReadOptions::default()).unwrap();
    assert_eq!(a.x, s.counts);
    assert_eq!(a.obs.index[0], "cell0");
    assert_eq!(a.obs.index[p.n_cells - 1], format!("cell{}", p.n_cells - 1));
    assert_eq!(a.var.index[p.n_genes - 1], format!("gene{}", p.n_genes - 1));
    for (key, prefix, n, truth) in [
        ("batch", "batch", p.n_batches, &s.batch),
        ("cell_type", "type", p.n_types, &s.cell_type),
    ] {
        let Some(Column::Categorical {
            codes, categories, ..
        }) = a.obs.get(key)
        else {
            panic!("obs {key} is not categorical");
        };
        let want: Vec<String> = (0..n).map(|i| format!("{prefix}{i}")).collect();
        assert_eq!(categories, &want);
        assert!(codes.iter().zip(truth.iter()).all(|(&c, &t)| c == t as i32));
    }
}

#[test]
fn written_file_loads_in_scanpy() {
    let py = match std::env::var_os("SCDREAMER_PYTHON") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("CI=true but SCDREAMER_PYTHON (a python with anndata + scanpy) is not set")
        }
        _ => {
            eprintln!("skipping: set SCDREAMER_PYTHON to a python with anndata and scanpy");
            return;
        }
    };
    let dir = tempfile::tempdir().unwrap();
    let (path, p, s) = write_small(&dir);
    let script = r#"
import json, sys, warnings
warnings.simplefilter("error")
import numpy as np, scanpy as sc
a = sc.read_h5ad(sys.argv[1])
X = a.X
print(json.dumps({
    "shape": list(a.shape),
    "format": X.format,
    "dtypes": [str(X.data.dtype), str(X.indices.dtype), str(X.indptr.dtype)],
    "nnz": int(X.nnz),
    "total": float(X.sum(dtype=np.float64)),
    "col_sums": np.asarray(X.sum(axis=0, dtype=np.float64)).ravel().tolist(),
    "batch": [str(a.obs["batch"].dtype), list(a.obs["batch"].cat.categories)],
    "types": [str(a.obs["cell_type"].dtype), list(a.obs["cell_type"].cat.categories)],
    "batch_codes": a.obs["batch"].cat.codes.astype(int).tolist(),
    "names": [a.obs_names[0], a.obs_names[-1], a.var_names[0], a.var_names[-1]],
    "seed": int(a.uns["simulation"]["seed"]),
}))
"#;
    let out = Command::new(&py)
        .args(["-c", script])
        .arg(&path)
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "scanpy could not read {}:\n{}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["shape"], serde_json::json!([p.n_cells, p.n_genes]));
    assert_eq!(v["format"], "csr");
    assert_eq!(
        v["dtypes"],
        serde_json::json!(["float32", "int32", "int32"])
    );
    assert_eq!(v["nnz"].as_u64().unwrap() as usize, s.counts.nnz());
    let total: f64 = s.counts.data.iter().map(|&x| x as f64).sum();
    assert_eq!(v["total"].as_f64().unwrap(), total);
    let col_sums: Vec<f64> = serde_json::from_value(v["col_sums"].clone()).unwrap();
    assert_eq!(col_sums, s.counts.col_sums());
    assert_eq!(v["batch"][0], "category");
    assert_eq!(
        v["batch"][1],
        serde_json::json!(["batch0", "batch1", "batch2"])
    );
    assert_eq!(
        v["types"][1],
        serde_json::json!(["type0", "type1", "type2", "type3"])
    );
    let codes: Vec<u32> = serde_json::from_value(v["batch_codes"].clone()).unwrap();
    assert_eq!(codes, s.batch);
    let last_cell = format!("cell{}", p.n_cells - 1);
    let last_gene = format!("gene{}", p.n_genes - 1);
    assert_eq!(
        v["names"],
        serde_json::json!(["cell0", last_cell, "gene0", last_gene])
    );
    assert_eq!(v["seed"], 21);
}

#[test]
fn type_proportions_are_honoured_in_every_batch() {
    let props = vec![0.5, 0.3, 0.18, 0.01, 0.01];
    let p = SimParams {
        n_types: 5,
        type_proportions: Some(props.clone()),
        ..params(20_000, 50, 7)
    };
    let s = run_on(&p, 2);
    for b in 0..3u32 {
        let cells: Vec<u32> = s
            .batch
            .iter()
            .zip(&s.cell_type)
            .filter(|(k, _)| **k == b)
            .map(|(_, t)| *t)
            .collect();
        for (t, &want) in props.iter().enumerate() {
            let got = cells.iter().filter(|&&c| c == t as u32).count() as f64 / cells.len() as f64;
            // Binomial standard error at ~6,700 cells per batch: <= 0.0061; allow 4 of them.
            let tol = 4.0 * (want * (1.0 - want) / cells.len() as f64).sqrt() + 1e-9;
            assert!(
                (got - want).abs() <= tol,
                "batch {b} type {t}: share {got:.4}, want {want} +- {tol:.4}"
            );
        }
    }
    // Unnormalised proportions give the same cells; a zero proportion gives no cell.
    let scaled = run_on(
        &SimParams {
            type_proportions: Some(props.iter().map(|v| v * 4.0).collect()),
            ..p.clone()
        },
        2,
    );
    assert_eq!(scaled.cell_type, s.cell_type);
    let zero = run_on(
        &SimParams {
            type_proportions: Some(vec![0.5, 0.5, 0.0, 0.0, 0.0]),
            ..p.clone()
        },
        2,
    );
    assert!(zero.cell_type.iter().all(|&t| t < 2));
    // The proportions change the composition only: the same marker genes and dispersions.
    let free = run_on(
        &SimParams {
            type_proportions: None,
            ..p.clone()
        },
        2,
    );
    assert_eq!(free.model.is_marker, s.model.is_marker);
    assert_eq!(free.model.theta, s.model.theta);
    for (bad, want) in [
        (vec![0.5, 0.5], "2 values for --types 5"),
        (vec![0.5, 0.5, -0.1, 0.0, 0.1], "finite numbers >= 0"),
        (vec![0.0; 5], "must not all be 0"),
    ] {
        let e = SimParams {
            type_proportions: Some(bad),
            ..p.clone()
        }
        .validate()
        .unwrap_err()
        .to_string();
        assert!(e.contains(want), "{e}");
    }
}
