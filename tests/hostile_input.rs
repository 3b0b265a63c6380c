//! The bad-input suite (issue 20): crafted files, hostile flags, outputs that would land on an
//! input, full and read-only file systems, signals. Every case asserts the exit code (non-zero,
//! never 101/134/a signal), the `error:` message naming the problem, that no output or temp
//! file is left and that the inputs' bytes are unchanged (see `hostile/mod.rs`).

mod h5ad_fixtures;
mod hostile;

use std::path::{Path, PathBuf};

use h5ad_fixtures::{Fixture, XKind, write_fixture};
use hostile::{Case, expect_error, expect_fast_error, run};

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

/// `integrate` on `input` into `out.h5ad` of the case, plus `extra` flags: must fail naming
/// every string of `want`.
fn integrate_fails(case: &Case, input: &Path, extra: &[&str], want: &[&str]) {
    let (i, o) = (s(input), s(&case.path("out.h5ad")));
    let mut args = vec!["integrate", "-i", &i, "-o", &o, "--quiet", "--epochs", "1"];
    args.extend_from_slice(extra);
    expect_error(case, &args, want);
}

// ---- 1. sizes beyond memory: an error naming the flag, never an abort ----

#[test]
fn simulate_ten_billion_cells() {
    let c = Case::new();
    let o = s(&c.path("sim.h5ad"));
    let args = [
        "simulate",
        "--cells",
        "10000000000",
        "--genes",
        "100",
        "-o",
        &o,
    ];
    expect_fast_error(&c, &args, &["--cells 10000000000", "memory"]);
}

#[test]
fn integrate_hidden_width_of_a_trillion() {
    let c = Case::new();
    let i = c.demo("in.h5ad");
    integrate_fails(
        &c,
        &i,
        &["--hidden", "1000000000000"],
        &["--hidden 1000000000000", "memory"],
    );
}

#[test]
fn integrate_latent_of_a_trillion() {
    let c = Case::new();
    let i = c.demo("in.h5ad");
    integrate_fails(
        &c,
        &i,
        &["--latent", "1000000000000"],
        &["--latent 1000000000000", "memory"],
    );
}

#[test]
fn integrate_second_hidden_layer_of_ten_billion() {
    let c = Case::new();
    let i = c.demo("in.h5ad");
    integrate_fails(
        &c,
        &i,
        &["--hidden", "16,10000000000"],
        &["--hidden 16,10000000000", "memory"],
    );
}

