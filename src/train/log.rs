//! Per-epoch training log: every loss term, written as CSV and JSON beside the output.

use std::path::Path;

use serde::Serialize;

/// Means over the steps of one epoch.
#[derive(Clone, Debug, Default, Serialize)]
pub struct EpochLog {
    pub epoch: usize,
    /// Autoencoder loss L_AE.
    pub loss_ae: f64,
    pub elbo: f64,
    /// Reconstruction log-likelihood per cell.
    pub reconstruction: f64,
    /// KL divergence per cell (unweighted).
    pub kl: f64,
    pub consistency: f64,
    /// ln(clip(BC)) that the discriminator minimises (AE step's value).
    pub bhattacharyya: f64,
    /// Discriminator loss at its own step.
    pub loss_discriminator: f64,
    /// Fraction of pairs where D scores the real cell above its reconstruction.
    pub discriminator_accuracy: f64,
    /// Batch classifier cross-entropy at its own step.
    pub batch_cross_entropy: f64,
    /// Batch classifier accuracy on z (1/#batches = chance: z carries no batch).
    pub batch_classifier_accuracy: f64,
    /// Sup only: label cross-entropy and accuracy on labelled cells.
    pub label_cross_entropy: f64,
    pub label_accuracy: f64,
    pub seconds: f64,
}

/// Slots of the device accumulator that sums each step's log values over an epoch.
pub mod slot {
    pub const LOSS_AE: usize = 0;
    pub const ELBO: usize = 1;
    pub const RECONSTRUCTION: usize = 2;
    pub const KL: usize = 3;
    pub const CONSISTENCY: usize = 4;
    pub const BHATTACHARYYA: usize = 5;
    pub const LOSS_DISCRIMINATOR: usize = 6;
    pub const DISCRIMINATOR_ACCURACY: usize = 7;
    pub const BATCH_CROSS_ENTROPY: usize = 8;
    pub const BATCH_CLASSIFIER_ACCURACY: usize = 9;
    pub const LABEL_CROSS_ENTROPY: usize = 10;
    pub const LABEL_ACCURACY: usize = 11;
    /// Number of slots.
    pub const COUNT: usize = 12;
}

impl EpochLog {
    /// Means over `steps` steps from the accumulator's sums (indexed by [`slot`]).
    pub fn from_sums(sums: &[f64], steps: usize, epoch: usize, seconds: f64) -> EpochLog {
        assert_eq!(sums.len(), slot::COUNT, "from_sums: {} sums", sums.len());
        let n = steps.max(1) as f64;
        EpochLog {
            epoch,
            loss_ae: sums[slot::LOSS_AE] / n,
            elbo: sums[slot::ELBO] / n,
            reconstruction: sums[slot::RECONSTRUCTION] / n,
            kl: sums[slot::KL] / n,
            consistency: sums[slot::CONSISTENCY] / n,
            bhattacharyya: sums[slot::BHATTACHARYYA] / n,
            loss_discriminator: sums[slot::LOSS_DISCRIMINATOR] / n,
            discriminator_accuracy: sums[slot::DISCRIMINATOR_ACCURACY] / n,
            batch_cross_entropy: sums[slot::BATCH_CROSS_ENTROPY] / n,
            batch_classifier_accuracy: sums[slot::BATCH_CLASSIFIER_ACCURACY] / n,
            label_cross_entropy: sums[slot::LABEL_CROSS_ENTROPY] / n,
            label_accuracy: sums[slot::LABEL_ACCURACY] / n,
            seconds,
        }
    }
}

const CSV_HEADER: &str = "epoch,loss_ae,elbo,reconstruction,kl,consistency,bhattacharyya,loss_discriminator,discriminator_accuracy,batch_cross_entropy,batch_classifier_accuracy,label_cross_entropy,label_accuracy,seconds";

/// Writes the log as CSV (`path`) and JSON (`path` with extension .json).
pub fn write_log(epochs: &[EpochLog], csv_path: &Path) -> anyhow::Result<()> {
    crate::files::cleanup::commit_all(write_log_pending(epochs, csv_path)?)
}

/// [`write_log`] up to the final renames (the CSV and its `.json` sibling under temp names).
pub fn write_log_pending(
    epochs: &[EpochLog],
    csv_path: &Path,
) -> anyhow::Result<Vec<crate::files::cleanup::Pending>> {
    let mut csv = String::from(CSV_HEADER);
    csv.push('\n');
    for e in epochs {
        csv.push_str(&format!(
            "{},{},{},{},{},{},{},{},{},{},{},{},{},{:.3}\n",
            e.epoch,
            e.loss_ae,
            e.elbo,
            e.reconstruction,
            e.kl,
            e.consistency,
            e.bhattacharyya,
            e.loss_discriminator,
            e.discriminator_accuracy,
            e.batch_cross_entropy,
            e.batch_classifier_accuracy,
            e.label_cross_entropy,
            e.label_accuracy,
            e.seconds
        ));
    }
    let json = serde_json::to_vec_pretty(epochs)?;
    Ok(vec![
        crate::files::cleanup::write_pending(csv_path, csv.as_bytes())?,
        crate::files::cleanup::write_pending(&log_json_path(csv_path), &json)?,
    ])
}

/// `<output>.log.json` beside `<output>.log.csv`.
pub fn log_json_path(csv_path: &Path) -> std::path::PathBuf {
    csv_path.with_extension("json")
}

/// Write a small file through a registered temporary name so that no half-written file remains.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    crate::files::cleanup::commit_all(vec![crate::files::cleanup::write_pending(path, bytes)?])
}
