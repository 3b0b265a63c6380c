//! Wrong labels in scDREAMER-Sup (issue 22): on a simulation with 30% of the labels hidden and
//! 20% of the shown ones reassigned to another type, `integrate --screen-labels` writes
//! `obs['scdreamer_label_disagrees']`, flags the planted wrong labels far better than chance and
//! recovers their true type; plus the flag errors of `--screen-labels`/`--disagree-threshold`.

mod common;

use common::{argv, argv_plus, read, run, scratch};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use scdreamer::data::AnnData;
use scdreamer::data::anndata::Column;
use scdreamer::data::h5ad::{Results, write_h5ad};

fn codes(adata: &AnnData, key: &str) -> (Vec<i32>, Vec<String>) {
    match adata.obs.get(key) {
        Some(Column::Categorical {
            codes, categories, ..
        }) => (codes.clone(), categories.clone()),
        other => panic!("obs['{key}'] is not categorical: {other:?}"),
    }
}

/// Hides 30% of `truth` (code -1) and reassigns 20% of the rest to a random other type.
/// Returns the given codes and which cells carry a wrong label.
fn noisy(truth: &[i32], n_types: i32, seed: u64) -> (Vec<i32>, Vec<bool>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let n = truth.len();
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(&mut rng);
    let n_hidden = (0.3 * n as f64).round() as usize;
    let n_wrong = (0.2 * (n - n_hidden) as f64).round() as usize;
    let mut given = truth.to_vec();
    let mut wrong = vec![false; n];
    for &i in &order[..n_hidden] {
        given[i] = -1;
    }
    for &i in &order[n_hidden..n_hidden + n_wrong] {
        given[i] = (truth[i] + rng.gen_range(1..n_types)) % n_types;
        wrong[i] = true;
    }
    (given, wrong)
}

/// A simulation with the noisy labels in obs['given']; returns the truth, the given codes
/// and which cells carry a wrong label.
fn noisy_input(
    sim: &std::path::Path,
    input: &std::path::Path,
) -> (Vec<i32>, Vec<String>, Vec<i32>, Vec<bool>) {
    run(&argv(
        "simulate --cells 1200 --genes 300 --batches 3 --types 4 --seed 2 --output {}",
        &[&sim],
    ))
    .expect_ok("simulate");
    let mut adata = read(sim);
    let (truth, types) = codes(&adata, "cell_type");
    let (given, wrong) = noisy(&truth, types.len() as i32, 0);
    adata.obs.columns.push((
        "given".into(),
        Column::Categorical {
            codes: given.clone(),
            categories: types.clone(),
            ordered: false,
        },
    ));
    write_h5ad(input, &adata, &Results::default()).unwrap();
    (truth, types, given, wrong)
}

/// Of the cells with a wrong label, the share whose prediction is their true type.
fn recovered(pred: &[i32], truth: &[i32], wrong: &[bool]) -> f64 {
    let n_wrong = wrong.iter().filter(|&&w| w).count();
    (0..pred.len())
        .filter(|&i| wrong[i] && pred[i] == truth[i])
        .count() as f64
        / n_wrong as f64
}

/// Sup's default label loss, the generalized cross-entropy, learns fewer of the wrong labels
/// than the cross-entropy: more wrong-labelled cells are predicted as their true type.
#[test]
fn generalized_cross_entropy_learns_fewer_wrong_labels() {
    let (_dir, [sim, input, gce, ce]) = scratch(["sim.h5ad", "noisy.h5ad", "gce.h5ad", "ce.h5ad"]);
    let (truth, _, _, wrong) = noisy_input(&sim, &input);
    let base = "integrate -i {} -o {} --labels-key given --epochs 40 --seed 0 --quiet";
    run(&argv(base, &[&input, &gce])).expect_ok("integrate (default label loss)");
    run(&argv_plus(base, &[&input, &ce], &["--label-loss", "ce"])).expect_ok("--label-loss ce");
    let r_gce = recovered(&codes(&read(&gce), "scdreamer_label").0, &truth, &wrong);
    let r_ce = recovered(&codes(&read(&ce), "scdreamer_label").0, &truth, &wrong);
    println!("true type of wrong-labelled cells recovered: gce {r_gce:.3}, ce {r_ce:.3}");
    // Chance is 0.25 (four types); the cross-entropy follows the given labels.
    assert!(r_gce >= 0.4, "gce recovered {r_gce:.3}");
    assert!(r_gce >= r_ce + 0.15, "gce {r_gce:.3} vs ce {r_ce:.3}");
}

