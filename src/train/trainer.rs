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
        grad_scale: 1.0,
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
    let fused = model.fused_disc_step();
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
                let (t, total) = (epoch * steps + s, tc.epochs * steps);
                opt.set_lr_factor(tc, tc.lr_schedule.factor(t, total));
                model.label_q = model.cfg.label_loss.q_at(t, total);
                // The minibatch's rows are the step's one upload.
                tape.reset();
                mb.load(&backend, &data.tables, rows)?;
                let step = Step {
                    data,
                    prep,
                    mb: &mb,
                };
                let ae =
                    autoencoder_update(model, &mut opt.ae, &mut tape, &step, fused, &mut acc, rng);
                let z = reuse.then_some(ae.z);
                if fused {
                    fused_discriminator_update(
                        model,
                        &mut opt.discriminator,
                        &mut tape,
                        &ae,
                        &mut acc,
                    );
                } else {
                    if !reuse {
                        tape.reset();
                    }
                    discriminator_update(
                        model,
                        &mut opt.discriminator,
                        &mut tape,
                        &step,
                        reuse.then_some(&ae),
                        &mut acc,
                        rng,
                    );
                }
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
        let mut dis = adam(tc.lr_dis, None);
        if model.fused_disc_step() {
            // D2's gradient is left by the AE backward, whose term is -w_d ln(clip(BC)).
            dis.grad_scale = -1.0 / model.cfg.disc_weight;
        }
        Optimisers {
            ae: Adam::new(
                &model.params,
                &model.ae_groups(),
                adam(tc.lr_ae, tc.clip_norm),
            ),
            discriminator: Adam::new(&model.params, &[g.discriminator], dis),
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
/// With `disc_grads` its backward also leaves D2's gradient for [`fused_discriminator_update`].
fn autoencoder_update<B: Backend>(
    model: &mut Scdreamer<B>,
    opt: &mut Adam<B>,
    tape: &mut Tape<B>,
    step: &Step<'_, B>,
    disc_grads: bool,
    acc: &mut B::AccBuf,
    rng: &mut ChaCha8Rng,
) -> AeGraph {
    let ae = model.ae_graph(tape, step.data, step.prep, step.mb, disc_grads, rng);
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
/// from the autoencoder's graph `ae`, detached, or a fresh forward pass).
fn discriminator_update<B: Backend>(
    model: &mut Scdreamer<B>,
    opt: &mut Adam<B>,
    tape: &mut Tape<B>,
    step: &Step<'_, B>,
    ae: Option<&AeGraph>,
    acc: &mut B::AccBuf,
    rng: &mut ChaCha8Rng,
) {
    let (d_loss, d_real, d_fake) = model.disc_graph(tape, step.data, step.prep, step.mb, ae, rng);
    model.params.zero_grad(model.groups.discriminator);
    tape.backward(d_loss, &mut model.params);
    opt.step(&mut model.params);
    tape.accumulate(acc, &[(slot::LOSS_DISCRIMINATOR, d_loss)]);
    tape.accumulate_greater_frac(acc, slot::DISCRIMINATOR_ACCURACY, d_real, d_fake);
}

/// (2), fused: the discriminator's Adam step from the gradient the AE backward left in D2's
/// weights (`-w_d` times that of `ln(clip(BC))`: the optimiser's gradient scale turns it back),
/// so D2 runs one forward and one backward a step instead of two each. The same update as
/// [`discriminator_update`] with reuse, except that D2's dropout masks are the AE pass's.
fn fused_discriminator_update<B: Backend>(
    model: &mut Scdreamer<B>,
    opt: &mut Adam<B>,
    tape: &mut Tape<B>,
    ae: &AeGraph,
    acc: &mut B::AccBuf,
) {
    opt.step(&mut model.params);
    let (d_real, d_fake) = ae.disc_scores;
    tape.accumulate(acc, &[(slot::LOSS_DISCRIMINATOR, ae.losses.bhattacharyya)]);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::Memory;
    use crate::backend::cpu::Cpu;
    use crate::model::config::ModelConfig;
    use crate::ops::csr_matmul::tests::random_csr;

    /// Counts of `cells` x `genes` at half density (dense input), two batches.
    fn data(cells: usize, genes: usize) -> PreparedData {
        let counts = random_csr(cells, genes, 0.5, 11);
        let total: Vec<f32> = counts.row_sums().iter().map(|&s| s as f32).collect();
        let batch = (0..cells as u32).map(|i| i % 2).collect();
        let cfg = ModelConfig::default_preset(genes, 2, 0);
        PreparedData::new(
            counts,
            &total,
            batch,
            vec!["a".into(), "b".into()],
            &cfg,
            None,
        )
    }

    /// D2's gradient from the AE backward, scaled by -1/w_d, is the one of its own forward and
    /// backward on the reused x~ (dropout off, so both passes see the same network; a disc
    /// weight other than 1, so a missing scale shows), and the update moves D2 the same.
    #[test]
    fn fused_discriminator_step_equals_its_own_backward() {
        let prep = data(24, 30);
        let cpu = Cpu::new();
        let dd = DeviceData::upload(&cpu, &prep).unwrap();
        let mut cfg = ModelConfig::default_preset(30, 2, 0);
        cfg.hidden = vec![16];
        cfg.keep_prob = 1.0;
        cfg.disc_weight = 2.5;
        let tc = TrainConfig::default_preset(24, 2, 0, 0);
        let rows: Vec<u32> = (0..16).collect();
        let (mut after, mut grads) = (vec![], vec![]);
        for fused in [true, false] {
            let mut model = Scdreamer::new(&cpu, cfg.clone(), &mut ChaCha8Rng::seed_from_u64(3));
            assert!(model.fused_disc_step());
            let mut opt = Optimisers::new(&model, &tc);
            if !fused {
                opt.discriminator.cfg.grad_scale = 1.0;
            }
            let mut tape = Tape::new(cpu.clone());
            let mut acc = cpu.alloc_acc(slot::COUNT);
            let mut mb = Minibatch::new(&cpu, rows.len(), &dd.tables);
            mb.load(&cpu, &dd.tables, &rows).unwrap();
            let step = Step {
                data: &dd,
                prep: &prep,
                mb: &mb,
            };
            let rng = &mut ChaCha8Rng::seed_from_u64(5);
            let ae = autoencoder_update(
                &mut model,
                &mut opt.ae,
                &mut tape,
                &step,
                fused,
                &mut acc,
                rng,
            );
            if fused {
                fused_discriminator_update(
                    &mut model,
                    &mut opt.discriminator,
                    &mut tape,
                    &ae,
                    &mut acc,
                );
            } else {
                let d = &mut opt.discriminator;
                discriminator_update(&mut model, d, &mut tape, &step, Some(&ae), &mut acc, rng);
            }
            // The gradient the optimiser stepped on, as it read it.
            let scale = opt.discriminator.cfg.grad_scale;
            let ids = model.params.ids_in(model.groups.discriminator);
            let read = |id| {
                model
                    .params
                    .grad_to_host(id)
                    .iter()
                    .map(|g| g * scale)
                    .collect()
            };
            grads.push(ids.iter().map(|&id| read(id)).collect::<Vec<Vec<f32>>>());
            after.push(
                ids.iter()
                    .map(|&id| model.params.value_to_host(id))
                    .collect::<Vec<_>>(),
            );
        }
        for (f, s) in grads[0].iter().flatten().zip(grads[1].iter().flatten()) {
            assert!(
                (f - s).abs() <= 1e-5 * (1.0 + s.abs()),
                "gradient {f} vs {s}"
            );
        }
        let before = {
            let model = Scdreamer::new(&cpu, cfg.clone(), &mut ChaCha8Rng::seed_from_u64(3));
            let ids = model.params.ids_in(model.groups.discriminator);
            ids.iter()
                .map(|&id| model.params.value_to_host(id))
                .collect::<Vec<_>>()
        };
        let mut moved = 0.0f32;
        for ((f, s), b) in after[0].iter().zip(&after[1]).zip(&before) {
            for ((x, y), z) in f.iter().zip(s).zip(b) {
                assert!((x - y).abs() <= 1e-6, "fused {x} vs own backward {y}");
                moved = moved.max((y - z).abs());
            }
        }
        assert!(moved > 1e-4, "the discriminator did not move ({moved})");
    }
}
