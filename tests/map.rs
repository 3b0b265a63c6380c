//! `scdreamer map` end to end through the binary: a held-out batch of a simulation (with a cell
//! type the reference lacks) and of the demo is mapped onto a scDREAMER-Sup model trained on the
//! other batches; labels transfer, the novel type gets low confidence, the reference embeds
//! exactly as before the surgery, the extended model serves `embed`, and bad inputs fail clearly
//! without writing anything.

mod common;

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use common::{DEMO, argv, argv_plus, embedding as obsm, read, run, s};
use scdreamer::data::anndata::Column;
use scdreamer::data::h5ad::{Results, write_h5ad};
use scdreamer::data::{AnnData, Frame};
use scdreamer::model::sup_screen::DISAGREE_THRESHOLD;

/// Runs `words` with `paths` (see [`argv`]), which must succeed; returns its stderr.
fn ok(words: &str, paths: &[&dyn AsRef<Path>]) -> String {
    run(&argv(words, paths)).expect_ok(words)
}

fn obs_strings(frame: &Frame, key: &str) -> Vec<String> {
    let col = frame.get(key).unwrap_or_else(|| panic!("no obs['{key}']"));
    (0..col.len()).map(|i| col.label(i).unwrap()).collect()
}

fn confidence(path: &Path) -> Vec<f32> {
    match read(path).obs.get("scdreamer_label_confidence") {
        Some(Column::F32(v)) => v.clone(),
        other => panic!("confidence column: {other:?}"),
    }
}

/// The cells `keep` of `a`, written to `path`.
fn write_subset(a: &AnnData, keep: &[usize], path: &Path) {
    let cols: Vec<usize> = (0..a.n_vars()).collect();
    let sub = AnnData {
        x: a.x.select(keep, &cols),
        obs: a.obs.select(keep),
        var: a.var.clone(),
        x_encoding: a.x_encoding.clone(),
        x_dtype: a.x_dtype.clone(),
    };
    write_h5ad(path, &sub, &Results::default()).unwrap();
}

/// Macro-F1 over the true classes.
fn macro_f1(truth: &[String], pred: &[String]) -> f64 {
    let mut classes: Vec<&String> = truth.iter().collect();
    classes.sort();
    classes.dedup();
    let f1: Vec<f64> = classes
        .iter()
        .map(|c| {
            let tp = truth
                .iter()
                .zip(pred)
                .filter(|(t, p)| t == c && p == c)
                .count() as f64;
            let fp = truth
                .iter()
                .zip(pred)
                .filter(|(t, p)| t != c && p == c)
                .count() as f64;
            let fn_ = truth
                .iter()
                .zip(pred)
                .filter(|(t, p)| t == c && p != c)
                .count() as f64;
            if tp == 0.0 {
                0.0
            } else {
                2.0 * tp / (2.0 * tp + fp + fn_)
            }
        })
        .collect();
    f1.iter().sum::<f64>() / f1.len() as f64
}

/// P(score of a positive > score of a negative), ties half.
fn auroc(score: &[f32], positive: &[bool]) -> f64 {
    let (mut wins, mut pairs) = (0.0, 0.0);
    for (i, &pi) in positive.iter().enumerate() {
        for (j, &pj) in positive.iter().enumerate() {
            if pi && !pj {
                pairs += 1.0;
                wins += match score[i].partial_cmp(&score[j]).unwrap() {
                    std::cmp::Ordering::Greater => 1.0,
                    std::cmp::Ordering::Equal => 0.5,
                    std::cmp::Ordering::Less => 0.0,
                };
            }
        }
    }
    wins / pairs
}

struct Split {
    dir: tempfile::TempDir,
    reference: PathBuf,
    query: PathBuf,
    model: PathBuf,
    truth: Vec<String>,
}

/// Writes the cells of batch `query_batch` as the query and the others (without type
/// `novel`) as the reference, and trains a Sup model on the reference.
fn split_and_train(input: &Path, query_batch: &str, novel: Option<&str>, epochs: usize) -> Split {
    let dir = tempfile::tempdir().unwrap();
    let a = read(input);
    let batch = obs_strings(&a.obs, "batch");
    let types = obs_strings(&a.obs, "cell_type");
    let q: Vec<usize> = (0..a.n_obs())
        .filter(|&i| batch[i] == query_batch)
        .collect();
    let r: Vec<usize> = (0..a.n_obs())
        .filter(|&i| batch[i] != query_batch && Some(types[i].as_str()) != novel)
        .collect();
    assert!(!q.is_empty() && !r.is_empty());
    let reference = dir.path().join("reference.h5ad");
    let query = dir.path().join("query.h5ad");
    write_subset(&a, &r, &reference);
    write_subset(&a, &q, &query);
    let (model, ref_out) = (dir.path().join("model"), dir.path().join("ref_out.h5ad"));
    let train = format!(
        "integrate --input {{}} --labels-key cell_type --epochs {epochs} --quiet --output {{}} \
         --save-model {{}}"
    );
    ok(&train, &[&reference, &ref_out, &model]);
    let truth = q.iter().map(|&i| types[i].clone()).collect();
    Split {
        dir,
        reference,
        query,
        model,
        truth,
    }
}

