//! `integrate --backed` end to end through the binary: on a simulated file several chunks
//! large, the backed run uses clearly less memory than the resident one, selects the same
//! genes, separates the cell types as well and is deterministic; with one chunk holding every
//! cell it reproduces the resident run bit for bit. Plus the row reader on every X encoding.

mod common;
mod h5ad_fixtures;

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};

use common::{BIN, DEMO, argv, argv_plus, dataset_f32, read, scratch};
use h5ad_fixtures::{Fixture, XKind, write_fixture};
use scdreamer::backend::cpu::Cpu;
use scdreamer::data::h5ad::{GeneMap, ReadOptions, RowReader, open_h5};
use scdreamer::data::{Column, Csr};
use scdreamer::metrics::{knn_indices, knn_label_purity};
use scdreamer::model::hyper::HyperParams;
use scdreamer::pipeline::{self, GeneSelection, Request, StreamOptions};

/// Sup's label-loss weights come from the pipeline's set-up, whatever drives it (the CLI, the
/// Python binding or a library caller): `prepare_streamed` weighs the whole file's labels and
/// each chunk uploads its slice; in memory `upload_for_training` weighs the same labels the
/// same way. On the demo (492 / 444 / 409 cells per type) at `label_balance` 1 every chunk's
/// device table holds the in-memory weights of its cells (not the 0/1 mask), and at 0 the 0/1
/// mask.
#[test]
fn streamed_chunks_and_memory_get_the_same_label_weights_from_the_pipeline() {
    for balance in [None, Some(0.0)] {
        let hyper = HyperParams {
            label_balance: balance,
            ..HyperParams::default()
        };
        let req = Request {
            source: "demo",
            batch_key: "batch",
            allow_single_batch: false,
            labels_key: Some("cell_type"),
            unlabeled_category: "Unknown",
            transform_batch: "all",
            genes: GeneSelection::SeuratV3(300),
            hyper: &hyper,
            gpu: false,
        };
        let cpu = Cpu::new();
        let mut adata = read(Path::new(DEMO));
        let mut mem = pipeline::prepare(&mut adata, &req).unwrap();
        assert_eq!(mem.train_cfg.label_balance, balance.unwrap_or(1.0));
        let held = pipeline::upload_for_training(&cpu, &mut mem.data, &mem.train_cfg).unwrap();
        let weights = held.tables.labels.as_ref().unwrap().weights.clone();
        let labelled = |w: &[f32]| w.iter().copied().filter(|&w| w > 0.0).collect::<Vec<_>>();
        let mut distinct = labelled(&weights);
        distinct.sort_by(f32::total_cmp);
        distinct.dedup();
        match balance {
            None => assert_eq!(distinct.len(), 3, "one weight per type: {distinct:?}"),
            Some(_) => assert_eq!(distinct, vec![1.0], "balance 0: the 0/1 mask"),
        }
        let reader = RowReader::open(Path::new(DEMO), &ReadOptions::default()).unwrap();
        let opts = StreamOptions {
            chunk_cells: Some(500),
            progress: false,
            check_fits: &|_, _| Ok(()),
        };
        let streamed = pipeline::prepare_streamed(reader, &req, &opts).unwrap();
        let backed = &streamed.data.backed;
        assert_eq!(backed.chunks.len(), 3);
        for (c, &(r0, r1)) in backed.chunks.iter().enumerate() {
            let (_, data) = backed.load_chunk(c, &cpu).unwrap();
            let chunk = &data.tables.labels.as_ref().unwrap().weights;
            assert_eq!(chunk[..], weights[r0..r1], "chunk {c}, balance {balance:?}");
        }
    }
}

/// Runs the binary; returns (success, stderr, peak resident memory in KiB). The peak is this
/// child's own (wait4's rusage), so tests running beside it do not disturb it.
fn run_measured(args: &[String]) -> (bool, String, i64) {
    run_limited(args, None)
}

