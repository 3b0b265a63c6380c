//! scDREAMER-Sup on the bundled demo (cellbench_3cl_10xsub: 3 cell lines x 3 platforms) with
//! 30% of the labels hidden at random (seed 0): at least 95% of the hidden cells' predicted
//! types must be right, and the Sup embedding must separate types at least as well as the
//! unsupervised one (15-NN label purity). Plus the user-facing errors and warnings, and a
//! save/embed round trip through the binary in which `embed` predicts labels.

mod common;

use std::path::Path;

use common::{DEMO, argv, argv_plus, model_config, read, run, s, scratch};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use scdreamer::backend::cpu::Cpu;
use scdreamer::data::AnnData;
use scdreamer::data::anndata::Column;
use scdreamer::data::h5ad::{Results, write_h5ad};
use scdreamer::data::labels::cell_labels;
use scdreamer::data::validate::batch_codes;
use scdreamer::metrics::{knn_indices, knn_label_purity};
use scdreamer::model::config::{ModelConfig, RunConfig, TrainConfig};
use scdreamer::pipeline::{self, FitOptions, GeneSelection, Setup};

/// Sets a random `frac` of the cell_type codes to -1 (missing = unlabelled); returns which.
fn hide_labels(adata: &mut AnnData, frac: f64, seed: u64) -> Vec<bool> {
    let n = adata.n_obs();
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
    let mut hidden = vec![false; n];
    for &i in &order[..(frac * n as f64).round() as usize] {
        hidden[i] = true;
    }
    let col = adata
        .obs
        .columns
        .iter_mut()
        .find(|(k, _)| k == "cell_type")
        .map(|(_, c)| c)
        .expect("demo has cell_type");
    match col {
        Column::Categorical { codes, .. } => {
            for (c, &h) in codes.iter_mut().zip(&hidden) {
                if h {
                    *c = -1;
                }
            }
        }
        other => panic!("cell_type is not categorical: {other:?}"),
    }
    hidden
}

struct Run {
    purity: f64,
    /// Predicted type names (Sup only).
    predicted: Option<Vec<String>>,
    n_types: usize,
}

/// Trains on `adata` with the default preset; Sup when `labels` is given. Purity is against
/// the full truth `truth`.
fn train(adata: &AnnData, sup: bool, truth: &[u32], seed: u64) -> Run {
    let (batch, names) = batch_codes(&adata.obs, "batch", false).unwrap();
    let genes =
        pipeline::select_genes(adata, &batch, names.len(), &GeneSelection::SeuratV3(2000)).unwrap();
    let labels = sup.then(|| cell_labels(&adata.obs, "cell_type", "Unknown").unwrap().0);
    let n_labels = labels.as_ref().map_or(0, |l| l.categories.len());
    let m = ModelConfig::default_preset(genes.len(), names.len(), n_labels);
    let t = TrainConfig::default_preset(adata.n_obs(), names.len(), n_labels, seed);
    let mut setup =
        Setup::new_taking_x(&mut adata.clone(), "batch", batch, names, genes, &m, None).unwrap();
    let categories = labels.as_ref().map(|l| l.categories.clone());
    if let Some(l) = labels {
        setup = setup.with_labels("cell_type", l);
    }
    let opts = FitOptions::new(RunConfig::new("default", m.clone(), t), false);
    let trained = pipeline::fit(&Cpu::new(), &mut setup, opts).unwrap();
    let latent = trained.latent(&setup.prep, seed);
    assert!(latent.iter().all(|v| v.is_finite()));
    let nb = knn_indices(&latent, adata.n_obs(), m.latent, 15);
    let last = trained.log.last().unwrap();
    if sup {
        println!(
            "last epoch: label CE {:.4}, label accuracy {:.3}, batch-classifier accuracy {:.3}",
            last.label_cross_entropy, last.label_accuracy, last.batch_classifier_accuracy
        );
        assert!(
            last.label_cross_entropy > 0.0,
            "the label loss is not logged"
        );
    }
    let predicted = trained.predict_labels(&setup.prep).map(|p| {
        let cats = categories.as_ref().unwrap();
        assert_eq!(p.codes.len(), adata.n_obs());
        assert!(p.confidence.iter().all(|&c| (0.0..=1.0).contains(&c)));
        p.codes.iter().map(|&c| cats[c as usize].clone()).collect()
    });
    assert_eq!(predicted.is_some(), sup);
    Run {
        purity: knn_label_purity(&nb, truth),
        predicted,
        n_types: n_labels,
    }
}

fn truth_names(adata: &AnnData) -> Vec<String> {
    let col = adata.obs.get("cell_type").unwrap();
    (0..adata.n_obs()).map(|i| col.label(i).unwrap()).collect()
}

#[test]
fn sup_predicts_hidden_labels_and_separates_types() {
    let full = read(Path::new(DEMO));
    let (truth, _) = batch_codes(&full.obs, "cell_type", false).unwrap();
    let names = truth_names(&full);
    let mut partial = full.clone();
    let hidden = hide_labels(&mut partial, 0.3, 0);
    let n_hidden = hidden.iter().filter(|&&h| h).count();
    assert_eq!(n_hidden, (0.3 * full.n_obs() as f64).round() as usize);

    let s = train(&partial, true, &truth, 0);
    assert_eq!(s.n_types, 3);
    let pred = s.predicted.unwrap();
    let hits = (0..full.n_obs())
        .filter(|&i| hidden[i] && pred[i] == names[i])
        .count();
    let acc = hits as f64 / n_hidden as f64;
    let u = train(&full, false, &truth, 0);
    println!(
        "Sup: accuracy on the {n_hidden} hidden cells {acc:.4}; 15-NN label purity Sup {:.4} vs unsupervised {:.4}",
        s.purity, u.purity
    );
    assert!(acc >= 0.95, "accuracy on hidden cells {acc:.4} < 0.95");
    assert!(
        s.purity >= u.purity,
        "Sup purity {:.4} < unsupervised {:.4}",
        s.purity,
        u.purity
    );
}

