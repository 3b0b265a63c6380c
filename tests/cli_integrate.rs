//! The integrate and embed commands end to end through the binary: outputs, presets, saved
//! models, and clear errors with a non-zero exit.

mod common;

use std::path::Path;

use common::{DEMO, argv, argv_plus, embedding, max_abs_diff, read, run};
use scdreamer::data::h5ad::open_h5;

fn obsm_shape(path: &Path, key: &str) -> Vec<usize> {
    let f = open_h5(path).unwrap();
    f.dataset(&format!("obsm/{key}")).unwrap().shape()
}

#[test]
fn integrate_writes_embedding_layer_log_and_model_then_embed_reuses_it() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.h5ad");
    let model = dir.path().join("model");
    run(&argv(
        "integrate --input {} --output {} --epochs 3 --quiet --save-model {}",
        &[&DEMO, &out, &model],
    ))
    .expect_ok("integrate");
    assert_eq!(obsm_shape(&out, "X_scdreamer"), vec![1345, 10]);
    let a = read(&out);
    assert_eq!(a.n_obs(), 1345, "every input cell is in the output");
    let f = open_h5(&out).unwrap();
    assert_eq!(
        f.dataset("layers/scdreamer_normalized").unwrap().shape(),
        vec![1345, a.n_vars()]
    );
    assert!(f.group("uns/scdreamer").is_ok());
    let log = std::fs::read_to_string(dir.path().join("out.log.csv")).unwrap();
    assert_eq!(log.lines().count(), 4, "header + 3 epochs:\n{log}");
    assert!(model.join("weights.safetensors").exists() && model.join("config.json").exists());

    // The saved model embeds the same cells to the same posterior means.
    let out2 = dir.path().join("embedded.h5ad");
    run(&argv(
        "embed --model {} --input {} --output {} --quiet",
        &[&model, &DEMO, &out2],
    ))
    .expect_ok("embed");
    // X of both outputs: the input counts of the genes used (the CPU backend trains on the
    // matrix it read, moved rather than copied, and writes that same matrix back).
    let input = read(Path::new(DEMO));
    let cols: Vec<usize> = (a.var.index.iter())
        .map(|g| input.var.index.iter().position(|h| h == g).unwrap())
        .collect();
    let want = input
        .x
        .select(&(0..input.n_obs()).collect::<Vec<_>>(), &cols);
    assert_eq!(
        a.x, want,
        "integrate: X is the input counts of the genes used"
    );
    let e = read(&out2);
    assert_eq!(e.var.index, a.var.index);
    assert_eq!(
        e.x, want,
        "embed: X is the input counts of the model's genes"
    );
    let max_diff = max_abs_diff(&embedding(&out), &embedding(&out2));
    assert!(
        max_diff < 1e-4,
        "embed differs from integrate by {max_diff}"
    );
}

#[test]
fn authors_preset_runs_and_writes_a_finite_embedding() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("authors.h5ad");
    run(&argv(
        "integrate --input {} --output {} --preset authors --epochs 2 --quiet",
        &[&DEMO, &out],
    ))
    .expect_ok("integrate --preset authors");
    let z = embedding(&out);
    assert_eq!(z.len(), 1345 * 10);
    assert!(z.iter().all(|v| v.is_finite()));
}

#[test]
fn bad_requests_fail_clearly_and_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("x.h5ad");
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["--batch-key", "donor"], "'donor' not found"),
        (
            vec!["--transform-batch", "nope", "--epochs", "1"],
            "--transform-batch 'nope'",
        ),
        (vec!["--hidden", "0"], "--hidden"),
        (vec!["--batch-size", "1"], "--batch-size"),
        (
            vec!["--label-balance", "1"],
            "--label-balance needs --labels-key",
        ),
        (
            vec!["--labels-key", "cell_type", "--label-balance=-1"],
            "--label-balance must be a number >= 0",
        ),
        (vec!["--device", "cuda"], "--device cuda"),
        (vec!["--backed", "--device", "cuda"], "--device cuda"),
    ];
    for (extra, want) in cases {
        let args = argv_plus(
            "integrate --input {} --output {} --quiet",
            &[&DEMO, &out],
            &extra,
        );
        let (ok, err) = run(&args).status();
        assert!(!ok, "{args:?} should fail");
        assert!(
            err.contains("error:") && err.contains(want),
            "{args:?}: want '{want}' in: {err}"
        );
        assert!(!out.exists(), "{args:?} left an output file");
    }
    // Writing over the input is refused.
    let copy = dir.path().join("in.h5ad");
    std::fs::copy(DEMO, &copy).unwrap();
    run(&argv("integrate --input {} --output {}", &[&copy, &copy])).expect_err(&["error:"]);
    // Embedding with a model directory that does not exist; with `--device cuda` and no GPU
    // the same clear error as `integrate`'s.
    let embed = "embed --model /nonexistent-model --input {} --output {}";
    run(&argv(embed, &[&DEMO, &out])).expect_err(&["/nonexistent-model"]);
    run(&argv_plus(embed, &[&DEMO, &out], &["--device", "cuda"]))
        .expect_err(&["error: --device cuda"]);
    assert!(!out.exists(), "embed --device cuda left an output file");
}

/// More batches than a minibatch holds (150 here, as in the heart atlas): the default preset
/// switches to its many-batch settings (the encoder reads x alone, KL weight 0.5; see
/// `model::presets::MANY_BATCHES`), trains, keeps cell types apart and mixes the batches. On this
/// simulation a 10-PC PCA of the log-normalised counts scores 15-NN purity 0.876 and batch
/// entropy 0.515 (the maximum with 15 neighbours and 150 batches is ln 15 / ln 150 = 0.540).
#[test]
fn many_batches_use_the_many_batch_preset_and_mix() {
    use scdreamer::data::validate::batch_codes;
    use scdreamer::metrics::{knn_batch_entropy, knn_indices, knn_label_purity};
    let dir = tempfile::tempdir().unwrap();
    let sim = dir.path().join("sim.h5ad");
    let out = dir.path().join("out.h5ad");
    let model = dir.path().join("model");
    run(&argv(
        "simulate --cells 3000 --genes 500 --batches 150 --types 4 --seed 2 --threads 2 --output {}",
        &[&sim],
    ))
    .expect_ok("simulate");
    run(&argv(
        "integrate --input {} --output {} --epochs 30 --normalized no --threads 2 --quiet \
         --save-model {}",
        &[&sim, &out, &model],
    ))
    .expect_ok("integrate");
    let cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(model.join("config.json")).unwrap()).unwrap();
    let m = &cfg["run"]["model"];
    assert_eq!(m["n_batches"], 150);
    assert_eq!(m["encode_batch"], false, "{m}");
    assert_eq!(m["kl_weight"], 0.5, "{m}");

    let a = read(&out);
    let (batch, names) = batch_codes(&a.obs, "batch", false).unwrap();
    let (labels, _) = batch_codes(&a.obs, "cell_type", false).unwrap();
    let z = embedding(&out);
    assert!(z.iter().all(|v| v.is_finite()));
    let nb = knn_indices(&z, a.n_obs(), 10, 15);
    let purity = knn_label_purity(&nb, &labels);
    let entropy = knn_batch_entropy(&nb, &batch, names.len());
    eprintln!("150 batches: 15-NN purity {purity:.4}, batch entropy {entropy:.4}");
    assert!(purity >= 0.9, "cell types mixed: purity {purity:.4}");
    assert!(entropy >= 0.52, "batches not mixed: entropy {entropy:.4}");
}
