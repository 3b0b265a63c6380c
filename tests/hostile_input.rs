//! The bad-input suite (issue 20): crafted files, hostile flags, outputs that would land on an
//! input, full and read-only file systems, signals. Every case asserts the exit code (non-zero,
//! never 101/134/a signal), the `error:` message naming the problem, that no output or temp
//! file is left and that the inputs' bytes are unchanged (see `hostile/mod.rs`).

mod common;
mod h5ad_fixtures;
mod hostile;

use std::path::{Path, PathBuf};

use h5ad_fixtures::{Fixture, XKind, write_fixture};
use hostile::{Case, expect_error, expect_fast_error, run};
use serde_json::{Value, json};

fn s(p: &Path) -> String {
    p.to_str().unwrap().to_string()
}

/// A small fixture file (5 cells x 4 genes, 2 batches) in the case directory.
fn small(case: &Case, name: &str, kind: XKind, edit: impl FnOnce(&mut Fixture)) -> PathBuf {
    let mut fx = Fixture::small();
    edit(&mut fx);
    let p = case.path(name);
    write_fixture(&p, &fx, kind, None);
    p
}

fn open_rw(p: &Path) -> hdf5::File {
    let mut b = hdf5::File::with_options();
    b.fapl().file_locking(false);
    b.open_rw(p).unwrap()
}

/// Replaces dataset `path` of `file` by `data`.
fn replace<T: hdf5::H5Type>(file: &Path, path: &str, data: &[T]) {
    let f = open_rw(file);
    f.unlink(path).unwrap();
    f.new_dataset_builder()
        .with_data(data)
        .create(path)
        .unwrap();
}

/// The binary on `words` with its `{}` filled in by `paths` (see [`common::argv`]); must
/// succeed.
fn succeeds(words: &str, paths: &[&dyn AsRef<Path>]) -> hostile::Outcome {
    let args = common::argv(words, paths);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let r = run(&args);
    assert_eq!(r.code, 0, "{}", r.stderr);
    r
}

/// `integrate` on `input` into `out.h5ad` of the case, plus `extra` flags: must fail naming
/// every string of `want`.
fn integrate_fails(case: &Case, input: &Path, extra: &[&str], want: &[&str]) {
    let (i, o) = (s(input), s(&case.path("out.h5ad")));
    let mut args = vec!["integrate", "-i", &i, "-o", &o, "--quiet", "--epochs", "1"];
    args.extend_from_slice(extra);
    expect_error(case, &args, want);
}

/// [`integrate_fails`] on a copy of the demo, each case in its own directory.
fn flag_fails(extra: &[&str], want: &[&str]) {
    let c = Case::new();
    let i = c.demo("in.h5ad");
    integrate_fails(&c, &i, extra, want);
}

// ---- 1. sizes beyond memory: an error naming the flag, never an abort; flags: ranges
// ---- checked before the input is read

#[test]
fn integrate_flags_out_of_range_are_named() {
    let cases: [(&[&str], &[&str]); 19] = [
        (
            &["--hidden", "1000000000000"],
            &["--hidden 1000000000000", "memory"],
        ),
        (
            &["--latent", "1000000000000"],
            &["--latent 1000000000000", "memory"],
        ),
        (
            &["--hidden", "16,10000000000"],
            &["--hidden 16,10000000000", "memory"],
        ),
        (&["--n-top-genes", "0"], &["--n-top-genes", "at least 1"]),
        (&["--hidden", "0"], &["--hidden"]),
        (&["--batch-size", "1"], &["--batch-size"]),
        (&["--lr=-0.001"], &["--lr", "-0.001"]),
        (&["--lr", "NaN"], &["--lr", "NaN"]),
        (&["--kl-weight=-1"], &["--kl-weight", "-1"]),
        (
            &["--batch-adv-weight", "inf"],
            &["--batch-adv-weight", "inf"],
        ),
        (&["--threads", "0"], &["--threads"]),
        (&["--threads", "1000000000"], &["--threads 1000000000"]),
        (&["--chunk-cells", "100"], &["--chunk-cells", "--backed"]),
        (&["--backed", "--chunk-cells", "0"], &["--chunk-cells"]),
        (
            &["--batch-key", "donor"],
            &["'donor'", "available obs keys"],
        ),
        (
            &["--batch-key", "total_count_per_cell"],
            &["total_count_per_cell", "per-cell"],
        ),
        (
            &["--transform-batch", "nope"],
            &["--transform-batch", "'nope'"],
        ),
        (
            &["--labels-key", "celltype"],
            &["'celltype'", "--labels-key"],
        ),
        (&["--layer", "counts"], &["layer 'counts' not found"]),
    ];
    for (extra, want) in cases {
        flag_fails(extra, want);
    }
}