fn simulation(dir: &Path) -> PathBuf {
    let sim = dir.join("sim.h5ad");
    ok(
        "simulate --cells 2400 --genes 500 --batches 4 --types 5 --seed 4 --output {}",
        &[&sim],
    );
    sim
}

/// Simulation, batch3 held out, type4 absent from the reference: the known types transfer,
/// the novel one is flagged by its low confidence, and the surgery leaves the reference alone.
#[test]
fn simulated_query_with_a_novel_type_maps_onto_a_sup_model() {
    let tmp = tempfile::tempdir().unwrap();
    let sim = simulation(tmp.path());
    let sp = split_and_train(&sim, "batch3", Some("type4"), 40);
    let d = sp.dir.path();
    let (out, ext) = (d.join("query_out.h5ad"), d.join("extended"));
    let log = ok(
        "map --model {} --input {} --output {} --save-model {} --quiet",
        &[&sp.model, &sp.query, &out, &ext],
    );
    assert!(
        log.contains("1 new batch(es): batch3 from the mean"),
        "{log}"
    );
    let o = read(&out);
    assert_eq!(o.n_obs(), sp.truth.len());
    let z = obsm(&out);
    assert_eq!(z.len(), sp.truth.len() * 10);
    assert!(z.iter().all(|v| v.is_finite()));

    let best = obs_strings(&o.obs, "scdreamer_label_best");
    let label = obs_strings(&o.obs, "scdreamer_label");
    let conf = confidence(&out);
    let known: Vec<usize> = (0..best.len())
        .filter(|&i| sp.truth[i] != "type4")
        .collect();
    let f1 = macro_f1(
        &known
            .iter()
            .map(|&i| sp.truth[i].clone())
            .collect::<Vec<_>>(),
        &known.iter().map(|&i| best[i].clone()).collect::<Vec<_>>(),
    );
    assert!(f1 >= 0.9, "known-type macro-F1 {f1}");
    let novel: Vec<bool> = sp.truth.iter().map(|t| t == "type4").collect();
    let doubt: Vec<f32> = conf.iter().map(|c| 1.0 - c).collect();
    let au = auroc(&doubt, &novel);
    assert!(au >= 0.8, "novel-type AUROC {au}");
    // Unknown where (and only where) the confidence is below the default threshold.
    for i in 0..label.len() {
        assert_eq!(label[i] == "Unknown", conf[i] < 0.85, "cell {i}");
        assert!(label[i] == "Unknown" || label[i] == best[i]);
    }
    let unknown_novel = (0..label.len())
        .filter(|&i| novel[i] && label[i] == "Unknown")
        .count();
    let unknown_known = known.iter().filter(|&&i| label[i] == "Unknown").count();
    assert!(
        unknown_novel as f64 / novel.iter().filter(|&&n| n).count() as f64
            > unknown_known as f64 / known.len() as f64,
        "Unknown is not more frequent among novel cells"
    );

    // The reference embeds bit-identically with the extended model, and `embed` reproduces
    // the mapped query's embedding from the saved extended model.
    let (r0, r1, q1) = (d.join("r0.h5ad"), d.join("r1.h5ad"), d.join("q1.h5ad"));
    let embed = "embed --model {} --input {} --output {} --quiet";
    ok(embed, &[&sp.model, &sp.reference, &r0]);
    ok(embed, &[&ext, &sp.reference, &r1]);
    assert_eq!(
        obsm(&r0),
        obsm(&r1),
        "surgery changed the reference's embedding"
    );
    ok(embed, &[&ext, &sp.query, &q1]);
    assert_eq!(
        obsm(&q1),
        z,
        "embed with the extended model differs from map"
    );

    // Training the new batch's rows (reference frozen) still leaves the reference unchanged.
    let (out2, ext2, r2) = (d.join("q2.h5ad"), d.join("ext2"), d.join("r2.h5ad"));
    ok(
        "map --model {} --input {} --output {} --epochs 3 --save-model {} --quiet",
        &[&sp.model, &sp.query, &out2, &ext2],
    );
    ok(embed, &[&ext2, &sp.reference, &r2]);
    assert_eq!(
        obsm(&r0),
        obsm(&r2),
        "query training moved a reference weight"
    );
    assert_ne!(obsm(&out2), z, "query training changed nothing");
}

