//! A seeded mutation fuzzer of the h5ad/CSR reader and validator: random small AnnData files
//! in every X encoding and many dtypes, with bad values and structural mutations (random
//! indptr/indices/data, shapes, missing members, wrong encodings and dtypes, obs/var of the
//! wrong length or with repeated names). Properties: reading never panics (nor aborts, which
//! would kill this test binary); whatever reads is a valid CSR of finite, non-negative integer
//! counts with unique cell and gene names; the streamed reader (`--backed`) agrees with the
//! resident one; and an unmutated file of valid counts reads back exactly.
//!
//! `SCDREAMER_FUZZ_CASES` (default 400, a few seconds) and `SCDREAMER_FUZZ_SEED` (default 0)
//! widen or move the search; a failure prints the case's seed.

mod h5ad_fixtures;

use std::path::Path;

use h5ad_fixtures::{Fixture, XKind, write_fixture};
use hdf5::types::VarLenUnicode;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use scdreamer::data::Csr;
use scdreamer::data::h5ad::{ReadOptions, RowReader, read_h5ad};
use scdreamer::data::validate::batch_codes;

const KINDS: [XKind; 5] = [
    XKind::CsrF32I32,
    XKind::CsrF64I64,
    XKind::CscI32,
    XKind::DenseI64,
    XKind::DenseF64,
];

const LABELS: [&str; 3] = ["b0", "b1", "b2"];