#[test]
fn epochs_zero() {
    let c = Case::new();
    let i = c.demo("in.h5ad");
    let (i, o) = (s(&i), s(&c.path("o.h5ad")));
    expect_fast_error(
        &c,
        &["integrate", "-i", &i, "-o", &o, "--epochs", "0"],
        &["--epochs"],
    );
}

#[test]
fn csc_shape_attribute_of_a_quadrillion_rows() {
    let c = Case::new();
    let p = small(&c, "x.h5ad", XKind::CscI32, |_| {});
    let f = open_rw(&p);
    f.group("X").unwrap().delete_attr("shape").unwrap();
    f.group("X")
        .unwrap()
        .new_attr_builder()
        .with_data(&[1_000_000_000_000_000i64, 4][..])
        .create("shape")
        .unwrap();
    drop(f);
    integrate_fails(&c, &p, &[], &["x.h5ad"]);
}

#[test]
fn dense_x_declaring_a_trillion_rows() {
    let c = Case::new();
    let p = small(&c, "x.h5ad", XKind::DenseF64, |_| {});
    let f = open_rw(&p);
    f.unlink("X").unwrap();
    f.new_dataset::<f64>()
        .chunk((1, 4))
        .shape((1usize << 40, 4))
        .create("X")
        .unwrap();
    drop(f);
    integrate_fails(&c, &p, &[], &["x.h5ad"]);
}

// ---- 2. simulator parameters: ranges checked, no hang, no silent clamping ----

/// `simulate` with the flags into the output of a case directory that also holds an empty
/// directory `d`: must fail at once naming every string of the error column.
#[test]
fn simulator_parameters_are_checked() {
    let cases: [(&str, &str, &[&str]); 11] = [
        (
            "--cells 10000000000 --genes 100",
            "sim.h5ad",
            &["--cells 10000000000", "memory"],
        ),
        (
            "--cells 100 --genes 100 --de-sd 400",
            "sim.h5ad",
            &["--de-sd", "400"],
        ),
        (
            "--cells 100 --genes 100 --batch-sd 1000",
            "sim.h5ad",
            &["--batch-sd", "1000"],
        ),
        // Would exceed float32 counts.
        (
            "--cells 100 --genes 100 --de-sd 10",
            "sim.h5ad",
            &["--de-sd 10", "2^24"],
        ),
        (
            "--cells 100 --genes 100 --batch-sd=-1",
            "sim.h5ad",
            &["--batch-sd", "-1"],
        ),
        (
            "--cells 100 --genes 100 --density 2",
            "sim.h5ad",
            &["--density", "2"],
        ),
        ("--cells 0", "sim.h5ad", &["--cells", "0"]),
        (
            "--cells 100 --genes 100 --types 1000",
            "sim.h5ad",
            &["--types 1000"],
        ),
        (
            "--cells 100 --genes 100 --threads 0",
            "sim.h5ad",
            &["--threads"],
        ),
        ("--cells 10", "no/sim.h5ad", &["does not exist"]),
        ("--cells 10", "d", &["directory"]),
    ];
    for (flags, output, want) in cases {
        let c = Case::new();
        std::fs::create_dir(c.path("d")).unwrap();
        let o = s(&c.path(output));
        let mut args = vec!["simulate", "-o", &o];
        args.extend(flags.split_whitespace());
        expect_fast_error(&c, &args, want);
    }
}

// ---- 3. embed: config.json checked against the weights before use ----

fn embed_fails(c: &Case, model: &Path, input: &Path, want: &[&str]) {
    let (m, i, o) = (s(model), s(input), s(&c.path("out.h5ad")));
    expect_error(
        c,
        &["embed", "--model", &m, "-i", &i, "-o", &o, "--quiet"],
        want,
    );
}

fn pop_gene(v: &mut Value) {
    v["genes"].as_array_mut().unwrap().pop();
}

fn push_batch(v: &mut Value) {
    v["batch_categories"]
        .as_array_mut()
        .unwrap()
        .push("extra".into());
}

/// Adds `d` to `run.model.<key>`.
fn add(v: &mut Value, key: &str, d: i64) {
    let n = v["run"]["model"][key].as_i64().unwrap();
    v["run"]["model"][key] = (n + d).into();
}

fn pop_gene_and_count(v: &mut Value) {
    pop_gene(v);
    add(v, "n_genes", -1);
}

fn push_batch_and_count(v: &mut Value) {
    push_batch(v);
    add(v, "n_batches", 1);
}

