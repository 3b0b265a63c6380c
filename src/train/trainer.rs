//! The unsupervised scDREAMER training schedule (spec section 4).

use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::backend::Backend;
use crate::model::config::TrainConfig;
use crate::model::dataset::{DeviceData, PreparedData};
use crate::model::scdreamer::{Minibatch, Scdreamer};
use crate::nn::{Adam, AdamConfig};
use crate::tape::Tape;
use crate::train::log::{EpochAccumulator, EpochLog};
use crate::train::source::{InMemory, TrainSource};

pub struct TrainOptions {
    pub progress: bool,
    /// Cells used for training (cells with counts in the selected genes).
    pub train_rows: Vec<u32>,
}

fn adam(lr: f32, clip: Option<f32>) -> AdamConfig {
    AdamConfig {
        lr,
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        weight_decay: 0.0,
        clip_norm: clip,
    }
}

fn check_finite(v: f32, epoch: usize, term: &str) -> anyhow::Result<()> {
    if !v.is_finite() {
        anyhow::bail!(
            "training diverged: the {term} loss is {v} in epoch {epoch}; nothing was written. \
             Try a lower --lr, or check the input is raw counts"
        );
    }
    Ok(())
}

/// Trains `model` and returns the per-epoch log. Errors (and writes nothing) on NaN/Inf.
pub fn train<B: Backend>(
    model: &mut Scdreamer<B>,
    data: &DeviceData<B>,
    prep: &PreparedData,
    tc: &TrainConfig,
    opts: &TrainOptions,
) -> anyhow::Result<Vec<EpochLog>> {
    let mut source = InMemory::new(data, prep, opts.train_rows.clone());
    train_from(model, &mut source, tc, opts.progress)
}

/// Trains `model` on the cells of `source` (see [`train`]).
pub fn train_from<B: Backend>(
    model: &mut Scdreamer<B>,
    source: &mut dyn TrainSource<B>,
    tc: &TrainConfig,
    progress: bool,
) -> anyhow::Result<Vec<EpochLog>> {
    train_observed(model, source, tc, progress, &mut |_| Ok(()))
}

/// Where training is, after each minibatch step.
#[derive(Clone, Copy, Debug)]
pub struct StepProgress {
    /// 1-based epoch.
    pub epoch: usize,
    pub epochs: usize,
    /// Steps done in all, of `total_steps`.
    pub step: usize,
    pub total_steps: usize,
}