fn env_usize(key: &str, default: usize) -> usize {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The value the fixture writer stores for `v` in encoding `kind` (it casts to the dtype).
fn stored(v: f64, kind: XKind) -> f64 {
    match kind {
        XKind::CsrF32I32 => v as f32 as f64,
        XKind::CscI32 => v as i32 as f64,
        XKind::DenseI64 => v as i64 as f64,
        XKind::CsrF64I64 | XKind::DenseF64 => v,
    }
}

/// True for a value the reader must accept: a non-negative integer within float32.
fn is_count(v: f64) -> bool {
    v >= 0.0 && v <= f32::MAX as f64 && v.fract() == 0.0
}

/// 0 or (as often) a count in 1..50.
fn sparse_count(rng: &mut ChaCha8Rng) -> f64 {
    if rng.gen_bool(0.5) {
        0.0
    } else {
        rng.gen_range(1..50) as f64
    }
}

/// A random fixture (values as stored in `kind`); `bad` is true when one is not a count.
fn random_fixture(rng: &mut ChaCha8Rng, kind: XKind) -> (Fixture, bool) {
    let n = rng.gen_range(0..7);
    let g = rng.gen_range(1..6);
    let mut values: Vec<f64> = (0..n * g).map(|_| sparse_count(rng)).collect();
    if n > 0 && rng.gen_bool(0.3) {
        let nasty = [
            -1.0,
            f64::NAN,
            f64::INFINITY,
            0.5,
            1e300,
            5e-324,
            -0.0,
            1e39,
        ];
        let k = rng.gen_range(0..values.len());
        values[k] = nasty[rng.gen_range(0..nasty.len())];
    }
    let values: Vec<f64> = values.iter().map(|&v| stored(v, kind)).collect();
    let bad = values.iter().any(|&v| !is_count(v));
    let fx = Fixture {
        cells: (0..n).map(|i| format!("c{i}")).collect(),
        genes: (0..g).map(|j| format!("g{j}")).collect(),
        values,
        batch: (0..n).map(|_| LABELS[rng.gen_range(0..3)]).collect(),
        cell_type: (0..n).map(|_| LABELS[rng.gen_range(0..2)]).collect(),
    };
    (fx, bad)
}

fn open_rw(p: &Path) -> hdf5::File {
    let mut b = hdf5::File::with_options();
    b.fapl().file_locking(false);
    b.open_rw(p).unwrap()
}

fn random_ints(rng: &mut ChaCha8Rng) -> Vec<i64> {
    let len = rng.gen_range(0..10);
    (0..len)
        .map(|_| match rng.gen_range(0..4) {
            0 => rng.gen_range(-3..3),
            1 => rng.gen_range(0..12),
            2 => i64::MAX - rng.gen_range(0..2),
            _ => rng.gen_range(0..1_000_000_000_000),
        })
        .collect()
}

/// Replaces (or creates) dataset `path` with `data`, ignoring a missing parent.
/// Up to `max - 1` names `{prefix}{i % m}` for a random m in 1..4: often repeated.
fn repeated_names(rng: &mut ChaCha8Rng, prefix: &str, max: usize) -> Vec<VarLenUnicode> {
    let len = rng.gen_range(0..max);
    (0..len)
        .map(|i| {
            format!("{prefix}{}", i % rng.gen_range(1..4))
                .parse()
                .unwrap()
        })
        .collect()
}

fn put<T: hdf5::H5Type>(f: &hdf5::File, path: &str, data: &[T]) {
    let _ = f.unlink(path);
    let _ = f.new_dataset_builder().with_data(data).create(path);
}

/// One random structural mutation; returns its name for the failure message.
fn mutate(p: &Path, rng: &mut ChaCha8Rng) -> &'static str {
    let f = open_rw(p);
    let sparse = f.group("X").is_ok();
    match rng.gen_range(0..12) {
        0 => {
            put(&f, "X/indptr", &random_ints(rng));
            "indptr"
        }
        1 => {
            put(&f, "X/indices", &random_ints(rng));
            "indices"
        }
        2 => {
            let len = rng.gen_range(0..10);
            let v: Vec<f64> = (0..len).map(|_| rng.gen_range(0..5) as f64).collect();
            put(&f, "X/data", &v);
            "data length"
        }
        3 => {
            if let Ok(g) = f.group("X") {
                let _ = g.delete_attr("shape");
                let shape: Vec<i64> = (0..rng.gen_range(0..4))
                    .map(|_| match rng.gen_range(0..3) {
                        0 => rng.gen_range(-2..8),
                        1 => 1 << rng.gen_range(20..62),
                        _ => rng.gen_range(0..8),
                    })
                    .collect();
                let _ = g.new_attr_builder().with_data(&shape[..]).create("shape");
            }
            "shape attribute"
        }
        4 => {
            let victims = [
                "X/data",
                "X/indices",
                "X/indptr",
                "obs/_index",
                "var/_index",
                "obs",
                "var",
                "X",
                "obs/batch",
            ];
            let _ = f.unlink(victims[rng.gen_range(0..victims.len())]);
            "missing member"
        }
        5 => {
            if let Ok(g) = f.group("X") {
                let _ = g.delete_attr("encoding-type");
                let e =
                    ["csr_matrix", "csc_matrix", "coo_matrix", "", "array"][rng.gen_range(0..5)];
                h5ad_fixtures::str_attr(&g, "encoding-type", e);
            }
            "encoding"
        }
        6 => {
            put(&f, "obs/_index", &repeated_names(rng, "c", 8));
            "obs index"
        }
        7 => {
            put(&f, "var/_index", &repeated_names(rng, "g", 7));
            "var index"
        }
        8 => {
            let path = if sparse { "X/data" } else { "X" };
            let n = f.dataset(path).map(|d| d.size()).unwrap_or(0);
            match rng.gen_range(0..4) {
                0 => put(&f, path, &vec![1u8; n]),
                1 => put(&f, path, &vec![true; n]),
                2 => put(&f, path, &vec![half::f16::from_f32(2.0); n]),
                _ => put(
                    &f,
                    path,
                    &vec!["1".parse::<hdf5::types::VarLenUnicode>().unwrap(); n],
                ),
            }
            "dtype"
        }
        9 => {
            if !sparse {
                let _ = f.unlink("X");
                let dims = rng.gen_range(1..4);
                let shape: Vec<usize> = (0..dims).map(|_| rng.gen_range(0..5)).collect();
                let _ = f.new_dataset::<f64>().shape(shape).create("X");
            }
            "dense shape"
        }
        10 => {
            let codes: Vec<i8> = (0..rng.gen_range(0..8))
                .map(|_| rng.gen_range(-2..5))
                .collect();
            put(&f, "obs/batch/codes", &codes);
            "batch codes"
        }
        _ => {
            let v: Vec<f32> = random_ints(rng).iter().map(|&x| x as f32).collect();
            put(&f, "X/data", &v);
            "data values"
        }
    }
}

/// The properties every successful read must have.
fn check_valid(x: &Csr, n_obs: usize, n_var: usize) -> Result<(), String> {
    if x.n_rows != n_obs || x.n_cols != n_var {
        return Err(format!(
            "X {}x{} vs obs {n_obs} var {n_var}",
            x.n_rows, x.n_cols
        ));
    }
    if x.indptr.len() != x.n_rows + 1 || x.indptr[0] != 0 {
        return Err(format!("indptr {:?}", x.indptr));
    }
    if x.indptr.windows(2).any(|w| w[1] < w[0])
        || *x.indptr.last().unwrap() as usize != x.data.len()
    {
        return Err(format!("indptr {:?} for {} values", x.indptr, x.data.len()));
    }
    if x.indices.len() != x.data.len() {
        return Err("indices and data differ".into());
    }
    for r in 0..x.n_rows {
        let (idx, val) = x.row(r);
        if idx.windows(2).any(|w| w[1] <= w[0]) || idx.iter().any(|&j| j as usize >= x.n_cols) {
            return Err(format!("row {r} indices {idx:?}"));
        }
        if val
            .iter()
            .any(|&v| !(v >= 0.0 && v.is_finite() && v.fract() == 0.0))
        {
            return Err(format!("row {r} values {val:?}"));
        }
    }
    Ok(())
}