/// Entry 1 of the list `key` becomes a copy of entry 0.
fn repeat_first(v: &mut Value, key: &str) {
    let first = v[key][0].clone();
    v[key][1] = first;
}

#[test]
fn embed_config_is_checked_against_the_weights() {
    type Edit = fn(&mut Value);
    let cases: [(Edit, &[&str]); 10] = [
        (
            |v| v["run"]["model"]["hidden"] = json!([1_000_000_000_000u64]),
            &["memory"],
        ),
        (pop_gene, &["config.json", "genes", "n_genes"]),
        (pop_gene_and_count, &["shape", "different models"]),
        (|v| repeat_first(v, "genes"), &["genes", "more than once"]),
        (push_batch, &["batch_categories", "n_batches"]),
        (push_batch_and_count, &["different models"]),
        (
            |v| repeat_first(v, "batch_categories"),
            &["batch_categories", "more than once"],
        ),
        (|v| v["run"]["model"]["hidden"] = json!([0]), &["hidden"]),
        (|v| v["format_version"] = 99.into(), &["format version 99"]),
        (|v| v["batch_key"] = "cell_type".into(), &["not trained on"]),
    ];
    for (edit, want) in cases {
        let c = Case::new();
        let m = c.model("m");
        c.edit_config(&m, edit);
        embed_fails(&c, &m, &c.demo("q.h5ad"), want);
    }
}

/// Model directories whose files are missing or not what they claim to be, and a query
/// without the model's genes.
#[test]
fn embed_model_files_are_checked() {
    type Break = fn(&Path) -> std::io::Result<()>;
    let cases: [(Break, &[&str]); 4] = [
        (
            |m| std::fs::write(m.join("config.json"), "{ not json"),
            &["config.json", "not a valid model config"],
        ),
        (
            |m| std::fs::remove_file(m.join("weights.safetensors")),
            &["weights.safetensors"],
        ),
        (
            |m| std::fs::write(m.join("weights.safetensors"), b"\x01\x02garbage"),
            &["not a valid safetensors file"],
        ),
        (
            |m| std::fs::remove_dir_all(m),
            &["config.json", "saved scdreamer model"],
        ),
    ];
    for (breaks, want) in cases {
        let c = Case::new();
        let m = c.model("m");
        breaks(&m).unwrap();
        embed_fails(&c, &m, &c.demo("q.h5ad"), want);
    }
    let c = Case::new();
    let m = c.model("m");
    let q = small(&c, "q.h5ad", XKind::CsrF32I32, |_| {});
    embed_fails(&c, &m, &q, &["lacks", "genes"]);
}

// ---- 4. repeated var_names: made unique, never a silent pick ----

/// The demo with gene 1's name given to gene 0's column too (column 1 repeats column 0's name).
fn demo_with_repeated_gene(c: &Case, name: &str, repeated: &str) -> PathBuf {
    let p = c.demo(name);
    let f = open_rw(&p);
    let idx = f.dataset("var/_index").unwrap();
    let mut names: Vec<hdf5::types::VarLenUnicode> = idx.read_raw().unwrap();
    names[1] = repeated.parse().unwrap();
    let attrs: Vec<String> = idx.attr_names().unwrap();
    drop(idx);
    f.unlink("var/_index").unwrap();
    let ds = f
        .new_dataset_builder()
        .with_data(&names[..])
        .create("var/_index")
        .unwrap();
    for (k, v) in [
        ("encoding-type", "string-array"),
        ("encoding-version", "0.2.0"),
    ] {
        if attrs.iter().any(|a| a == k) {
            h5ad_fixtures::str_attr(&ds, k, v);
        }
    }
    p
}

fn gene_name(p: &Path, j: usize) -> String {
    let a = scdreamer::data::h5ad::read_h5ad(p, &Default::default()).unwrap();
    a.var.index[j].clone()
}

#[test]
fn genes_file_naming_a_repeated_gene() {
    let c = Case::new();
    let g0 = gene_name(&hostile::demo(), 0);
    let i = demo_with_repeated_gene(&c, "in.h5ad", &g0);
    let list = c.write("genes.txt", &format!("{g0}\n"));
    integrate_fails(
        &c,
        &i,
        &["--genes", &s(&list)],
        &["--genes", &g0, "more than one gene"],
    );
}

