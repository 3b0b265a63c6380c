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

/// Running sums over an epoch.
#[derive(Default)]
pub struct EpochAccumulator {
    sum: EpochLog,
    steps: usize,
}

impl EpochAccumulator {
    pub fn add(&mut self, s: &EpochLog) {
        let t = &mut self.sum;
        t.loss_ae += s.loss_ae;
        t.elbo += s.elbo;
        t.reconstruction += s.reconstruction;
        t.kl += s.kl;
        t.consistency += s.consistency;
        t.bhattacharyya += s.bhattacharyya;
        t.loss_discriminator += s.loss_discriminator;
        t.discriminator_accuracy += s.discriminator_accuracy;
        t.batch_cross_entropy += s.batch_cross_entropy;
        t.batch_classifier_accuracy += s.batch_classifier_accuracy;
        t.label_cross_entropy += s.label_cross_entropy;
        t.label_accuracy += s.label_accuracy;
        self.steps += 1;
    }

    pub fn mean(&self, epoch: usize, seconds: f64) -> EpochLog {
        let n = self.steps.max(1) as f64;
        let t = &self.sum;
        EpochLog {
            epoch,
            loss_ae: t.loss_ae / n,
            elbo: t.elbo / n,
            reconstruction: t.reconstruction / n,
            kl: t.kl / n,
            consistency: t.consistency / n,
            bhattacharyya: t.bhattacharyya / n,
            loss_discriminator: t.loss_discriminator / n,
            discriminator_accuracy: t.discriminator_accuracy / n,
            batch_cross_entropy: t.batch_cross_entropy / n,
            batch_classifier_accuracy: t.batch_classifier_accuracy / n,
            label_cross_entropy: t.label_cross_entropy / n,
            label_accuracy: t.label_accuracy / n,
            seconds,
        }
    }
}

const CSV_HEADER: &str = "epoch,loss_ae,elbo,reconstruction,kl,consistency,bhattacharyya,loss_discriminator,discriminator_accuracy,batch_cross_entropy,batch_classifier_accuracy,label_cross_entropy,label_accuracy,seconds";

/// Writes the log as CSV (`path`) and JSON (`path` with extension .json).
pub fn write_log(epochs: &[EpochLog], csv_path: &Path) -> anyhow::Result<()> {
    crate::io::cleanup::commit_all(write_log_pending(epochs, csv_path)?)
}

/// [`write_log`] up to the final renames (the CSV and its `.json` sibling under temp names).
pub fn write_log_pending(
    epochs: &[EpochLog],
    csv_path: &Path,
) -> anyhow::Result<Vec<crate::io::cleanup::Pending>> {
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
        crate::io::cleanup::write_pending(csv_path, csv.as_bytes())?,
        crate::io::cleanup::write_pending(&log_json_path(csv_path), &json)?,
    ])
}

/// `<output>.log.json` beside `<output>.log.csv`.
pub fn log_json_path(csv_path: &Path) -> std::path::PathBuf {
    csv_path.with_extension("json")
}

/// Write a small file through a registered temporary name so that no half-written file remains.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    crate::io::cleanup::commit_all(vec![crate::io::cleanup::write_pending(path, bytes)?])
}