#[test]
fn screened_sup_flags_and_recovers_planted_wrong_labels() {
    let (_dir, [sim, input, out]) = scratch(["sim.h5ad", "noisy.h5ad", "out.h5ad"]);
    let (truth, types, given, wrong) = noisy_input(&sim, &input);
    // 40 epochs (a test budget) leave the predictions less confident than the default
    // training does: flag from 0.5 instead of the default 0.7. The screen was measured with the
    // cross-entropy, whose more confident predictions it flags from.
    let err = run(&argv(
        "integrate -i {} -o {} --labels-key given --screen-labels --disagree-threshold 0.5 \
         --epochs 40 --seed 0 --label-loss ce",
        &[&input, &out],
    ))
    .expect_ok("integrate --screen-labels");
    assert!(
        err.contains("--screen-labels:") && err.contains("trained as unlabelled"),
        "{err}"
    );

    let a = read(&out);
    let flags = match a.obs.get("scdreamer_label_disagrees") {
        Some(Column::Bool(v)) => v.clone(),
        other => panic!("scdreamer_label_disagrees: {other:?}"),
    };
    let (pred, pred_types) = codes(&a, "scdreamer_label");
    assert_eq!(pred_types, types);
    // Only labelled cells can disagree.
    assert!(flags.iter().zip(&given).all(|(&f, &g)| !f || g >= 0));
    let n_wrong = wrong.iter().filter(|&&w| w).count();
    let flagged = flags.iter().filter(|&&f| f).count();
    let hits = (0..flags.len()).filter(|&i| flags[i] && wrong[i]).count();
    let precision = hits as f64 / flagged.max(1) as f64;
    let recall = hits as f64 / n_wrong as f64;
    let recovered = recovered(&pred, &truth, &wrong);
    println!(
        "{n_wrong} wrong labels: {flagged} flagged, precision {precision:.3}, recall \
         {recall:.3}, true type recovered {recovered:.3}"
    );
    // Chance: a random flag is wrong with probability 0.2 (the share of wrong labels).
    assert!(precision >= 0.6, "precision {precision:.3} (chance 0.2)");
    assert!(recall >= 0.35, "recall {recall:.3}");
    // Without --screen-labels Sup recovers ~none (it learns the wrong labels); chance is 0.25.
    assert!(recovered >= 0.45, "recovered {recovered:.3}");
}

#[test]
fn screen_labels_flag_errors() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.h5ad");
    for (args, want) in [
        (
            vec!["--screen-labels"],
            "--screen-labels needs --labels-key",
        ),
        (
            vec!["--labels-key", "cell_type", "--screen-labels", "--backed"],
            "run without --backed",
        ),
        (
            vec!["--labels-key", "cell_type", "--disagree-threshold", "1.5"],
            "--disagree-threshold must be a probability",
        ),
        (
            vec!["--label-loss", "gce"],
            "--label-loss needs --labels-key",
        ),
        (
            vec!["--labels-key", "cell_type", "--label-loss", "mae"],
            "invalid value 'mae'",
        ),
    ] {
        let all = argv_plus("integrate -o {} --quiet", &[&out], &args);
        let (ok, err) = run(&all).status();
        assert!(!ok && err.contains(want), "{all:?}: {err}");
        assert!(!out.exists());
    }
}