#[test]
fn embed_query_repeating_a_model_gene() {
    let c = Case::new();
    let m = c.model("m");
    let cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(m.join("config.json")).unwrap()).unwrap();
    let model_gene = cfg["genes"][0].as_str().unwrap().to_string();
    let q = demo_with_repeated_gene(&c, "q.h5ad", &model_gene);
    // Unless column 1 is the model's gene itself, the query now names two columns alike.
    if gene_name(&hostile::demo(), 1) != model_gene {
        embed_fails(&c, &m, &q, &["ambiguous", "more than once"]);
    }
}

/// A file with a repeated gene name trains, and `embed` of the same file gives the same
/// embedding (names are made unique the same way both times).
#[test]
fn repeated_gene_names_embed_like_training() {
    let c = Case::new();
    let g0 = gene_name(&hostile::demo(), 0);
    let i = demo_with_repeated_gene(&c, "in.h5ad", &g0);
    let (o, m) = (c.path("out.h5ad"), c.path("model"));
    let r = succeeds(
        "integrate -i {} -o {} --epochs 2 --hidden 16 --all-genes --quiet --save-model {}",
        &[&i, &o, &m],
    );
    assert!(r.stderr.contains("occur more than once"), "{}", r.stderr);
    let e = c.path("emb.h5ad");
    succeeds("embed --model {} -i {} -o {} --quiet", &[&m, &i, &e]);
    let worst = common::max_abs_diff(&common::embedding(&o), &common::embedding(&e));
    assert!(worst < 1e-4, "embed differs from integrate by {worst}");
    let names = scdreamer::data::h5ad::read_h5ad(&o, &Default::default())
        .unwrap()
        .var
        .index;
    assert!(
        names.contains(&format!("{g0}-1")),
        "the repeat is renamed {g0}-1"
    );
}

// ---- 5. no output lands on an input; 8. output problems found before any work ----

/// `integrate` of `input` into `output` with `extra`: must fail at once naming every `want`.
fn integrate_fast_fails(c: &Case, input: &Path, output: &Path, extra: &[&str], want: &[&str]) {
    let (i, o) = (s(input), s(output));
    let mut args = vec!["integrate", "-i", &i, "-o", &o, "--quiet"];
    args.extend_from_slice(extra);
    expect_fast_error(c, &args, want);
}

/// Output clashes set up in a case directory: (input, output, extra flags).
type Clash = fn(&Case) -> (PathBuf, PathBuf, Vec<String>);

/// The demo as `in.h5ad`, written to `output` of the case, no extra flags.
fn onto(c: &Case, output: &str) -> (PathBuf, PathBuf, Vec<String>) {
    (c.demo("in.h5ad"), c.path(output), vec![])
}

/// The demo as `in.h5ad` into `o.h5ad`, saving the model to `model`.
fn save_model(c: &Case, model: &Path) -> (PathBuf, PathBuf, Vec<String>) {
    let flags = vec!["--save-model".into(), s(model)];
    (c.demo("in.h5ad"), c.path("o.h5ad"), flags)
}

/// The demo copied to `m/<file>` of the case and `integrate --save-model m`.
fn into_model_dir(c: &Case, file: &str) -> (PathBuf, PathBuf, Vec<String>) {
    std::fs::create_dir(c.path("m")).unwrap();
    let i = c.demo(&format!("m/{file}"));
    (
        i,
        c.path("o.h5ad"),
        vec!["--save-model".into(), s(&c.path("m"))],
    )
}