/// The demo (3 platforms): the Drop-seq cells mapped onto a model of the other two platforms.
#[test]
fn demo_held_out_platform_gets_its_labels() {
    let sp = split_and_train(Path::new(DEMO), "Drop-seq", None, 40);
    let out = sp.dir.path().join("q.h5ad");
    let map = "map --model {} --input {} --output {} --quiet";
    ok(map, &[&sp.model, &sp.query, &out]);
    let best = obs_strings(&read(&out).obs, "scdreamer_label_best");
    let f1 = macro_f1(&sp.truth, &best);
    assert!(f1 >= 0.95, "demo query macro-F1 {f1}");
    // Starting from the closest reference platform instead of the mean.
    let out2 = sp.dir.path().join("q2.h5ad");
    let closest = ["--batch-init", "closest", "--labels-key", "cell_type"];
    let log = run(&argv_plus(map, &[&sp.model, &sp.query, &out2], &closest)).expect_ok(map);
    assert!(log.contains("Drop-seq from a copy of"), "{log}");
    let o2 = read(&out2);
    let best = obs_strings(&o2.obs, "scdreamer_label_best");
    // The query's own labels (the truth here): a cell disagrees exactly when its confident
    // prediction is another type.
    let Some(Column::Bool(flags)) = o2.obs.get("scdreamer_label_disagrees") else {
        panic!("no bool obs['scdreamer_label_disagrees']")
    };
    let conf = confidence(&out2);
    for i in 0..best.len() {
        assert_eq!(
            flags[i],
            best[i] != sp.truth[i] && conf[i] >= DISAGREE_THRESHOLD,
            "cell {i}"
        );
    }
    let f1 = macro_f1(&sp.truth, &best);
    assert!(
        f1 >= 0.95,
        "demo query macro-F1 from the closest platform {f1}"
    );
}

/// Bad inputs: a clear error, a non-zero exit and neither the output nor the model written.
#[test]
fn bad_inputs_fail_clearly_and_write_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let sim = d.join("sim.h5ad");
    ok(
        "simulate --cells 300 --genes 100 --batches 3 --types 3 --seed 1 --output {}",
        &[&sim],
    );
    let model = d.join("model");
    ok(
        "integrate --input {} --labels-key cell_type --epochs 2 --quiet --output {} \
         --save-model {}",
        &[&sim, &d.join("o.h5ad"), &model],
    );
    let a = read(&sim);
    let all: Vec<usize> = (0..a.n_obs()).collect();
    // A query with other gene names, one without 5 of the genes, and one with no cells.
    let mut renamed = a.clone();
    renamed.var.index = (0..a.n_vars()).map(|j| format!("ENSG{j:05}")).collect();
    let renamed_path = d.join("renamed.h5ad");
    write_subset(&renamed, &all, &renamed_path);
    let mut fewer = a.clone();
    fewer.x = a.x.select(&all, &(5..a.n_vars()).collect::<Vec<_>>());
    fewer.var = a.var.select(&(5..a.n_vars()).collect::<Vec<_>>());
    let fewer_path = d.join("fewer.h5ad");
    write_subset(&fewer, &all, &fewer_path);
    let empty_path = d.join("empty.h5ad");
    write_subset(&a, &[], &empty_path);
    let not_model = d.join("not_a_model");
    std::fs::create_dir(&not_model).unwrap();

    let (out, ext) = (d.join("out.h5ad"), d.join("ext"));
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["--model", s(&not_model), "--input", s(&sim)],
            "a saved scdreamer model",
        ),
        (
            vec!["--model", s(&model), "--input", s(&renamed_path)],
            "none of the model's 100 genes",
        ),
        (
            vec!["--model", s(&model), "--input", s(&empty_path)],
            "no cells",
        ),
        (
            vec![
                "--model",
                s(&model),
                "--input",
                s(&sim),
                "--batch-key",
                "donor",
            ],
            "'donor'",
        ),
        (
            vec!["--model", s(&model), "--input", s(&fewer_path)],
            "lacks 5 of the model's 100 genes",
        ),
        (
            vec![
                "--model",
                s(&model),
                "--input",
                s(&sim),
                "--unknown-threshold",
                "2",
            ],
            "--unknown-threshold",
        ),
    ];
    for (args, want) in cases {
        let mut full = vec!["map"];
        full.extend(&args);
        full.extend(["--output", s(&out), "--save-model", s(&ext), "--quiet"]);
        let (success, err) = run(&full).status();
        assert!(!success, "{args:?} succeeded");
        assert!(
            err.contains("error:") && err.contains(want),
            "{args:?}: {err}"
        );
        assert!(!out.exists() && !ext.exists(), "{args:?} wrote an output");
    }
    // Missing genes as zeros, on request, with a warning naming how many.
    let log = ok(
        "map --model {} --input {} --fill-missing-genes --output {} --quiet",
        &[&model, &fewer_path, &out],
    );
    assert!(log.contains("lacks 5 of the model's 100 genes"), "{log}");
    let o = read(&out);
    assert_eq!(o.n_vars(), 100);
    let names: HashSet<&str> = o.var.index.iter().map(String::as_str).collect();
    assert_eq!(names.len(), 100, "gene names repeat");
}