/// The matrix as dense rows (for comparing two reads).
fn dense(x: &Csr) -> Vec<f32> {
    let mut d = vec![0.0; x.n_rows * x.n_cols];
    for r in 0..x.n_rows {
        let (idx, val) = x.row(r);
        for (&j, &v) in idx.iter().zip(val) {
            d[r * x.n_cols + j as usize] += v;
        }
    }
    d
}

fn unique(names: &[String]) -> bool {
    let set: std::collections::HashSet<&String> = names.iter().collect();
    set.len() == names.len()
}

/// One case: Ok(whether the file was read), or a description of the broken property.
fn run_case(seed: u64, dir: &Path) -> Result<bool, String> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let kind = KINDS[rng.gen_range(0..KINDS.len())];
    let (fx, bad) = random_fixture(&mut rng, kind);
    let p = dir.join(format!("case{seed}.h5ad"));
    write_fixture(&p, &fx, kind, None);
    let n_mut = if rng.gen_bool(0.25) {
        0
    } else {
        rng.gen_range(1..4)
    };
    let mutations: Vec<&str> = (0..n_mut).map(|_| mutate(&p, &mut rng)).collect();
    let what = format!("{kind:?}, mutations {mutations:?}, bad value {bad}");
    let opts = ReadOptions::default();
    let resident = std::panic::catch_unwind(|| read_h5ad(&p, &opts))
        .map_err(|_| format!("read_h5ad panicked ({what})"))?;
    let streamed = std::panic::catch_unwind(|| -> anyhow::Result<Csr> {
        let r = RowReader::open(&p, &opts)?;
        r.read_rows(0, r.n_rows())
    })
    .map_err(|_| format!("RowReader panicked ({what})"))?;
    match &resident {
        Ok(a) => {
            check_valid(&a.x, a.obs.len(), a.var.len()).map_err(|e| format!("{e} ({what})"))?;
            if !unique(&a.obs.index) || !unique(&a.var.index) {
                return Err(format!("repeated names were read ({what})"));
            }
            std::panic::catch_unwind(|| batch_codes(&a.obs, "batch", true).map(|_| ()))
                .map_err(|_| format!("batch_codes panicked ({what})"))?
                .ok();
            if mutations.is_empty() {
                if bad {
                    return Err(format!(
                        "a bad value was accepted: {:?} ({what})",
                        fx.values
                    ));
                }
                let want: Vec<f32> = fx.values.iter().map(|&v| v as f32).collect();
                if dense(&a.x) != want {
                    return Err(format!("read {:?}, wrote {want:?} ({what})", dense(&a.x)));
                }
            }
            // The CSC encoding is refused by the streamed reader; otherwise the two agree.
            if let Ok(s) = &streamed
                && dense(s) != dense(&a.x)
            {
                return Err(format!("RowReader and read_h5ad disagree ({what})"));
            }
        }
        Err(e) => {
            if mutations.is_empty() && !bad {
                return Err(format!("a valid file was refused: {e:#} ({what})"));
            }
            let msg = format!("{e:#}");
            if !msg.contains(&format!("case{seed}.h5ad")) {
                return Err(format!("the error does not name the file: {msg} ({what})"));
            }
        }
    }
    if let (Ok(s), Err(_)) = (&streamed, &resident) {
        // Streaming checks values chunk by chunk: it may only accept what is valid.
        check_valid(s, s.n_rows, s.n_cols).map_err(|e| format!("streamed: {e} ({what})"))?;
    }
    std::fs::remove_file(&p).ok();
    Ok(resident.is_ok())
}

#[test]
fn reader_and_validator_survive_random_and_mutated_files() {
    hdf5::silence_errors(true);
    let cases = env_usize("SCDREAMER_FUZZ_CASES", 400) as u64;
    let first = env_usize("SCDREAMER_FUZZ_SEED", 0) as u64;
    let dir = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();
    let mut accepted = 0;
    for seed in first..first + cases {
        match run_case(seed, dir.path()) {
            Ok(read) => accepted += read as usize,
            Err(e) => failures.push(format!("seed {seed}: {e}")),
        }
    }
    eprintln!("{cases} fuzz cases: {accepted} read, the rest refused with an error");
    // Both outcomes must be exercised, or the generator has drifted.
    assert!(
        accepted > cases as usize / 10 && accepted < cases as usize * 9 / 10,
        "{accepted}"
    );
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