#[test]
fn outputs_never_land_on_an_input() {
    let cases: [(Clash, &[&str]); 17] = [
        (|c| onto(c, "in.h5ad"), &["onto the input", "in.h5ad"]),
        (
            |c| {
                std::os::unix::fs::symlink(c.path("in.h5ad"), c.path("link.h5ad")).unwrap();
                onto(c, "link.h5ad")
            },
            &["onto the input"],
        ),
        (
            |c| {
                let clash = onto(c, "hard.h5ad");
                std::fs::hard_link(&clash.0, &clash.1).unwrap();
                clash
            },
            &["onto the input"],
        ),
        (
            |c| {
                std::fs::create_dir(c.path("sub")).unwrap();
                onto(c, "sub/../in.h5ad")
            },
            &["onto the input"],
        ),
        (|c| onto(c, "nosuch/../in.h5ad"), &["onto the input"]),
        (
            |c| (c.demo("run.log.csv"), c.path("run.h5ad"), vec![]),
            &["training log", "onto the input"],
        ),
        (
            |c| (c.demo("run.log.json"), c.path("run.h5ad"), vec![]),
            &["training log", "onto the input"],
        ),
        (
            |c| into_model_dir(c, "weights.safetensors"),
            &["--save-model", "onto the input"],
        ),
        (
            |c| into_model_dir(c, "config.json"),
            &["config.json", "onto the input"],
        ),
        (|c| save_model(c, &c.path("in.h5ad")), &["--save-model"]),
        (
            |c| save_model(c, &c.write("model", "x")),
            &["--save-model", "not a directory"],
        ),
        (
            |c| {
                c.write("f", "x");
                save_model(c, &c.path("f/model"))
            },
            &["--save-model", "not a directory"],
        ),
        (
            |c| {
                let (i, _, flags) = save_model(c, &c.path("m"));
                (i, c.path("m/weights.safetensors"), flags)
            },
            &["same path"],
        ),
        (
            |c| {
                let g = c.write("genes.txt", "A\n");
                (c.demo("in.h5ad"), g.clone(), vec!["--genes".into(), s(&g)])
            },
            &["--genes", "onto the input"],
        ),
        (|c| onto(c, "typo/out.h5ad"), &["typo", "does not exist"]),
        (
            |c| {
                std::fs::create_dir(c.path("d")).unwrap();
                onto(c, "d")
            },
            &["existing directory"],
        ),
        (
            |c| {
                (
                    onto(c, "in.h5ad").0,
                    c.path("in.h5ad"),
                    vec!["--backed".into()],
                )
            },
            &["onto the input"],
        ),
    ];
    for (clash, want) in cases {
        let c = Case::new();
        let (i, o, extra) = clash(&c);
        let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
        integrate_fast_fails(&c, &i, &o, &extra, want);
    }
}

#[test]
fn embed_outputs_never_land_on_an_input() {
    type Output = fn(&Case, &Path) -> PathBuf;
    let cases: [(Output, &[&str]); 3] = [
        (|c, _| c.path("q.h5ad"), &["onto the input"]),
        (
            |_, m| m.join("weights.safetensors"),
            &["onto the input", "--model"],
        ),
        (|c, _| c.path("no/out.h5ad"), &["does not exist"]),
    ];
    for (output, want) in cases {
        let c = Case::new();
        let (m, q) = (c.model("m"), c.demo("q.h5ad"));
        let o = s(&output(&c, &m));
        let (m, q) = (s(&m), s(&q));
        expect_fast_error(&c, &["embed", "--model", &m, "-i", &q, "-o", &o], want);
    }
}

/// `integrate` of the demo into `output` (saving the model to `model` if given) with the
/// case's `ro/` a read-only tmpfs: must fail with `want` and leave nothing anywhere. None
/// where no tmpfs can be mounted.
fn on_read_only(output: &str, model: Option<&str>, want: &str) -> Option<hostile::Outcome> {
    if !hostile::can_mount() {
        return None;
    }
    let c = Case::new();
    let i = s(&c.demo("in.h5ad"));
    std::fs::create_dir(c.path("ro")).unwrap();
    let (o, m) = (s(&c.path(output)), model.map(|m| s(&c.path(m))));
    let mut args = vec!["integrate", "-i", &i, "-o", &o, "--quiet"];
    if let Some(m) = &m {
        args.extend(["--save-model", m]);
    }
    let before = hostile::snapshot(c.dir.path());
    let (out, left) = hostile::run_on_tmpfs(&c.path("ro"), "ro,size=1m", &args);
    assert_ne!(out.code, 0);
    assert!(out.stderr.contains(want), "{}", out.stderr);
    assert_eq!(left, "");
    hostile::assert_unchanged(&before, &hostile::snapshot(c.dir.path()), &[want]);
    Some(out)
}

#[test]
fn read_only_file_system_output() {
    let Some(out) = on_read_only("ro/out.h5ad", None, "error: cannot write --output") else {
        return;
    };
    assert!(
        out.stderr.to_lowercase().contains("read-only"),
        "{}",
        out.stderr
    );
    assert!(out.elapsed.as_secs_f64() < 1.0, "took {:?}", out.elapsed);
}

#[test]
fn read_only_file_system_save_model() {
    on_read_only(
        "o.h5ad",
        Some("ro/model"),
        "error: cannot write --save-model",
    );
}

// ---- 7. a full disk: "No space left on device" first, nothing half-written ----