/// [`train_from`] that calls `on_step` after every minibatch step: a caller's own progress
/// display, or a stop (an error from `on_step` ends training with that error, e.g. Python's
/// KeyboardInterrupt). Observing does not change the result.
pub fn train_observed<B: Backend>(
    model: &mut Scdreamer<B>,
    source: &mut dyn TrainSource<B>,
    tc: &TrainConfig,
    progress: bool,
    on_step: &mut dyn FnMut(StepProgress) -> anyhow::Result<()>,
) -> anyhow::Result<Vec<EpochLog>> {
    let backend = model.params.backend().clone();
    let mut tape = Tape::new(backend);
    let mut rng = ChaCha8Rng::seed_from_u64(tc.seed ^ 0x5eed_0001);
    let ae_groups = model.ae_groups();
    let g = model.groups;
    let mut opt_ae = Adam::new(&model.params, &ae_groups, adam(tc.lr_ae, tc.clip_norm));
    let mut opt_d = Adam::new(&model.params, &[g.discriminator], adam(tc.lr_dis, None));
    let mut opt_c = Adam::new(&model.params, &[g.batch_classifier], adam(tc.lr_bc, None));
    let all_groups = g.all();

    let n = source.n_train();
    let bs = tc.batch_size.min(n).max(2);
    let steps = source.steps_per_epoch(bs);
    if steps == 0 {
        anyhow::bail!(
            "no minibatch of {bs} cells can be formed from the {n} training cells \
             (with --backed, a chunk must hold at least one minibatch: raise --chunk-cells)"
        );
    }
    let pb = if progress {
        let pb = ProgressBar::new((tc.epochs * steps) as u64);
        pb.set_style(
            ProgressStyle::with_template(
                "{elapsed_precise} [{bar:30}] epoch {prefix} {msg} ({eta} left)",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        pb
    } else {
        ProgressBar::hidden()
    };
    let reuse = !model.cfg.separate_adversary_forward;
    let mut batch = vec![0u32; bs];
    let mut logs = Vec::with_capacity(tc.epochs);
    for epoch in 0..tc.epochs {
        let t0 = Instant::now();
        let mut acc = EpochAccumulator::default();
        pb.set_prefix(format!("{}/{}", epoch + 1, tc.epochs));
        let mut s = 0usize;
        source.epoch(&mut rng, &mut |data, prep, perm, rng| {
            for rows in perm.chunks_exact(bs) {
                tape.backend().step_boundary();
                for (b, &r) in batch.iter_mut().zip(rows) {
                    *b = prep.batch[r as usize];
                }
                let mb = Minibatch {
                    rows,
                    batch: &batch,
                };
                let mut log = EpochLog::default();
                let f = tc.lr_schedule.factor(epoch * steps + s, tc.epochs * steps);
                opt_ae.cfg.lr = tc.lr_ae * f;
                opt_d.cfg.lr = tc.lr_dis * f;
                opt_c.cfg.lr = tc.lr_bc * f;

                // (1) autoencoder step.
                tape.reset();
                let ae = model.ae_graph(&mut tape, data, prep, &mb, rng);
                for &grp in &all_groups {
                    model.params.zero_grad(grp);
                }
                tape.backward(ae.loss, &mut model.params);
                opt_ae.step(&mut model.params);
                log.loss_ae = tape.scalar(ae.loss) as f64;
                let [elbo, recon, kl, cons, bc, _ce] = ae.losses;
                log.elbo = tape.scalar(elbo) as f64;
                log.reconstruction = tape.scalar(recon) as f64;
                log.kl = tape.scalar(kl) as f64;
                log.consistency = tape.scalar(cons) as f64;
                log.bhattacharyya = tape.scalar(bc) as f64;
                check_finite(log.loss_ae as f32, epoch + 1, "autoencoder")?;
                check_finite(log.reconstruction as f32, epoch + 1, "reconstruction")?;
                check_finite(log.kl as f32, epoch + 1, "KL")?;
                if let Some(sup) = &ae.sup {
                    (log.label_cross_entropy, log.label_accuracy) = sup.log_values(&mut tape);
                    check_finite(log.label_cross_entropy as f32, epoch + 1, "label")?;
                }
                let (xhat, z) = if reuse {
                    (Some(ae.xhat), Some(ae.z))
                } else {
                    (None, None)
                };

                // (2) discriminator step.
                if !reuse {
                    tape.reset();
                }
                let (d_loss, d_real, d_fake) =
                    model.disc_graph(&mut tape, data, prep, &mb, xhat, rng);
                model.params.zero_grad(g.discriminator);
                tape.backward(d_loss, &mut model.params);
                opt_d.step(&mut model.params);
                log.loss_discriminator = tape.scalar(d_loss) as f64;
                check_finite(log.loss_discriminator as f32, epoch + 1, "discriminator")?;
                log.discriminator_accuracy = {
                    let (real, fake) = (tape.to_host(d_real), tape.to_host(d_fake));
                    let wins = real.iter().zip(&fake).filter(|(r, f)| r > f).count();
                    wins as f64 / real.len().max(1) as f64
                };

                // (3) batch classifier step.
                if !reuse {
                    tape.reset();
                }
                let (c_loss, logits) = model.classifier_graph(&mut tape, data, prep, &mb, z, rng);
                model.params.zero_grad(g.batch_classifier);
                tape.backward(c_loss, &mut model.params);
                opt_c.step(&mut model.params);
                log.batch_cross_entropy = tape.scalar(c_loss) as f64;
                check_finite(
                    log.batch_cross_entropy as f32,
                    epoch + 1,
                    "batch classifier",
                )?;
                log.batch_classifier_accuracy = accuracy(&tape.to_host(logits), &batch);
                acc.add(&log);
                pb.inc(1);
                if s.is_multiple_of(10) {
                    pb.set_message(format!(
                        "recon {:.1} kl {:.2} bc {:.3} batch-ce {:.3}",
                        log.reconstruction, log.kl, log.bhattacharyya, log.batch_cross_entropy
                    ));
                }
                s += 1;
                on_step(StepProgress {
                    epoch: epoch + 1,
                    epochs: tc.epochs,
                    step: epoch * steps + s,
                    total_steps: tc.epochs * steps,
                })?;
            }
            Ok(())
        })?;
        logs.push(acc.mean(epoch + 1, t0.elapsed().as_secs_f64()));
    }
    pb.finish_and_clear();
    Ok(logs)
}

/// Fraction of rows whose argmax equals the label.
pub fn accuracy(logits: &[f32], labels: &[u32]) -> f64 {
    let n = labels.len();
    if n == 0 {
        return 0.0;
    }
    let k = logits.len() / n;
    let correct = labels
        .iter()
        .enumerate()
        .filter(|&(i, &l)| {
            let row = &logits[i * k..(i + 1) * k];
            let best = row
                .iter()
                .enumerate()
                .max_by(|a, b| a.1.total_cmp(b.1))
                .map(|(j, _)| j)
                .unwrap_or(0);
            best == l as usize
        })
        .count();
    correct as f64 / n as f64
}