/// [`run_measured`] with the child's writable data memory (RLIMIT_DATA: heap and anonymous
/// mappings) capped at `data_limit` bytes: a deliberately small memory budget.
#[allow(clippy::zombie_processes)]
fn run_limited(args: &[String], data_limit: Option<u64>) -> (bool, String, i64) {
    let mut cmd = Command::new(BIN);
    cmd.args(args).stdout(Stdio::null()).stderr(Stdio::piped());
    if let Some(bytes) = data_limit {
        let limit = libc::rlimit {
            rlim_cur: bytes as libc::rlim_t,
            rlim_max: bytes as libc::rlim_t,
        };
        // SAFETY: setrlimit is async-signal-safe; it runs in the child between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                if libc::setrlimit(libc::RLIMIT_DATA, &limit) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    let mut child = cmd.spawn().expect("binary starts");
    let mut err = String::new();
    // wait4 below reaps the child (std's `wait` would not return its rusage).
    child
        .stderr
        .take()
        .expect("piped stderr")
        .read_to_string(&mut err)
        .expect("stderr is text");
    let pid = child.id() as libc::pid_t;
    let mut status: libc::c_int = 0;
    // SAFETY: rusage is plain data; wait4 fills it for our own child `pid`.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(r, pid, "wait4 failed");
    assert!(!err.contains("panicked"), "panic in {args:?}: {err}");
    let ok = libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
    (ok, err, usage.ru_maxrss)
}

fn run(args: &[String]) -> (bool, String) {
    let (ok, err, _) = run_measured(args);
    (ok, err)
}

fn codes(path: &Path, key: &str) -> Vec<u32> {
    let a = read(path);
    match a.obs.get(key) {
        Some(Column::Categorical { codes, .. }) => codes.iter().map(|&c| c as u32).collect(),
        other => panic!("obs['{key}'] is not categorical: {other:?}"),
    }
}

fn purity(path: &Path) -> f64 {
    let z = dataset_f32(path, "obsm/X_scdreamer");
    assert!(z.iter().all(|v| v.is_finite()), "non-finite embedding");
    let labels = codes(path, "cell_type");
    let n = labels.len();
    knn_label_purity(&knn_indices(&z, n, z.len() / n, 15), &labels)
}

/// The outputs that must agree: X (data, indices, indptr), genes, embedding, normalised layer.
fn assert_same_outputs(a: &Path, b: &Path) {
    let (fa, fb) = (open_h5(a).unwrap(), open_h5(b).unwrap());
    for key in ["X/data", "obsm/X_scdreamer", "layers/scdreamer_normalized"] {
        let (x, y): (Vec<f32>, Vec<f32>) = (
            fa.dataset(key).unwrap().read_raw().unwrap(),
            fb.dataset(key).unwrap().read_raw().unwrap(),
        );
        assert!(x == y, "{key} differs");
    }
    for key in ["X/indices", "X/indptr"] {
        let (x, y): (Vec<i64>, Vec<i64>) = (
            fa.dataset(key).unwrap().read_raw().unwrap(),
            fb.dataset(key).unwrap().read_raw().unwrap(),
        );
        assert!(x == y, "{key} differs");
    }
    let (ra, rb) = (read(a), read(b));
    assert_eq!(ra.var.index, rb.var.index, "genes differ");
    assert_eq!(ra.obs, rb.obs, "obs differ (Sup labels included)");
}

#[test]
fn one_chunk_reproduces_the_resident_run_bit_for_bit() {
    let dir = tempfile::tempdir().unwrap();
    for (name, extra) in [
        ("default", vec![]),
        // The authors' preset: seurat HVGs, the scaled input and the library prior.
        ("authors", vec!["--preset", "authors"]),
        ("sup", vec!["--labels-key", "cell_type"]),
    ] {
        let resident = dir.path().join(format!("{name}_resident.h5ad"));
        let backed = dir.path().join(format!("{name}_backed.h5ad"));
        let words =
            "integrate --input {} --output {} --epochs 2 --threads 2 --quiet --normalized yes";
        let a = argv_plus(words, &[&DEMO, &resident], &extra);
        let mut b = argv_plus(words, &[&DEMO, &backed], &extra);
        b.extend(["--backed", "--chunk-cells", "100000"].map(String::from));
        let (ok, err) = run(&a);
        assert!(ok, "{name} resident: {err}");
        let (ok, err) = run(&b);
        assert!(ok, "{name} backed: {err}");
        assert_same_outputs(&resident, &backed);
    }
}

#[test]
fn backed_training_on_many_chunks_uses_less_memory_and_matches_the_resident_run() {
    let (dir, [input]) = scratch(["sim.h5ad"]);
    // 60,000 cells x 800 genes at 10% non-zeros: 4.8 M values, 38 MB of CSR; chunks of 4,000
    // cells hold 2.6 MB.
    let (ok, err) = run(&argv(
        "simulate --cells 60000 --genes 800 --seed 3 --threads 2 --output {}",
        &[&input],
    ));
    assert!(ok, "{err}");
    let out = |name: &str| dir.path().join(name);
    // Two epochs: the default cosine schedule decays to 0 within the run, so one epoch would
    // train with half the effective learning rate. No normalised layer: it would be the same
    // size in both runs, so the comparison is of the counts' share.
    let args = |output: &Path, backed: bool| -> Vec<String> {
        let chunks: &[&str] = if backed {
            &["--backed", "--chunk-cells", "4000"]
        } else {
            &[]
        };
        argv_plus(
            "integrate --input {} --output {} --epochs 2 --n-top-genes 400 --threads 2 --quiet \
             --normalized no",
            &[&input, &output],
            chunks,
        )
    };
    let call = |v: Vec<String>| run_measured(&v);
    let (ok, err, rss_backed) = call(args(&out("backed.h5ad"), true));
    assert!(ok, "backed: {err}");
    assert!(err.contains("15 chunk(s) of 4000 cells"), "{err}");
    let (ok, err, rss_resident) = call(args(&out("resident.h5ad"), false));
    assert!(ok, "resident: {err}");
    let (ok, err, _) = call(args(&out("backed_again.h5ad"), true));
    assert!(ok, "backed again: {err}");
    println!("peak RSS: backed {rss_backed} KiB, resident {rss_resident} KiB");

    // (i) memory: the counts are never resident.
    assert!(
        (rss_backed as f64) < 0.75 * rss_resident as f64,
        "backed peak RSS {rss_backed} KiB is not clearly below the resident run's {rss_resident} KiB"
    );
    // (ii) the embedding separates the simulated cell types about as well.
    let (p_backed, p_resident) = (purity(&out("backed.h5ad")), purity(&out("resident.h5ad")));
    println!("15-NN cell-type purity: backed {p_backed:.4}, resident {p_resident:.4}");
    assert!(
        p_backed >= 0.9 && p_backed >= p_resident - 0.03,
        "backed purity {p_backed:.4} vs resident {p_resident:.4}"
    );
    // (iii) the same genes (and so the same output X).
    let genes = |p: &Path| read(p).var.index;
    assert_eq!(genes(&out("backed.h5ad")), genes(&out("resident.h5ad")));
    assert_eq!(
        dataset_f32(&out("backed.h5ad"), "X/data"),
        dataset_f32(&out("resident.h5ad"), "X/data")
    );
    // (iv) same seed and threads: the same embedding, bit for bit.
    assert!(
        dataset_f32(&out("backed.h5ad"), "obsm/X_scdreamer")
            == dataset_f32(&out("backed_again.h5ad"), "obsm/X_scdreamer"),
        "two backed runs with the same seed differ"
    );
    // (v) a deliberately small memory budget: 96 MiB of heap is enough for the backed run
    // (it needs about 60 MiB here) but not for the resident one (about 150 MiB).
    const BUDGET: u64 = 96 << 20;
    let limited = |v: Vec<String>| run_limited(&v, Some(BUDGET));
    let (ok, err, _) = limited(args(&out("budget_backed.h5ad"), true));
    assert!(ok, "backed within {BUDGET} bytes: {err}");
    assert!(
        dataset_f32(&out("budget_backed.h5ad"), "obsm/X_scdreamer")
            == dataset_f32(&out("backed.h5ad"), "obsm/X_scdreamer")
    );
    let (ok, err, _) = limited(args(&out("budget_resident.h5ad"), false));
    assert!(
        !ok && !out("budget_resident.h5ad").exists(),
        "the resident run fits the budget that shows --backed's point: {err}"
    );
    // The chunked training is not the resident one (different minibatches).
    assert!(
        dataset_f32(&out("backed.h5ad"), "obsm/X_scdreamer")
            != dataset_f32(&out("resident.h5ad"), "obsm/X_scdreamer")
    );
}

/// Rows r0..r1 and genes `genes` of a resident matrix, the way the row reader returns them.
fn block(x: &Csr, r0: usize, r1: usize, genes: Option<&[usize]>) -> Csr {
    let rows: Vec<usize> = (r0..r1).collect();
    let all: Vec<usize> = (0..x.n_cols).collect();
    x.select(&rows, genes.unwrap_or(&all))
}

#[test]
fn row_reader_blocks_equal_the_resident_matrix_in_every_row_encoding() {
    let dir = tempfile::tempdir().unwrap();
    let fx = Fixture::small();
    for kind in [
        XKind::CsrF32I32,
        XKind::CsrF64I64,
        XKind::DenseI64,
        XKind::DenseF64,
    ] {
        let path = dir.path().join(format!("{kind:?}.h5ad"));
        write_fixture(&path, &fx, kind, None);
        let x = read(&path).x;
        let reader = RowReader::open(&path, &ReadOptions::default()).unwrap();
        assert_eq!((reader.n_rows(), reader.n_cols()), (x.n_rows, x.n_cols));
        let genes = [3usize, 0, 2];
        let map = GeneMap::new(&genes, x.n_cols).unwrap();
        for (r0, r1) in [(0, 2), (2, 4), (4, 5), (0, 5), (3, 3)] {
            assert_eq!(
                reader.read_rows(r0, r1).unwrap(),
                block(&x, r0, r1, None),
                "{kind:?}"
            );
            assert_eq!(
                reader.read_rows_genes(r0, r1, &map).unwrap(),
                block(&x, r0, r1, Some(&genes)),
                "{kind:?}"
            );
        }
        assert!(reader.read_rows(4, 6).is_err(), "rows past the end");
    }
    // CSC cannot be read by rows: a clear error, through the binary too.
    let csc = dir.path().join("csc.h5ad");
    write_fixture(&csc, &fx, XKind::CscI32, None);
    let err = RowReader::open(&csc, &ReadOptions::default())
        .err()
        .expect("CSC is refused")
        .to_string();
    assert!(err.contains("CSC") && err.contains("--backed"), "{err}");
    let out = dir.path().join("out.h5ad");
    let backed = "integrate --input {} --output {} --backed --quiet";
    let (ok, err) = run(&argv(backed, &[&csc, &out]));
    assert!(!ok && err.contains("CSC"), "{err}");
    // A non-integer value is found by the backed setup pass as by the resident reader.
    let mut bad = Fixture::small();
    bad.set(3, 2, 0.5);
    let bad_path = dir.path().join("bad.h5ad");
    write_fixture(&bad_path, &bad, XKind::CsrF32I32, None);
    let (ok, err) = run(&argv(backed, &[&bad_path, &out]));
    assert!(
        !ok && err.contains("non-integer value 0.5 at cell 'cell3'"),
        "{err}"
    );
}

#[test]
fn chunk_flags_are_checked() {
    let (_dir, [out]) = scratch(["out.h5ad"]);
    for (extra, expected) in [
        (
            vec!["--chunk-cells", "1000"],
            "--chunk-cells needs --backed",
        ),
        (vec!["--backed", "--chunk-cells", "0"], "at least 1"),
        (
            vec!["--backed", "--chunk-cells", "50"],
            "smaller than a minibatch",
        ),
    ] {
        let a = argv_plus(
            "integrate --input {} --output {} --quiet",
            &[&DEMO, &out],
            &extra,
        );
        let (ok, err) = run(&a);
        assert!(!ok && err.contains(expected), "{extra:?}: {err}");
        assert!(!out.exists(), "{extra:?} wrote an output");
    }
}