fn full_disk(size: &str, extra: &[&str], save_model: bool) {
    if !hostile::can_mount() {
        return;
    }
    let c = Case::new();
    let i = s(&c.demo("in.h5ad"));
    std::fs::create_dir(c.path("full")).unwrap();
    let (o, m) = (s(&c.path("full/out.h5ad")), s(&c.path("full/model")));
    let mut args = vec!["integrate", "-i", &i, "-o", &o, "--quiet", "--epochs", "1"];
    args.extend_from_slice(extra);
    if save_model {
        args.extend_from_slice(&["--save-model", &m]);
    }
    let before = hostile::snapshot(c.dir.path());
    let (out, left) = hostile::run_on_tmpfs(&c.path("full"), &format!("size={size}"), &args);
    assert_ne!(out.code, 0, "{}", out.stderr);
    let line = out
        .stderr
        .lines()
        .find(|l| l.starts_with("error:"))
        .unwrap_or("");
    assert!(line.contains("No space left on device"), "{}", out.stderr);
    assert_eq!(left, "", "left on the full disk: {left}");
    hostile::assert_unchanged(&before, &hostile::snapshot(c.dir.path()), &args);
}

#[test]
fn full_disk_during_the_h5ad() {
    full_disk("200k", &["--hidden", "16"], false);
}

#[test]
fn full_disk_during_the_model_leaves_no_weights_without_config() {
    // The .h5ad and logs fit; the 2048-wide model's weights do not.
    full_disk(
        "3m",
        &[
            "--hidden",
            "2048",
            "--n-top-genes",
            "100",
            "--normalized",
            "no",
        ],
        true,
    );
}

#[test]
fn genes_file_is_checked() {
    let c = Case::new();
    let i = c.demo("in.h5ad");
    let g = s(&c.path("nope.txt"));
    integrate_fails(&c, &i, &["--genes", &g], &["gene list", "nope.txt"]);
    let c = Case::new();
    let i = c.demo("in.h5ad");
    let g = s(&c.write("genes.txt", "NOT_A_GENE\n"));
    integrate_fails(&c, &i, &["--genes", &g], &["NOT_A_GENE", "not found"]);
}

// ---- input files ----

/// Input files that are not an h5ad: (set up in the case, error strings).
#[test]
fn unreadable_inputs_are_named() {
    type Input = fn(&Case) -> PathBuf;
    let cases: [(Input, &[&str]); 4] = [
        (|c| c.path("nope.h5ad"), &["nope.h5ad", "no such file"]),
        (
            |c| {
                std::fs::create_dir(c.path("d.h5ad")).unwrap();
                c.path("d.h5ad")
            },
            &["d.h5ad", "directory"],
        ),
        (
            |c| c.write("t.h5ad", "cell,gene,count\n"),
            &["t.h5ad", "not a valid HDF5"],
        ),
        (
            |c| {
                let bytes = std::fs::read(hostile::demo()).unwrap();
                std::fs::write(c.path("half.h5ad"), &bytes[..bytes.len() / 3]).unwrap();
                c.path("half.h5ad")
            },
            &["half.h5ad"],
        ),
    ];
    for (input, want) in cases {
        let c = Case::new();
        let p = input(&c);
        integrate_fails(&c, &p, &[], want);
    }
}

#[test]
fn zero_cells() {
    let c = Case::new();
    let p = c.path("empty.h5ad");
    let fx = Fixture {
        cells: vec![],
        genes: vec!["g0".into(), "g1".into()],
        values: vec![],
        batch: vec![],
        cell_type: vec![],
    };
    write_fixture(&p, &fx, XKind::CsrF32I32, None);
    integrate_fails(&c, &p, &[], &["empty.h5ad has no cells", "0 x 2"]);
    integrate_fails(&c, &p, &["--backed"], &["empty.h5ad has no cells"]);
}

/// The small fixture with one edit (as `kind`): (kind, edit, error strings).
#[test]
fn bad_counts_are_named() {
    type Edit = fn(&mut Fixture);
    let cases: [(XKind, Edit, &[&str]); 6] = [
        (
            XKind::CsrF64I64,
            |f| f.set(2, 1, -3.0),
            &["negative value -3", "cell2", "gene1"],
        ),
        (
            XKind::DenseF64,
            |f| f.set(0, 0, f64::NAN),
            &["non-finite", "cell0"],
        ),
        (
            XKind::CsrF64I64,
            |f| f.set(4, 0, 2.5),
            &["non-integer value 2.5", "--allow-non-integer"],
        ),
        (
            XKind::CsrF64I64,
            |f| f.set(4, 0, 1e300),
            &["1e300", "float32 maximum", "cell4"],
        ),
        (
            XKind::CsrF32I32,
            |f| f.cells[3] = "cell0".into(),
            &["duplicate cell name 'cell0'"],
        ),
        (
            XKind::CsrF32I32,
            |f| f.batch = vec!["b"; 5],
            &["single batch", "--allow-single-batch"],
        ),
    ];
    for (kind, edit, want) in cases {
        let c = Case::new();
        let p = small(&c, "x.h5ad", kind, edit);
        integrate_fails(&c, &p, &[], want);
    }
    // Every count zero: the file is named.
    let c = Case::new();
    let p = small(&c, "z.h5ad", XKind::CsrF64I64, |f| f.values.fill(0.0));
    integrate_fails(&c, &p, &[], &["z.h5ad", "no non-zero counts"]);
}