#[test]
fn label_errors_and_warnings() {
    let full = read(Path::new(DEMO));
    // Missing key: the message lists the obs keys.
    let e = cell_labels(&full.obs, "celltype", "Unknown")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("'celltype'") && e.contains("cell_type") && e.contains("batch"),
        "{e}"
    );
    // Every cell unlabelled: error pointing at the unsupervised mode.
    let mut none = full.clone();
    hide_labels(&mut none, 1.0, 0);
    let e = cell_labels(&none.obs, "cell_type", "Unknown")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("none of the 1345 cells") && e.contains("unsupervised"),
        "{e}"
    );
    // A type with only 2 labelled cells: a warning naming it.
    let mut rare = full.clone();
    let names = truth_names(&rare);
    if let Some((_, Column::Categorical { codes, .. })) =
        rare.obs.columns.iter_mut().find(|(k, _)| k == "cell_type")
    {
        let mut kept = 0;
        for (c, n) in codes.iter_mut().zip(&names) {
            if n == "H2228" {
                kept += 1;
                if kept > 2 {
                    *c = -1;
                }
            }
        }
    }
    let (labels, warnings) = cell_labels(&rare.obs, "cell_type", "Unknown").unwrap();
    assert_eq!(labels.categories.len(), 3);
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].contains("'H2228'") && warnings[0].contains("only 2"),
        "{warnings:?}"
    );
    // Full labels: no warning.
    assert!(
        cell_labels(&full.obs, "cell_type", "Unknown")
            .unwrap()
            .1
            .is_empty()
    );
}

fn obs_labels(adata: &AnnData, key: &str) -> Vec<String> {
    let col = adata
        .obs
        .get(key)
        .unwrap_or_else(|| panic!("no obs['{key}']"));
    assert!(
        matches!(col, Column::Categorical { .. }),
        "obs['{key}'] is not categorical"
    );
    (0..adata.n_obs()).map(|i| col.label(i).unwrap()).collect()
}

#[test]
fn cli_sup_and_embed_round_trip_predicts_labels() {
    let files = [
        "partial.h5ad",
        "out.h5ad",
        "model",
        "new.h5ad",
        "embedded.h5ad",
    ];
    let (_dir, [input, out, model, new_input, out2]) = scratch(files);
    let full = read(Path::new(DEMO));
    let names = truth_names(&full);
    let mut partial = full.clone();
    let hidden = hide_labels(&mut partial, 0.3, 0);
    // Mark some hidden cells with the unlabelled category instead of a missing value.
    if let Some((
        _,
        Column::Categorical {
            codes, categories, ..
        },
    )) = partial
        .obs
        .columns
        .iter_mut()
        .find(|(k, _)| k == "cell_type")
    {
        categories.push("Unknown".into());
        let unk = categories.len() as i32 - 1;
        for c in codes.iter_mut().step_by(2).filter(|c| **c == -1) {
            *c = unk;
        }
    }
    write_h5ad(&input, &partial, &Results::default()).unwrap();

    // Errors of the CLI: a missing key lists the keys; nothing is written.
    let integrate = "integrate -i {} -o {} --quiet --labels-key";
    run(&argv_plus(integrate, &[&input, &out], &["celltype"])).expect_err(&["cell_type"]);
    assert!(!out.exists());

    let err = run(&argv_plus(
        integrate,
        &[&input, &out],
        &["cell_type", "--epochs", "40", "--save-model", s(&model)],
    ))
    .expect_ok("integrate --labels-key cell_type");
    assert!(err.contains("scDREAMER-Sup"), "{err}");
    let a = read(&out);
    let pred = obs_labels(&a, "scdreamer_label");
    let conf = match a.obs.get("scdreamer_label_confidence") {
        Some(Column::F32(v)) => v.clone(),
        other => panic!("confidence column: {other:?}"),
    };
    assert!(conf.iter().all(|&c| (1.0 / 3.0 - 1e-4..=1.0).contains(&c)));
    let acc = (0..a.n_obs())
        .filter(|&i| hidden[i] && pred[i] == names[i])
        .count() as f64
        / hidden.iter().filter(|&&h| h).count() as f64;
    println!("CLI, 40 epochs: accuracy on hidden cells {acc:.4}");
    assert!(acc >= 0.9, "hidden-cell accuracy {acc:.3}");
    let saved = model_config(&model);
    assert_eq!(saved["labels_key"], "cell_type");
    // The CLI builds Sup's preset, not the unsupervised one with labels added afterwards (an
    // earlier version left Sup's KL weight at the unsupervised 1).
    assert_eq!(
        saved["run"]["model"]["kl_weight"].as_f64().unwrap() as f32,
        scdreamer::model::presets::SUP_KL_WEIGHT
    );
    assert_eq!(
        saved["label_categories"].as_array().unwrap().len(),
        3,
        "the unlabelled category is not a type: {}",
        saved["label_categories"]
    );

    // embed: the saved model predicts the same labels for the same cells, without labels.
    let mut unlabelled = full.clone();
    unlabelled.obs.columns.retain(|(k, _)| k != "cell_type");
    write_h5ad(&new_input, &unlabelled, &Results::default()).unwrap();
    run(&argv(
        "embed --model {} -i {} -o {} --quiet",
        &[&model, &new_input, &out2],
    ))
    .expect_ok("embed");
    let b = read(&out2);
    assert_eq!(obs_labels(&b, "scdreamer_label"), pred);
}