#[test]
fn embed_config_with_hidden_width_of_a_trillion() {
    let c = Case::new();
    let m = c.model("m");
    c.edit_config(&m, |v| {
        v["run"]["model"]["hidden"] = serde_json::json!([1_000_000_000_000u64])
    });
    embed_fails(&c, &m, &c.demo("q.h5ad"), &["memory"]);
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

fn simulate_fails(extra: &[&str], want: &[&str]) {
    let c = Case::new();
    let o = s(&c.path("sim.h5ad"));
    let mut args = vec!["simulate", "--cells", "100", "--genes", "100", "-o", &o];
    args.extend_from_slice(extra);
    expect_fast_error(&c, &args, want);
}

#[test]
fn simulate_de_sd_400() {
    simulate_fails(&["--de-sd", "400"], &["--de-sd", "400"]);
}

#[test]
fn simulate_batch_sd_1000() {
    simulate_fails(&["--batch-sd", "1000"], &["--batch-sd", "1000"]);
}

#[test]
fn simulate_de_sd_10_would_exceed_float32_counts() {
    simulate_fails(&["--de-sd", "10"], &["--de-sd 10", "2^24"]);
}

#[test]
fn simulate_negative_batch_sd() {
    simulate_fails(&["--batch-sd=-1"], &["--batch-sd", "-1"]);
}

#[test]
fn simulate_density_above_one() {
    simulate_fails(&["--density", "2"], &["--density", "2"]);
}

#[test]
fn simulate_zero_cells() {
    let c = Case::new();
    let o = s(&c.path("sim.h5ad"));
    expect_fast_error(
        &c,
        &["simulate", "--cells", "0", "-o", &o],
        &["--cells", "0"],
    );
}

#[test]
fn simulate_more_types_than_cells() {
    simulate_fails(&["--types", "1000"], &["--types 1000"]);
}

#[test]
fn simulate_threads_zero() {
    simulate_fails(&["--threads", "0"], &["--threads"]);
}

#[test]
fn simulate_output_in_missing_directory() {
    let c = Case::new();
    let o = s(&c.path("no/sim.h5ad"));
    expect_fast_error(
        &c,
        &["simulate", "--cells", "10", "-o", &o],
        &["does not exist"],
    );
}

#[test]
fn simulate_output_is_a_directory() {
    let c = Case::new();
    std::fs::create_dir(c.path("d")).unwrap();
    let o = s(&c.path("d"));
    expect_fast_error(&c, &["simulate", "--cells", "10", "-o", &o], &["directory"]);
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

#[test]
fn embed_config_lists_fewer_genes_than_the_weights() {
    let c = Case::new();
    let m = c.model("m");
    c.edit_config(&m, |v| {
        v["genes"].as_array_mut().unwrap().pop();
    });
    embed_fails(
        &c,
        &m,
        &c.demo("q.h5ad"),
        &["config.json", "genes", "n_genes"],
    );
}

#[test]
fn embed_config_fewer_genes_and_matching_count() {
    let c = Case::new();
    let m = c.model("m");
    c.edit_config(&m, |v| {
        v["genes"].as_array_mut().unwrap().pop();
        let n = v["run"]["model"]["n_genes"].as_u64().unwrap();
        v["run"]["model"]["n_genes"] = (n - 1).into();
    });
    embed_fails(&c, &m, &c.demo("q.h5ad"), &["shape", "different models"]);
}

#[test]
fn embed_config_repeats_a_gene() {
    let c = Case::new();
    let m = c.model("m");
    c.edit_config(&m, |v| {
        let g = v["genes"][0].clone();
        v["genes"][1] = g;
    });
    embed_fails(&c, &m, &c.demo("q.h5ad"), &["genes", "more than once"]);
}

#[test]
fn embed_config_batch_list_longer_than_the_weights() {
    let c = Case::new();
    let m = c.model("m");
    c.edit_config(&m, |v| {
        v["batch_categories"]
            .as_array_mut()
            .unwrap()
            .push("extra".into());
    });
    embed_fails(
        &c,
        &m,
        &c.demo("q.h5ad"),
        &["batch_categories", "n_batches"],
    );
}

#[test]
fn embed_config_batch_list_and_count_both_changed() {
    let c = Case::new();
    let m = c.model("m");
    c.edit_config(&m, |v| {
        v["batch_categories"]
            .as_array_mut()
            .unwrap()
            .push("extra".into());
        let n = v["run"]["model"]["n_batches"].as_u64().unwrap();
        v["run"]["model"]["n_batches"] = (n + 1).into();
    });
    embed_fails(&c, &m, &c.demo("q.h5ad"), &["different models"]);
}

#[test]
fn embed_config_repeats_a_batch() {
    let c = Case::new();
    let m = c.model("m");
    c.edit_config(&m, |v| {
        let b = v["batch_categories"][0].clone();
        v["batch_categories"][1] = b;
    });
    embed_fails(
        &c,
        &m,
        &c.demo("q.h5ad"),
        &["batch_categories", "more than once"],
    );
}

#[test]
fn embed_config_hidden_zero() {
    let c = Case::new();
    let m = c.model("m");
    c.edit_config(&m, |v| v["run"]["model"]["hidden"] = serde_json::json!([0]));
    embed_fails(&c, &m, &c.demo("q.h5ad"), &["hidden"]);
}

#[test]
fn embed_config_not_json() {
    let c = Case::new();
    let m = c.model("m");
    std::fs::write(m.join("config.json"), "{ not json").unwrap();
    embed_fails(
        &c,
        &m,
        &c.demo("q.h5ad"),
        &["config.json", "not a valid model config"],
    );
}

#[test]
fn embed_config_from_a_newer_format() {
    let c = Case::new();
    let m = c.model("m");
    c.edit_config(&m, |v| v["format_version"] = 99.into());
    embed_fails(&c, &m, &c.demo("q.h5ad"), &["format version 99"]);
}

#[test]
fn embed_weights_missing() {
    let c = Case::new();
    let m = c.model("m");
    std::fs::remove_file(m.join("weights.safetensors")).unwrap();
    embed_fails(&c, &m, &c.demo("q.h5ad"), &["weights.safetensors"]);
}

#[test]
fn embed_weights_not_safetensors() {
    let c = Case::new();
    let m = c.model("m");
    std::fs::write(m.join("weights.safetensors"), b"\x01\x02garbage").unwrap();
    embed_fails(&c, &m, &c.demo("q.h5ad"), &["not a valid safetensors file"]);
}

#[test]
fn embed_model_directory_missing() {
    let c = Case::new();
    embed_fails(
        &c,
        &c.path("nope"),
        &c.demo("q.h5ad"),
        &["config.json", "saved scdreamer model"],
    );
}

#[test]
fn embed_unknown_batch() {
    let c = Case::new();
    let m = c.model("m");
    c.edit_config(&m, |v| v["batch_key"] = "cell_type".into());
    embed_fails(&c, &m, &c.demo("q.h5ad"), &["not trained on"]);
}

#[test]
fn embed_query_lacks_a_gene() {
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
    let r = run(&[
        "integrate",
        "-i",
        &s(&i),
        "-o",
        &s(&o),
        "--epochs",
        "2",
        "--hidden",
        "16",
        "--all-genes",
        "--quiet",
        "--save-model",
        &s(&m),
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains("occur more than once"), "{}", r.stderr);
    let e = c.path("emb.h5ad");
    let r = run(&[
        "embed",
        "--model",
        &s(&m),
        "-i",
        &s(&i),
        "-o",
        &s(&e),
        "--quiet",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let read = |p: &Path| -> Vec<f32> {
        let f = scdreamer::data::h5ad::open_h5(p).unwrap();
        f.dataset("obsm/X_scdreamer").unwrap().read_raw().unwrap()
    };
    let (a, b) = (read(&o), read(&e));
    let worst = a
        .iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0f32, f32::max);
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

fn integrate_fast_fails(c: &Case, input: &Path, output: &Path, extra: &[&str], want: &[&str]) {
    let (i, o) = (s(input), s(output));
    let mut args = vec!["integrate", "-i", &i, "-o", &o, "--quiet"];
    args.extend_from_slice(extra);
    expect_fast_error(c, &args, want);
}

#[test]
fn output_is_the_input() {
    let c = Case::new();
    let i = c.demo("in.h5ad");
    integrate_fast_fails(&c, &i, &i, &[], &["onto the input", "in.h5ad"]);
}

#[test]
fn output_is_a_symlink_to_the_input() {
    let c = Case::new();
    let i = c.demo("in.h5ad");
    std::os::unix::fs::symlink(&i, c.path("link.h5ad")).unwrap();
    integrate_fast_fails(&c, &i, &c.path("link.h5ad"), &[], &["onto the input"]);
}

#[test]
fn output_is_a_hard_link_to_the_input() {
    let c = Case::new();
    let i = c.demo("in.h5ad");
    std::fs::hard_link(&i, c.path("hard.h5ad")).unwrap();
    integrate_fast_fails(&c, &i, &c.path("hard.h5ad"), &[], &["onto the input"]);
}

#[test]
fn output_through_dot_dot_is_the_input() {
    let c = Case::new();
    let i = c.demo("in.h5ad");
    std::fs::create_dir(c.path("sub")).unwrap();
    integrate_fast_fails(&c, &i, &c.path("sub/../in.h5ad"), &[], &["onto the input"]);
}

#[test]
fn output_through_a_missing_directory_and_dot_dot_is_the_input() {
    let c = Case::new();
    let i = c.demo("in.h5ad");
    integrate_fast_fails(
        &c,
        &i,
        &c.path("nosuch/../in.h5ad"),
        &[],
        &["onto the input"],
    );
}

#[test]
fn training_log_csv_would_overwrite_the_input() {
    let c = Case::new();
    let i = c.demo("run.log.csv");
    integrate_fast_fails(
        &c,
        &i,
        &c.path("run.h5ad"),
        &[],
        &["training log", "onto the input"],
    );
}

#[test]
fn training_log_json_would_overwrite_the_input() {
    let c = Case::new();
    let i = c.demo("run.log.json");
    integrate_fast_fails(
        &c,
        &i,
        &c.path("run.h5ad"),
        &[],
        &["training log", "onto the input"],
    );
}

#[test]
fn saved_weights_would_overwrite_the_input() {
    let c = Case::new();
    std::fs::create_dir(c.path("m")).unwrap();
    let i = c.demo("m/weights.safetensors");
    let m = s(&c.path("m"));
    integrate_fast_fails(
        &c,
        &i,
        &c.path("o.h5ad"),
        &["--save-model", &m],
        &["--save-model", "onto the input"],
    );
}

#[test]
fn saved_config_would_overwrite_the_input() {
    let c = Case::new();
    std::fs::create_dir(c.path("m")).unwrap();
    let i = c.demo("m/config.json");
    let m = s(&c.path("m"));
    integrate_fast_fails(
        &c,
        &i,
        &c.path("o.h5ad"),
        &["--save-model", &m],
        &["config.json", "onto the input"],
    );
}

#[test]
fn save_model_is_the_input_file() {
    let c = Case::new();
    let i = c.demo("in.h5ad");
    let m = s(&i);
    integrate_fast_fails(
        &c,
        &i,
        &c.path("o.h5ad"),
        &["--save-model", &m],
        &["--save-model"],
    );
}

#[test]
fn save_model_is_an_existing_file() {
    let c = Case::new();
    let i = c.demo("in.h5ad");
    let m = s(&c.write("model", "x"));
    integrate_fast_fails(
        &c,
        &i,
        &c.path("o.h5ad"),
        &["--save-model", &m],
        &["--save-model", "not a directory"],
    );
}

#[test]
fn save_model_below_a_file() {
    let c = Case::new();
    let i = c.demo("in.h5ad");
    c.write("f", "x");
    let m = s(&c.path("f/model"));
    integrate_fast_fails(
        &c,
        &i,
        &c.path("o.h5ad"),
        &["--save-model", &m],
        &["--save-model", "not a directory"],
    );
}

#[test]
fn output_inside_the_model_directory_clashes() {
    let c = Case::new();
    let i = c.demo("in.h5ad");
    let m = s(&c.path("m"));
    integrate_fast_fails(
        &c,
        &i,
        &c.path("m/weights.safetensors"),
        &["--save-model", &m],
        &["same path"],
    );
}

#[test]
fn genes_file_is_the_output() {
    let c = Case::new();
    let i = c.demo("in.h5ad");
    let g = c.write("genes.txt", "A\n");
    integrate_fast_fails(
        &c,
        &i,
        &g,
        &["--genes", &s(&g)],
        &["--genes", "onto the input"],
    );
}

#[test]
fn output_directory_missing() {
    let c = Case::new();
    let i = c.demo("in.h5ad");
    integrate_fast_fails(
        &c,
        &i,
        &c.path("typo/out.h5ad"),
        &[],
        &["typo", "does not exist"],
    );
}

#[test]
fn output_is_an_existing_directory() {
    let c = Case::new();
    let i = c.demo("in.h5ad");
    std::fs::create_dir(c.path("d")).unwrap();
    integrate_fast_fails(&c, &i, &c.path("d"), &[], &["existing directory"]);
}

#[test]
fn backed_output_is_the_input() {
    let c = Case::new();
    let i = c.demo("in.h5ad");
    integrate_fast_fails(&c, &i, &i, &["--backed"], &["onto the input"]);
}

#[test]
fn embed_output_is_the_input() {
    let c = Case::new();
    let (m, q) = (c.model("m"), c.demo("q.h5ad"));
    let (m, q) = (s(&m), s(&q));
    expect_fast_error(
        &c,
        &["embed", "--model", &m, "-i", &q, "-o", &q],
        &["onto the input"],
    );
}

#[test]
fn embed_output_is_the_model_weights() {
    let c = Case::new();
    let (m, q) = (c.model("m"), c.demo("q.h5ad"));
    let w = s(&m.join("weights.safetensors"));
    let (m, q) = (s(&m), s(&q));
    expect_fast_error(
        &c,
        &["embed", "--model", &m, "-i", &q, "-o", &w],
        &["onto the input", "--model"],
    );
}

#[test]
fn embed_output_directory_missing() {
    let c = Case::new();
    let (m, q) = (c.model("m"), c.demo("q.h5ad"));
    let o = s(&c.path("no/out.h5ad"));
    let (m, q) = (s(&m), s(&q));
    expect_fast_error(
        &c,
        &["embed", "--model", &m, "-i", &q, "-o", &o],
        &["does not exist"],
    );
}

#[test]
fn read_only_file_system_output() {
    if !hostile::can_mount() {
        return;
    }
    let c = Case::new();
    let i = c.demo("in.h5ad");
    std::fs::create_dir(c.path("ro")).unwrap();
    let o = s(&c.path("ro/out.h5ad"));
    let before = hostile::snapshot(c.dir.path());
    let (out, left) = hostile::run_on_tmpfs(
        &c.path("ro"),
        "ro,size=1m",
        &["integrate", "-i", &s(&i), "-o", &o, "--quiet"],
    );
    assert_ne!(out.code, 0);
    assert!(
        out.stderr.contains("error: cannot write --output"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.to_lowercase().contains("read-only"),
        "{}",
        out.stderr
    );
    assert!(out.elapsed.as_secs_f64() < 1.0, "took {:?}", out.elapsed);
    assert_eq!(left, "");
    hostile::assert_unchanged(&before, &hostile::snapshot(c.dir.path()), &["read-only"]);
}

#[test]
fn read_only_file_system_save_model() {
    if !hostile::can_mount() {
        return;
    }
    let c = Case::new();
    let i = c.demo("in.h5ad");
    std::fs::create_dir(c.path("ro")).unwrap();
    let (o, m) = (s(&c.path("o.h5ad")), s(&c.path("ro/model")));
    let before = hostile::snapshot(c.dir.path());
    let (out, left) = hostile::run_on_tmpfs(
        &c.path("ro"),
        "ro,size=1m",
        &[
            "integrate",
            "-i",
            &s(&i),
            "-o",
            &o,
            "--quiet",
            "--save-model",
            &m,
        ],
    );
    assert_ne!(out.code, 0);
    assert!(
        out.stderr.contains("error: cannot write --save-model"),
        "{}",
        out.stderr
    );
    assert_eq!(left, "");
    hostile::assert_unchanged(
        &before,
        &hostile::snapshot(c.dir.path()),
        &["read-only model"],
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

// ---- flags: ranges checked before the input is read ----

fn flag_fails(extra: &[&str], want: &[&str]) {
    let c = Case::new();
    let i = c.demo("in.h5ad");
    integrate_fails(&c, &i, extra, want);
}

#[test]
fn n_top_genes_zero() {
    flag_fails(&["--n-top-genes", "0"], &["--n-top-genes", "at least 1"]);
}

#[test]
fn hidden_zero() {
    flag_fails(&["--hidden", "0"], &["--hidden"]);
}

#[test]
fn batch_size_one() {
    flag_fails(&["--batch-size", "1"], &["--batch-size"]);
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
fn negative_learning_rate() {
    flag_fails(&["--lr=-0.001"], &["--lr", "-0.001"]);
}

#[test]
fn nan_learning_rate() {
    flag_fails(&["--lr", "NaN"], &["--lr", "NaN"]);
}

#[test]
fn negative_kl_weight() {
    flag_fails(&["--kl-weight=-1"], &["--kl-weight", "-1"]);
}

#[test]
fn infinite_batch_adversary_weight() {
    flag_fails(
        &["--batch-adv-weight", "inf"],
        &["--batch-adv-weight", "inf"],
    );
}

#[test]
fn threads_zero() {
    flag_fails(&["--threads", "0"], &["--threads"]);
}

#[test]
fn threads_a_billion() {
    flag_fails(&["--threads", "1000000000"], &["--threads 1000000000"]);
}

#[test]
fn chunk_cells_without_backed() {
    flag_fails(&["--chunk-cells", "100"], &["--chunk-cells", "--backed"]);
}

#[test]
fn chunk_cells_zero() {
    flag_fails(&["--backed", "--chunk-cells", "0"], &["--chunk-cells"]);
}

#[test]
fn batch_key_missing() {
    flag_fails(
        &["--batch-key", "donor"],
        &["'donor'", "available obs keys"],
    );
}

#[test]
fn batch_key_with_one_value_per_cell() {
    flag_fails(
        &["--batch-key", "total_count_per_cell"],
        &["total_count_per_cell", "per-cell"],
    );
}

#[test]
fn transform_batch_unknown() {
    flag_fails(
        &["--transform-batch", "nope"],
        &["--transform-batch", "'nope'"],
    );
}

#[test]
fn labels_key_missing() {
    flag_fails(
        &["--labels-key", "celltype"],
        &["'celltype'", "--labels-key"],
    );
}

#[test]
fn layer_missing() {
    flag_fails(&["--layer", "counts"], &["layer 'counts' not found"]);
}

#[test]
fn genes_file_missing() {
    let c = Case::new();
    let i = c.demo("in.h5ad");
    let g = s(&c.path("nope.txt"));
    integrate_fails(&c, &i, &["--genes", &g], &["gene list", "nope.txt"]);
}

#[test]
fn genes_file_with_unknown_gene() {
    let c = Case::new();
    let i = c.demo("in.h5ad");
    let g = s(&c.write("genes.txt", "NOT_A_GENE\n"));
    integrate_fails(&c, &i, &["--genes", &g], &["NOT_A_GENE", "not found"]);
}

#[test]
fn single_batch_without_the_flag() {
    let c = Case::new();
    let p = small(&c, "x.h5ad", XKind::CsrF32I32, |f| f.batch = vec!["b"; 5]);
    integrate_fails(&c, &p, &[], &["single batch", "--allow-single-batch"]);
}

// ---- input files ----

#[test]
fn input_missing() {
    let c = Case::new();
    integrate_fails(
        &c,
        &c.path("nope.h5ad"),
        &[],
        &["nope.h5ad", "no such file"],
    );
}

#[test]
fn input_is_a_directory() {
    let c = Case::new();
    std::fs::create_dir(c.path("d.h5ad")).unwrap();
    integrate_fails(&c, &c.path("d.h5ad"), &[], &["d.h5ad", "directory"]);
}

#[test]
fn input_is_text() {
    let c = Case::new();
    let p = c.write("t.h5ad", "cell,gene,count\n");
    integrate_fails(&c, &p, &[], &["t.h5ad", "not a valid HDF5"]);
}

#[test]
fn input_truncated() {
    let c = Case::new();
    let bytes = std::fs::read(hostile::demo()).unwrap();
    let p = c.path("half.h5ad");
    std::fs::write(&p, &bytes[..bytes.len() / 3]).unwrap();
    integrate_fails(&c, &p, &[], &["half.h5ad"]);
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

#[test]
fn all_counts_zero() {
    let c = Case::new();
    let p = small(&c, "z.h5ad", XKind::CsrF64I64, |f| {
        f.values.iter_mut().for_each(|v| *v = 0.0)
    });
    integrate_fails(&c, &p, &[], &["z.h5ad", "no non-zero counts"]);
}

#[test]
fn negative_count() {
    let c = Case::new();
    let p = small(&c, "x.h5ad", XKind::CsrF64I64, |f| f.set(2, 1, -3.0));
    integrate_fails(&c, &p, &[], &["negative value -3", "cell2", "gene1"]);
}

#[test]
fn nan_count() {
    let c = Case::new();
    let p = small(&c, "x.h5ad", XKind::DenseF64, |f| f.set(0, 0, f64::NAN));
    integrate_fails(&c, &p, &[], &["non-finite", "cell0"]);
}

#[test]
fn non_integer_count() {
    let c = Case::new();
    let p = small(&c, "x.h5ad", XKind::CsrF64I64, |f| f.set(4, 0, 2.5));
    integrate_fails(
        &c,
        &p,
        &[],
        &["non-integer value 2.5", "--allow-non-integer"],
    );
}

#[test]
fn float64_count_above_the_float32_maximum() {
    let c = Case::new();
    let p = small(&c, "x.h5ad", XKind::CsrF64I64, |f| f.set(4, 0, 1e300));
    integrate_fails(&c, &p, &[], &["1e300", "float32 maximum", "cell4"]);
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

#[test]
fn csr_column_index_out_of_range() {
    let c = Case::new();
    let p = small(&c, "x.h5ad", XKind::CsrF64I64, |_| {});
    replace(&p, "X/indices", &[0i64, 2, 0, 1, 3, 1, 2, 99]);
    integrate_fails(&c, &p, &[], &["column 99"]);
}

#[test]
fn csr_indptr_decreasing() {
    let c = Case::new();
    let p = small(&c, "x.h5ad", XKind::CsrF64I64, |_| {});
    replace(&p, "X/indptr", &[0i64, 2, 1, 5, 7, 8]);
    integrate_fails(&c, &p, &[], &["indptr decreases"]);
}

#[test]
fn csr_indptr_too_short() {
    let c = Case::new();
    let p = small(&c, "x.h5ad", XKind::CsrF64I64, |_| {});
    replace(&p, "X/indptr", &[0i64, 2, 2]);
    integrate_fails(&c, &p, &[], &["indptr has 3 entries"]);
}

#[test]
fn csr_data_and_indices_differ_in_length() {
    let c = Case::new();
    let p = small(&c, "x.h5ad", XKind::CsrF64I64, |_| {});
    replace(&p, "X/data", &[1.0f64, 3.0]);
    integrate_fails(&c, &p, &[], &["data has 2 values"]);
}

#[test]
fn x_missing() {
    let c = Case::new();
    let p = small(&c, "x.h5ad", XKind::CsrF64I64, |_| {});
    open_rw(&p).unlink("X").unwrap();
    integrate_fails(&c, &p, &[], &["no X matrix"]);
}

#[test]
fn x_is_one_dimensional() {
    let c = Case::new();
    let p = small(&c, "x.h5ad", XKind::DenseF64, |_| {});
    replace(&p, "X", &[1.0f64, 2.0, 3.0]);
    integrate_fails(&c, &p, &[], &["expected a 2-D matrix"]);
}

#[test]
fn x_holds_strings() {
    let c = Case::new();
    let p = small(&c, "x.h5ad", XKind::CsrF64I64, |_| {});
    let v: Vec<hdf5::types::VarLenUnicode> = (0..8).map(|_| "1".parse().unwrap()).collect();
    replace(&p, "X/data", &v);
    integrate_fails(&c, &p, &[], &["X/data holds str values"]);
}

#[test]
fn repeated_cell_names() {
    let c = Case::new();
    let p = small(&c, "x.h5ad", XKind::CsrF32I32, |f| {
        f.cells[3] = "cell0".into()
    });
    integrate_fails(&c, &p, &[], &["duplicate cell name 'cell0'"]);
}

#[test]
fn obs_shorter_than_x() {
    let c = Case::new();
    let p = small(&c, "x.h5ad", XKind::CsrF32I32, |_| {});
    let v: Vec<hdf5::types::VarLenUnicode> =
        (0..4).map(|i| format!("c{i}").parse().unwrap()).collect();
    replace(&p, "obs/_index", &v);
    integrate_fails(&c, &p, &[], &["x.h5ad"]);
}

#[test]
fn repeated_entries_overflowing_float32() {
    let c = Case::new();
    let p = small(&c, "x.h5ad", XKind::CsrF64I64, |_| {});
    // Row 0 stores column 0 twice, each value below the float32 maximum, their sum above.
    replace(&p, "X/indices", &[0i64, 0, 0, 1, 3, 1, 2, 0]);
    replace(&p, "X/data", &[3e38f64, 3e38, 2.0, 5.0, 7.0, 1.0, 1.0, 9.0]);
    integrate_fails(&c, &p, &[], &["overflows float32", "cell0"]);
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
        let r = run(&[
            "integrate",
            "-i",
            &s(p),
            "-o",
            &s(&o),
            "--epochs",
            "1",
            "--hidden",
            "16",
            "--quiet",
        ]);
        assert_eq!(r.code, 0, "{}", r.stderr);
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
    let r = run(&[
        "integrate",
        "-i",
        &s(&i),
        "-o",
        &s(&o),
        "--epochs",
        "1",
        "--hidden",
        "16",
        "--quiet",
        "--labels-key",
        "total_count_per_cell",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
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