#[test]
fn subnormal_count_printed_readably() {
    let c = Case::new();
    let p = small(&c, "x.h5ad", XKind::CsrF64I64, |f| f.set(4, 0, 5e-324));
    let (i, o) = (s(&p), s(&c.path("o.h5ad")));
    let out = expect_error(&c, &["integrate", "-i", &i, "-o", &o], &["5e-324"]);
    let line = out
        .stderr
        .lines()
        .find(|l| l.starts_with("error:"))
        .unwrap();
    assert!(line.len() < 400, "{} characters: {line}", line.len());
}

/// `n` strings `f(i)`.
fn strings(n: usize, f: fn(usize) -> String) -> Vec<hdf5::types::VarLenUnicode> {
    (0..n).map(|i| f(i).parse().unwrap()).collect()
}

/// The small fixture (CSR of int64 and float64) with one dataset replaced: (dataset, its new
/// contents, error strings).
#[test]
fn broken_csr_parts_are_named() {
    type Replace = fn(&Path);
    let cases: [(Replace, &[&str]); 7] = [
        (
            |p| replace(p, "X/indices", &[0i64, 2, 0, 1, 3, 1, 2, 99]),
            &["column 99"],
        ),
        (
            |p| replace(p, "X/indptr", &[0i64, 2, 1, 5, 7, 8]),
            &["indptr decreases"],
        ),
        (
            |p| replace(p, "X/indptr", &[0i64, 2, 2]),
            &["indptr has 3 entries"],
        ),
        (
            |p| replace(p, "X/data", &[1.0f64, 3.0]),
            &["data has 2 values"],
        ),
        (|p| open_rw(p).unlink("X").unwrap(), &["no X matrix"]),
        (
            |p| replace(p, "X/data", &strings(8, |_| "1".into())),
            &["X/data holds str values"],
        ),
        (
            // Row 0 stores column 0 twice, each value below the float32 maximum, their sum above.
            |p| {
                replace(p, "X/indices", &[0i64, 0, 0, 1, 3, 1, 2, 0]);
                replace(p, "X/data", &[3e38f64, 3e38, 2.0, 5.0, 7.0, 1.0, 1.0, 9.0]);
            },
            &["overflows float32", "cell0"],
        ),
    ];
    for (edit, want) in cases {
        let c = Case::new();
        let p = small(&c, "x.h5ad", XKind::CsrF64I64, |_| {});
        edit(&p);
        integrate_fails(&c, &p, &[], want);
    }
    // A 1-D X and an obs shorter than X.
    let c = Case::new();
    let p = small(&c, "x.h5ad", XKind::DenseF64, |_| {});
    replace(&p, "X", &[1.0f64, 2.0, 3.0]);
    integrate_fails(&c, &p, &[], &["expected a 2-D matrix"]);
    let c = Case::new();
    let p = small(&c, "x.h5ad", XKind::CsrF32I32, |_| {});
    replace(&p, "obs/_index", &strings(4, |i| format!("c{i}")));
    integrate_fails(&c, &p, &[], &["x.h5ad"]);
}

// ---- 6. float16 X reads (anndata writes it) ----

#[test]
fn float16_x_written_by_the_hdf5_crate_integrates() {
    let c = Case::new();
    let p = small(&c, "x.h5ad", XKind::CsrF64I64, |_| {});
    let data: Vec<half::f16> = [1.0f32, 3.0, 2.0, 5.0, 7.0, 1.0, 1.0, 9.0]
        .iter()
        .map(|&v| half::f16::from_f32(v))
        .collect();
    replace(&p, "X/data", &data);
    let a = scdreamer::data::h5ad::read_h5ad(&p, &Default::default()).unwrap();
    assert_eq!(a.x_dtype, "float16");
    assert_eq!(a.x.data, vec![1.0, 3.0, 2.0, 5.0, 7.0, 1.0, 1.0, 9.0]);
}

