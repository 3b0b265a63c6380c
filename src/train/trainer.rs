//! The unsupervised scDREAMER training schedule (spec section 4).

use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::backend::Backend;
use crate::model::config::TrainConfig;
use crate::model::dataset::{DeviceData, PreparedData};
use crate::model::minibatch::Minibatch;
use crate::model::scdreamer::Scdreamer;
use crate::nn::{Adam, AdamConfig};
use crate::tape::Tape;
use crate::train::log::{EpochLog, slot};
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

/// Errors (naming the term) when a guarded running sum is not finite: one NaN/Inf step makes
/// its epoch's sum non-finite, so checking the sums when they are read catches every one.
fn check_sums(sums: &[f64], epoch: usize) -> anyhow::Result<()> {
    for (s, term) in [
        (slot::LOSS_AE, "autoencoder"),
        (slot::RECONSTRUCTION, "reconstruction"),
        (slot::KL, "KL"),
        (slot::LABEL_CROSS_ENTROPY, "label"),
        (slot::LOSS_DISCRIMINATOR, "discriminator"),
        (slot::BATCH_CROSS_ENTROPY, "batch classifier"),
    ] {
        if !sums[s].is_finite() {
            anyhow::bail!(
                "training diverged: the {term} loss is {} in epoch {epoch}; nothing was \
                 written. Try a lower --lr, or check the input is raw counts",
                sums[s]
            );
        }
    }
    Ok(())
}

/// Whether the running sums are read after step `s` (1-based) of an epoch of `steps`.
fn reads_after(s: usize, read_every: usize, steps: usize) -> bool {
    s.is_multiple_of(read_every) || s == steps
}

/// Copies the running sums to the host and checks them for divergence.
fn read_sums<B: crate::backend::Backend>(
    backend: &B,
    acc: &B::AccBuf,
    sums: &mut [f64],
    epoch: usize,
) -> anyhow::Result<()> {
    backend.download_acc(acc, sums);
    check_sums(sums, epoch)
}

/// Steps between two reads of the running sums: every step where reading is free (host
/// memory), else about nine reads per epoch plus the one at its end (the progress bar's
/// updates and the divergence check; at most 10 device-to-host copies per epoch).
fn read_interval<B: crate::backend::Backend>(backend: &B, steps: usize) -> usize {
    if backend.host_memory() {
        1
    } else {
        steps.div_ceil(9).max(1)
    }
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
    let mut tape = Tape::new(backend.clone());
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
    let read_every = read_interval(&backend, steps);
    let mut acc = backend.alloc_acc(slot::COUNT);
    let mut sums = vec![0.0f64; slot::COUNT];
    let mut logs = Vec::with_capacity(tc.epochs);
    for epoch in 0..tc.epochs {
        let t0 = Instant::now();
        backend.zero_acc(&mut acc);
        pb.set_prefix(format!("{}/{}", epoch + 1, tc.epochs));
        let mut s = 0usize;
        source.epoch(&mut rng, &mut |data, prep, perm, rng| {
            let mut mb = Minibatch::new(&backend, bs, &data.tables);
            for rows in perm.chunks_exact(bs) {
                backend.step_boundary();
                let f = tc.lr_schedule.factor(epoch * steps + s, tc.epochs * steps);
                opt_ae.cfg.lr = tc.lr_ae * f;
                opt_d.cfg.lr = tc.lr_dis * f;
                opt_c.cfg.lr = tc.lr_bc * f;

                // (1) autoencoder step. The minibatch's rows are the step's one upload.
                tape.reset();
                mb.load(&backend, &data.tables, rows)?;
                let ae = model.ae_graph(&mut tape, data, prep, &mb, rng);
                for &grp in &all_groups {
                    model.params.zero_grad(grp);
                }
                tape.backward(ae.loss, &mut model.params);
                opt_ae.step(&mut model.params);
                let [elbo, recon, kl, cons, bc, _ce] = ae.losses;
                tape.accumulate(
                    &mut acc,
                    &[
                        (slot::LOSS_AE, ae.loss),
                        (slot::ELBO, elbo),
                        (slot::RECONSTRUCTION, recon),
                        (slot::KL, kl),
                        (slot::CONSISTENCY, cons),
                        (slot::BHATTACHARYYA, bc),
                    ],
                );
                if let (Some(sup), Some((labels, mask))) = (&ae.sup, &mb.labels) {
                    tape.accumulate(&mut acc, &[(slot::LABEL_CROSS_ENTROPY, sup.label_ce)]);
                    let logits = sup.logits;
                    tape.accumulate_argmax_hits(
                        &mut acc,
                        slot::LABEL_ACCURACY,
                        logits,
                        labels,
                        Some(mask),
                    );
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
                tape.accumulate(&mut acc, &[(slot::LOSS_DISCRIMINATOR, d_loss)]);
                tape.accumulate_greater_frac(
                    &mut acc,
                    slot::DISCRIMINATOR_ACCURACY,
                    d_real,
                    d_fake,
                );

                // (3) batch classifier step.
                if !reuse {
                    tape.reset();
                }
                let (c_loss, logits) = model.classifier_graph(&mut tape, data, prep, &mb, z, rng);
                model.params.zero_grad(g.batch_classifier);
                tape.backward(c_loss, &mut model.params);
                opt_c.step(&mut model.params);
                tape.accumulate(&mut acc, &[(slot::BATCH_CROSS_ENTROPY, c_loss)]);
                tape.accumulate_argmax_hits(
                    &mut acc,
                    slot::BATCH_CLASSIFIER_ACCURACY,
                    logits,
                    &mb.batch,
                    None,
                );
                pb.inc(1);
                s += 1;
                // The running sums reach the host every `read_every` steps and at the epoch's
                // end: the divergence check and the progress bar read them there.
                if reads_after(s, read_every, steps) {
                    read_sums(&backend, &acc, &mut sums, epoch + 1)?;
                    let m = EpochLog::from_sums(&sums, s, epoch + 1, 0.0);
                    pb.set_message(format!(
                        "recon {:.1} kl {:.2} bc {:.3} batch-ce {:.3}",
                        m.reconstruction, m.kl, m.bhattacharyya, m.batch_cross_entropy
                    ));
                }
                on_step(StepProgress {
                    epoch: epoch + 1,
                    epochs: tc.epochs,
                    step: epoch * steps + s,
                    total_steps: tc.epochs * steps,
                })?;
            }
            Ok(())
        })?;
        // A source whose pieces leave a remainder may stop short of `steps`: read the rest.
        if !reads_after(s, read_every, steps) {
            read_sums(&backend, &acc, &mut sums, epoch + 1)?;
        }
        logs.push(EpochLog::from_sums(
            &sums,
            s,
            epoch + 1,
            t0.elapsed().as_secs_f64(),
        ));
    }
    pb.finish_and_clear();
    Ok(logs)
}
