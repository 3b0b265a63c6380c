//! The scDREAMER training schedule (spec section 4): per minibatch, three named updates in
//! order: the autoencoder, the discriminator, the batch classifier.

use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::model::config::TrainConfig;
use crate::model::dataset::{DeviceData, PreparedData};
use crate::model::minibatch::Minibatch;
use crate::model::scdreamer::{AeGraph, Scdreamer};
use crate::nn::{Adam, AdamConfig};
use crate::ops::Backend;
use crate::tape::{Tape, Var};
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
fn read_sums<B: crate::ops::Backend>(
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
fn read_interval<B: crate::ops::Backend>(backend: &B, steps: usize) -> usize {
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
    let mut opt = Optimisers::new(model, tc);

    let n = source.n_train();
    let bs = tc.batch_size.min(n).max(2);
    let steps = source.steps_per_epoch(bs);
    if steps == 0 {
        anyhow::bail!(
            "no minibatch of {bs} cells can be formed from the {n} training cells \
             (with --backed, a chunk must hold at least one minibatch: raise --chunk-cells)"
        );
    }
    let pb = progress_bar(progress, tc.epochs * steps);
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
                opt.set_lr_factor(
                    tc,
                    tc.lr_schedule.factor(epoch * steps + s, tc.epochs * steps),
                );
                // The minibatch's rows are the step's one upload.
                tape.reset();
                mb.load(&backend, &data.tables, rows)?;
                let step = Step {
                    data,
                    prep,
                    mb: &mb,
                };
                let ae = autoencoder_update(model, &mut opt.ae, &mut tape, &step, &mut acc, rng);
                let (xhat, z) = if reuse {
                    (Some(ae.xhat), Some(ae.z))
                } else {
                    (None, None)
                };
                if !reuse {
                    tape.reset();
                }
                discriminator_update(
                    model,
                    &mut opt.discriminator,
                    &mut tape,
                    &step,
                    xhat,
                    &mut acc,
                    rng,
                );
                if !reuse {
                    tape.reset();
                }
                classifier_update(
                    model,
                    &mut opt.classifier,
                    &mut tape,
                    &step,
                    z,
                    &mut acc,
                    rng,
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

fn progress_bar(show: bool, total_steps: usize) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::new(total_steps as u64);
    pb.set_style(
        ProgressStyle::with_template(
            "{elapsed_precise} [{bar:30}] epoch {prefix} {msg} ({eta} left)",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    pb
}

/// The three optimisers of the schedule (spec section 4), one per update.
struct Optimisers<B: Backend> {
    ae: Adam<B>,
    discriminator: Adam<B>,
    classifier: Adam<B>,
}

impl<B: Backend> Optimisers<B> {
    fn new(model: &Scdreamer<B>, tc: &TrainConfig) -> Self {
        let g = model.groups;
        Optimisers {
            ae: Adam::new(
                &model.params,
                &model.ae_groups(),
                adam(tc.lr_ae, tc.clip_norm),
            ),
            discriminator: Adam::new(&model.params, &[g.discriminator], adam(tc.lr_dis, None)),
            classifier: Adam::new(&model.params, &[g.batch_classifier], adam(tc.lr_bc, None)),
        }
    }

    /// The learning rates of this step: the configured ones times the schedule's factor.
    fn set_lr_factor(&mut self, tc: &TrainConfig, f: f32) {
        self.ae.cfg.lr = tc.lr_ae * f;
        self.discriminator.cfg.lr = tc.lr_dis * f;
        self.classifier.cfg.lr = tc.lr_bc * f;
    }
}

/// What the three updates of one minibatch read.
struct Step<'a, B: Backend> {
    data: &'a DeviceData<B>,
    prep: &'a PreparedData,
    mb: &'a Minibatch<B>,
}

/// (1) The autoencoder update: one Adam step on `L_AE` (encoder, decoder, Sup's networks; every
/// group in the authors' preset). Returns the graph, whose x~ and z the adversaries may reuse.
fn autoencoder_update<B: Backend>(
    model: &mut Scdreamer<B>,
    opt: &mut Adam<B>,
    tape: &mut Tape<B>,
    step: &Step<'_, B>,
    acc: &mut B::AccBuf,
    rng: &mut ChaCha8Rng,
) -> AeGraph {
    let ae = model.ae_graph(tape, step.data, step.prep, step.mb, rng);
    for grp in model.groups.all() {
        model.params.zero_grad(grp);
    }
    tape.backward(ae.loss, &mut model.params);
    opt.step(&mut model.params);
    let l = &ae.losses;
    tape.accumulate(
        acc,
        &[
            (slot::LOSS_AE, ae.loss),
            (slot::ELBO, l.elbo),
            (slot::RECONSTRUCTION, l.reconstruction),
            (slot::KL, l.kl),
            (slot::CONSISTENCY, l.consistency),
            (slot::BHATTACHARYYA, l.bhattacharyya),
        ],
    );
    if let (Some(sup), Some((labels, mask))) = (&ae.sup, &step.mb.labels) {
        tape.accumulate(acc, &[(slot::LABEL_CROSS_ENTROPY, sup.label_ce)]);
        tape.accumulate_argmax_hits(acc, slot::LABEL_ACCURACY, sup.logits, labels, Some(mask));
    }
    ae
}

/// (2) The discriminator update: one Adam step on `ln(clip(BC))` of real x against x~ (reused
/// from the autoencoder's graph, detached, or a fresh forward pass).
fn discriminator_update<B: Backend>(
    model: &mut Scdreamer<B>,
    opt: &mut Adam<B>,
    tape: &mut Tape<B>,
    step: &Step<'_, B>,
    xhat: Option<Var>,
    acc: &mut B::AccBuf,
    rng: &mut ChaCha8Rng,
) {
    let (d_loss, d_real, d_fake) = model.disc_graph(tape, step.data, step.prep, step.mb, xhat, rng);
    model.params.zero_grad(model.groups.discriminator);
    tape.backward(d_loss, &mut model.params);
    opt.step(&mut model.params);
    tape.accumulate(acc, &[(slot::LOSS_DISCRIMINATOR, d_loss)]);
    tape.accumulate_greater_frac(acc, slot::DISCRIMINATOR_ACCURACY, d_real, d_fake);
}

/// (3) The batch classifier update: one Adam step on its cross-entropy of z (detached).
fn classifier_update<B: Backend>(
    model: &mut Scdreamer<B>,
    opt: &mut Adam<B>,
    tape: &mut Tape<B>,
    step: &Step<'_, B>,
    z: Option<Var>,
    acc: &mut B::AccBuf,
    rng: &mut ChaCha8Rng,
) {
    let (c_loss, logits) = model.classifier_graph(tape, step.data, step.prep, step.mb, z, rng);
    model.params.zero_grad(model.groups.batch_classifier);
    tape.backward(c_loss, &mut model.params);
    opt.step(&mut model.params);
    tape.accumulate(acc, &[(slot::BATCH_CROSS_ENTROPY, c_loss)]);
    tape.accumulate_argmax_hits(
        acc,
        slot::BATCH_CLASSIFIER_ACCURACY,
        logits,
        &step.mb.batch,
        None,
    );
}