/// anndata writes a dense float16 X (scipy.sparse has no float16); h5py writes a CSR one.
#[test]
fn float16_x_written_by_anndata_and_h5py_integrates() {
    let Some(py) = std::env::var_os("SCDREAMER_PYTHON") else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true needs SCDREAMER_PYTHON"
        );
        eprintln!("skipping: set SCDREAMER_PYTHON to a python with anndata and h5py");
        return;
    };
    let c = Case::new();
    let (dense, csr) = (c.path("dense16.h5ad"), c.path("csr16.h5ad"));
    let script = format!(
        "import anndata as ad, numpy as np, h5py, shutil\n\
         a = ad.read_h5ad({demo:?})\n\
         b = a.copy(); b.X = b.X.toarray().astype(np.float16); b.write_h5ad({dense:?})\n\
         shutil.copy({demo:?}, {csr:?})\n\
         with h5py.File({csr:?}, 'r+') as f:\n    d = f['X/data'][:]; del f['X/data']; f['X/data'] = d.astype(np.float16)\n",
        demo = s(&hostile::demo()),
        dense = s(&dense),
        csr = s(&csr)
    );
    let st = std::process::Command::new(py)
        .args(["-c", &script])
        .status()
        .unwrap();
    assert!(st.success());
    let want = scdreamer::data::h5ad::read_h5ad(&hostile::demo(), &Default::default()).unwrap();
    for p in [&dense, &csr] {
        let a = scdreamer::data::h5ad::read_h5ad(p, &Default::default()).unwrap();
        assert_eq!(a.x_dtype, "float16");
        // The demo's counts (at most 799) are exact in float16.
        assert_eq!(a.x.data, want.x.data, "{}", p.display());
        let o = c.path("o.h5ad");
        succeeds(
            "integrate -i {} -o {} --epochs 1 --hidden 16 --quiet",
            &[p, &o],
        );
    }
}

// ---- signals: SIGTERM like Ctrl-C, nothing left ----

/// Starts `args`, waits until `ready` says so (polled every 2 ms, at most 60 s), sends `sig`,
/// and returns the exit code.
fn signal_when(args: &[String], sig: i32, ready: impl Fn() -> bool) -> i32 {
    let mut child = std::process::Command::new(hostile::BIN)
        .args(args)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let t = std::time::Instant::now();
    while !ready() {
        assert!(
            child.try_wait().unwrap().is_none(),
            "finished before the signal"
        );
        assert!(t.elapsed().as_secs() < 60, "never became ready");
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    unsafe { libc::kill(child.id() as i32, sig) };
    let st = child.wait().unwrap();
    st.code()
        .unwrap_or_else(|| panic!("killed by the signal itself: {st:?}"))
}

#[test]
fn sigterm_during_training_leaves_nothing() {
    let c = Case::new();
    let i = c.demo("in.h5ad");
    let before = hostile::snapshot(c.dir.path());
    let args: Vec<String> = [
        "integrate",
        "-i",
        &s(&i),
        "-o",
        &s(&c.path("o.h5ad")),
        "--quiet",
    ]
    .iter()
    .map(|a| a.to_string())
    .collect();
    let t = std::time::Instant::now();
    let code = signal_when(&args, libc::SIGTERM, || t.elapsed().as_millis() > 1500);
    assert_eq!(code, 130);
    hostile::assert_unchanged(&before, &hostile::snapshot(c.dir.path()), &["sigterm"]);
}

#[test]
fn sigterm_while_the_temp_file_is_written_removes_it() {
    let c = Case::new();
    let o = c.path("sim.h5ad");
    let args: Vec<String> = [
        "simulate",
        "--cells",
        "200000",
        "--genes",
        "1000",
        "-o",
        &s(&o),
    ]
    .iter()
    .map(|a| a.to_string())
    .collect();
    let dir = c.dir.path().to_path_buf();
    let writing = || {
        std::fs::read_dir(&dir)
            .unwrap()
            .any(|e| e.unwrap().file_name().to_string_lossy().contains(".tmp-"))
    };
    let code = signal_when(&args, libc::SIGTERM, writing);
    assert_eq!(code, 130);
    let left: Vec<_> = std::fs::read_dir(c.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "left {left:?}");
}

// ---- messages that used to be unclear ----

#[test]
fn numeric_label_column_warns_in_one_line() {
    let c = Case::new();
    let i = c.demo("in.h5ad");
    let o = c.path("o.h5ad");
    let r = succeeds(
        "integrate -i {} -o {} --epochs 1 --hidden 16 --quiet --labels-key total_count_per_cell",
        &[&i, &o],
    );
    let warnings: Vec<&str> = r
        .stderr
        .lines()
        .filter(|l| l.starts_with("warning:"))
        .collect();
    assert_eq!(warnings.len(), 1, "{warnings:#?}");
    assert!(
        warnings[0].contains("is this a label column?"),
        "{}",
        warnings[0]
    );
}
