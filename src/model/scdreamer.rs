//! scDREAMER: the adversarial VAE with the Bhattacharyya discriminator and the adversarial batch
//! classifier (spec sections 2-3). This file builds the losses of one minibatch on the tape; the
//! schedule of updates lives in `train`.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::model::config::{
    AdversaryInput, BatchAdversary, Embed, Likelihood, Mask, ModelConfig, Target,
};
use crate::model::dataset::{DeviceData, PreparedData};
use crate::model::minibatch::Minibatch;
use crate::model::networks::{
    Classifier, Decoder, DiscInput, Discriminator, Encoder, EncoderOut, NewParams, Pass,
    SparseInput,
};
use crate::model::sup::{SupGraph, SupNets};
use crate::ops::Backend;
use crate::tape::{GroupId, Indices, Params, Tape, Var};

/// Parameter groups: one optimiser each.
#[derive(Clone, Copy, Debug)]
pub struct Groups {
    pub encoder: GroupId,
    pub decoder: GroupId,
    pub discriminator: GroupId,
    pub batch_classifier: GroupId,
    /// Sup: the label classifier and the y-VAE (None when unsupervised).
    pub sup: Option<GroupId>,
}

impl Groups {
    /// Every group (for zeroing gradients; no allocation, it runs every step).
    pub fn all(&self) -> impl Iterator<Item = GroupId> + use<> {
        [
            self.encoder,
            self.decoder,
            self.discriminator,
            self.batch_classifier,
        ]
        .into_iter()
        .chain(self.sup)
    }
}

pub struct Scdreamer<B: Backend> {
    pub cfg: ModelConfig,
    pub params: Params<B>,
    pub groups: Groups,
    pub encoder: Encoder,
    pub decoder: Decoder,
    pub discriminator: Discriminator,
    pub batch_classifier: Classifier,
    /// scDREAMER-Sup networks (when `cfg.n_labels > 0`).
    pub sup: Option<SupNets>,
    /// The q of Sup's label loss for the next step (the trainer sets it: see
    /// [`crate::model::config::LabelLoss::q_at`]).
    pub label_q: f32,
}

/// The terms of one minibatch's autoencoder loss, by name (each [1, 1]; means over the cells).
pub struct AeLosses {
    pub elbo: Var,
    pub reconstruction: Var,
    pub kl: Var,
    /// The masked-input consistency term (0 when off).
    pub consistency: Var,
    pub bhattacharyya: Var,
    pub batch_cross_entropy: Var,
}

/// Vars of the AE forward that the adversaries' steps reuse.
pub struct AeGraph {
    pub loss: Var,
    pub xhat: Var,
    /// What the batch classifier sees: the sampled z or the posterior mean.
    pub z: Var,
    pub losses: AeLosses,
    /// Sup terms (label loss, hierarchical KL) when the model is supervised.
    pub sup: Option<SupGraph>,
    /// The minibatch's input gathered densely (dense data), for the discriminator's step.
    pub dense_input: Option<Var>,
    /// D2's scores of the real and the reconstructed cells.
    pub disc_scores: (Var, Var),
}

impl<B: Backend> Scdreamer<B> {
    pub fn new(backend: &B, cfg: ModelConfig, rng: &mut ChaCha8Rng) -> Self {
        let mut params = Params::new(backend.clone());
        let groups = Groups {
            encoder: params.group("encoder"),
            decoder: params.group("decoder"),
            discriminator: params.group("discriminator"),
            batch_classifier: params.group("batch_classifier"),
            sup: None,
        };
        let latent_library = cfg.target == Target::AuthorsScaled;
        let encoder = Encoder::new(
            NewParams::new(&mut params, groups.encoder, rng),
            &cfg,
            latent_library,
        );
        let decoder = Decoder::new(NewParams::new(&mut params, groups.decoder, rng), &cfg);
        let discriminator =
            Discriminator::new(NewParams::new(&mut params, groups.discriminator, rng), &cfg);
        let dims = (cfg.latent, cfg.n_batches);
        let classifier_params = NewParams::new(&mut params, groups.batch_classifier, rng);
        let batch_classifier = Classifier::new(classifier_params, "disb", dims, &cfg);
        // Sup parameters are created last so the unsupervised initialisation is unchanged.
        let mut groups = groups;
        let sup = (cfg.n_labels > 0).then(|| {
            let g = params.group("sup");
            groups.sup = Some(g);
            SupNets::new(NewParams::new(&mut params, g, rng), &cfg)
        });
        let label_q = cfg.label_loss.q();
        Scdreamer {
            cfg,
            params,
            groups,
            encoder,
            decoder,
            discriminator,
            batch_classifier,
            sup,
            label_q,
        }
    }

    /// Groups the AE optimiser moves: encoder + decoder, or every group (authors' code).
    pub fn ae_groups(&self) -> Vec<GroupId> {
        let g = self.groups;
        let mut groups = if self.cfg.ae_updates_adversaries {
            vec![g.encoder, g.decoder, g.discriminator, g.batch_classifier]
        } else {
            vec![g.encoder, g.decoder]
        };
        // Sup: the label classifier and the y-VAE are trained by the AE loss (authors' code).
        groups.extend(g.sup);
        groups
    }

    fn input<'a>(&self, data: &'a DeviceData<B>, prep: &PreparedData) -> SparseInput<'a, B> {
        let (d, transform, scale) = data.input(prep);
        SparseInput {
            data: d,
            transform,
            scale,
            dense: None,
        }
    }

    /// The input of a training step on `mb`: on dense data its rows gathered densely once for
    /// every first layer of the step (`gathered`: that gather, already on this tape).
    fn train_input<'a>(
        &self,
        tape: &mut Tape<B>,
        data: &'a DeviceData<B>,
        prep: &PreparedData,
        mb: &Minibatch<B>,
        gathered: Option<Var>,
    ) -> SparseInput<'a, B> {
        let mut input = self.input(data, prep);
        input.dense = match gathered {
            Some(x) => Some(x),
            None if input.dense_enough() => {
                Some(tape.gather_dense_t(input.data, mb.rows(), input.transform))
            }
            None => None,
        };
        input
    }

    /// Builds the autoencoder loss `L_AE = -ELBO + w_c A - w_d ln(clip(BC))` (spec section 3, with
    /// the weights of the config), where A = -L_C (authors) or the cross-entropy to uniform and returns the vars the adversaries reuse.
    /// With `disc_grads` the backward of the loss also fills D2's gradients: `-w_d` times those
    /// of D2's own loss `ln(clip(BC))` on the same forward (see [`Scdreamer::fused_disc_step`]).
    pub fn ae_graph(
        &self,
        tape: &mut Tape<B>,
        data: &DeviceData<B>,
        prep: &PreparedData,
        mb: &Minibatch<B>,
        disc_grads: bool,
        rng: &mut ChaCha8Rng,
    ) -> AeGraph {
        let cfg = &self.cfg;
        let p = &self.params;
        let n = mb.len();
        let input = self.train_input(tape, data, prep, mb, None);
        let (enc, z) = self.encode_train(tape, &input, mb, rng);
        let dec = self
            .decoder
            .forward(tape, self.train_pass(), z, mb.batch(), true, rng);

        // Library size: observed (counts target) or the sampled latent l (authors).
        let (lib, kl_l) = match (&enc.lib, cfg.target) {
            (Some((lm, lv)), Target::AuthorsScaled) => {
                let l = tape.sample_gaussian(*lm, *lv, rng);
                let lib = tape.exp(l);
                let (mu_l, var_l) = prep.constants.library_prior;
                let m2 = tape.filled(n, 1, mu_l);
                let v2 = tape.filled(n, 1, var_l);
                (lib, Some(tape.kl_normal(*lm, *lv, m2, v2)))
            }
            _ => (tape.copy_of(&mb.library, n, 1), None),
        };
        let mu = tape.mul_rows(dec.rho, lib);
        let log_theta = tape.param(p, self.decoder.log_theta);
        let theta = tape.exp(log_theta);
        let target = tape.gather_dense(data.target(), mb.rows());
        let recon = match (cfg.likelihood, dec.dropout_logit) {
            (Likelihood::Zinb, Some(logit)) => tape.zinb_loglik(target, mu, theta, logit),
            _ => tape.nb_loglik(target, mu, theta),
        };
        // Sup: the prior of z is N(f(y, pi_c)) instead of N(0, I), plus KL_y.
        let sup = self.sup.as_ref().map(|s| {
            let (labels, mask) = mb
                .labels
                .as_ref()
                .expect("a Sup model trains on data with labels");
            let labels = (labels.into(), mask);
            s.forward(
                tape,
                p,
                cfg,
                self.label_q,
                labels,
                (z, enc.z_mean, enc.z_var),
                rng,
            )
        });
        let mut kl = match &sup {
            Some(s) => tape.add(s.kl_z, s.kl_y),
            None => tape.kl_std_normal(enc.z_mean, enc.z_var),
        };
        if let Some(kl_l) = kl_l {
            kl = tape.add(kl, kl_l);
        }
        let kl_scaled = tape.scale(kl, cfg.kl_weight);
        let elbo_rows = tape.sub(recon, kl_scaled);
        let mut elbo = tape.mean(elbo_rows);

        // Masked-input consistency: z' from x with some gene columns zeroed.
        let consistency = if cfg.mask != Mask::Off && cfg.consistency_weight > 0.0 {
            let mask = gene_mask(cfg.mask, cfg.n_genes, rng);
            let m = tape.input(cfg.n_genes, 1, &mask);
            let enc2 = self.encoder.forward(
                tape,
                self.train_pass(),
                &input,
                (mb.rows(), mb.batch()),
                Some(m),
                rng,
            );
            let z2 = tape.sample_gaussian(enc2.z_mean, enc2.z_var, rng);
            let d = tape.sub(z, z2);
            let sq = tape.square(d);
            let c = tape.sum(sq);
            let cw = tape.scale(c, cfg.consistency_weight);
            elbo = tape.sub(elbo, cw);
            c
        } else {
            tape.filled(1, 1, 0.0)
        };

        // Discriminator D2 on real x and on x~, paired index by index. The adversaries' weights
        // get gradients here only when the AE optimiser moves them (or D2's step reads them).
        let adversary = self.train_pass().frozen(!cfg.ae_updates_adversaries);
        let disc_pass = adversary.frozen(!cfg.ae_updates_adversaries && !disc_grads);
        let real = DiscInput::Real {
            input: &input,
            rows: mb.rows(),
        };
        let disc_real = self.discriminator.forward(tape, disc_pass, real, rng);
        let fake = DiscInput::Reconstructed(dec.xhat);
        let disc_fake = self.discriminator.forward(tape, disc_pass, fake, rng);
        let bc = tape.bhattacharyya_loss(disc_real, disc_fake);

        // Adversarial batch classifier on the sampled z or on the posterior mean.
        let z_adv = self.adversary_input(&enc, z);
        let batch_logits = self.batch_classifier.forward(tape, adversary, z_adv, rng);
        let ce = tape.cross_entropy(batch_logits, mb.batch(), None);
        let adv = match cfg.batch_adversary {
            BatchAdversary::MaxCrossEntropy => tape.scale(ce, -1.0),
            BatchAdversary::Uniform => {
                let p = tape.softmax_rows(batch_logits);
                let p = tape.clamp(p, 1e-8, 1.0);
                let lp = tape.log(p);
                let m = tape.mean(lp);
                tape.scale(m, -1.0)
            }
        };

        let neg_elbo = tape.scale(elbo, -1.0);
        let ce_term = tape.scale(adv, cfg.batch_adv_weight);
        let bc_term = tape.scale(bc, -cfg.disc_weight);
        let l = tape.add(neg_elbo, ce_term);
        let mut loss = tape.add(l, bc_term);
        if let Some(s) = &sup {
            let label_term = tape.scale(s.label_ce, cfg.label_weight);
            loss = tape.add(loss, label_term);
        }
        let recon_mean = tape.mean(recon);
        let kl_mean = tape.mean(kl);
        AeGraph {
            loss,
            xhat: dec.xhat,
            z: z_adv,
            losses: AeLosses {
                elbo,
                reconstruction: recon_mean,
                kl: kl_mean,
                consistency,
                bhattacharyya: bc,
                batch_cross_entropy: ce,
            },
            sup,
            dense_input: input.dense,
            disc_scores: (disc_real, disc_fake),
        }
    }

    /// Whether D2's step can take its gradient from the AE backward (`ae_graph` with
    /// `disc_grads`) instead of its own forward and backward: D2's loss `ln(clip(BC))` is the
    /// AE loss's term scaled by `-w_d`, on the same real cells and the same x~ (detached either
    /// way), with D2's weights unchanged by the AE step. Not when the AE optimiser moves D2
    /// too (its gradient would be the sum of both) or `w_d` is 0.
    pub fn fused_disc_step(&self) -> bool {
        !self.cfg.ae_updates_adversaries
            && !self.cfg.separate_adversary_forward
            && self.cfg.disc_weight != 0.0
    }

    /// Discriminator loss `ln(clip(BC))` (and D's scores of real and reconstructed cells) on real x and a reconstruction it cannot change.
    /// With `ae` (this step's AE graph, on this tape), x~ comes detached from it and the input
    /// gathered there is reused; otherwise a fresh forward pass.
    pub fn disc_graph(
        &self,
        tape: &mut Tape<B>,
        data: &DeviceData<B>,
        prep: &PreparedData,
        mb: &Minibatch<B>,
        ae: Option<&AeGraph>,
        rng: &mut ChaCha8Rng,
    ) -> (Var, Var, Var) {
        let input = self.train_input(tape, data, prep, mb, ae.and_then(|a| a.dense_input));
        let xhat = match ae.map(|a| a.xhat) {
            Some(x) => tape.detach(x),
            None => {
                let (_, z) = self.encode_train(tape, &input, mb, rng);
                let dec = self
                    .decoder
                    .forward(tape, self.train_pass(), z, mb.batch(), true, rng);
                tape.detach(dec.xhat)
            }
        };
        let real = DiscInput::Real {
            input: &input,
            rows: mb.rows(),
        };
        let real = self
            .discriminator
            .forward(tape, self.train_pass(), real, rng);
        let fake = DiscInput::Reconstructed(xhat);
        let fake = self
            .discriminator
            .forward(tape, self.train_pass(), fake, rng);
        (tape.bhattacharyya_loss(real, fake), real, fake)
    }

    /// Batch classifier loss: mean cross-entropy of C(z) with z detached.
    /// Returns (loss, logits).
    pub fn classifier_graph(
        &self,
        tape: &mut Tape<B>,
        data: &DeviceData<B>,
        prep: &PreparedData,
        mb: &Minibatch<B>,
        z: Option<Var>,
        rng: &mut ChaCha8Rng,
    ) -> (Var, Var) {
        let z = match z {
            Some(z) => tape.detach(z),
            None => {
                let input = self.train_input(tape, data, prep, mb, None);
                let (enc, z) = self.encode_train(tape, &input, mb, rng);
                let z = self.adversary_input(&enc, z);
                tape.detach(z)
            }
        };
        let logits = self
            .batch_classifier
            .forward(tape, self.train_pass(), z, rng);
        (tape.cross_entropy(logits, mb.batch(), None), logits)
    }

    /// A training pass of the networks (dropout on, nothing frozen).
    fn train_pass(&self) -> Pass<'_, B> {
        Pass::train(&self.params, &self.cfg)
    }

    /// The latent vector the batch classifier sees (config `adversary_input`).
    fn adversary_input(&self, enc: &EncoderOut, z: Var) -> Var {
        match self.cfg.adversary_input {
            AdversaryInput::Sample => z,
            AdversaryInput::Mean => enc.z_mean,
        }
    }

    /// Encoder pass for training (dropout on) and a reparameterised sample of z.
    fn encode_train(
        &self,
        tape: &mut Tape<B>,
        input: &SparseInput<B>,
        mb: &Minibatch<B>,
        rng: &mut ChaCha8Rng,
    ) -> (EncoderOut, Var) {
        let enc = self.encoder.forward(
            tape,
            self.train_pass(),
            input,
            (mb.rows(), mb.batch()),
            None,
            rng,
        );
        let z = tape.sample_gaussian(enc.z_mean, enc.z_var, rng);
        (enc, z)
    }

    /// Encoder pass for inference (a fresh tape, no dropout, no gradients).
    pub fn encode_eval(
        &self,
        tape: &mut Tape<B>,
        data: &DeviceData<B>,
        prep: &PreparedData,
        rows: &[u32],
        batch: &[u32],
        rng: &mut ChaCha8Rng,
    ) -> EncoderOut {
        tape.reset();
        tape.set_grad_enabled(false);
        let input = self.input(data, prep);
        self.encoder.forward(
            tape,
            Pass::eval(&self.params, &self.cfg),
            &input,
            (Indices::Host(rows), Indices::Host(batch)),
            None,
            rng,
        )
    }

    /// The embedding of cells `rows` (inference: no dropout): posterior mean, or a sample.
    pub fn embed_rows(
        &self,
        tape: &mut Tape<B>,
        data: &DeviceData<B>,
        prep: &PreparedData,
        rows: &[u32],
        batch: &[u32],
        rng: &mut ChaCha8Rng,
    ) -> Vec<f32> {
        let enc = self.encode_eval(tape, data, prep, rows, batch, rng);
        let z = match self.cfg.embed {
            Embed::Mean => enc.z_mean,
            Embed::Sample => tape.sample_gaussian(enc.z_mean, enc.z_var, rng),
        };
        tape.to_host(z)
    }

    /// Decoder expression frequencies rho for cells `rows`, decoded as batch `as_batch` for all
    /// of them (`transform_batch` in scvi-tools terms). Returns rows x genes.
    #[allow(clippy::too_many_arguments)]
    pub fn normalized_rows(
        &self,
        tape: &mut Tape<B>,
        data: &DeviceData<B>,
        prep: &PreparedData,
        rows: &[u32],
        batch: &[u32],
        as_batch: u32,
        rng: &mut ChaCha8Rng,
    ) -> Vec<f32> {
        let enc = self.encode_eval(tape, data, prep, rows, batch, rng);
        let target = vec![as_batch; rows.len()];
        let dec = self.decoder.forward(
            tape,
            Pass::eval(&self.params, &self.cfg),
            enc.z_mean,
            Indices::Host(&target),
            false,
            rng,
        );
        tape.to_host(dec.rho)
    }

    /// Label probabilities softmax(Dense(z_mean)) of cells `rows` (inference, no dropout),
    /// row-major [rows, C]; None for an unsupervised model.
    pub fn label_probs_rows(
        &self,
        tape: &mut Tape<B>,
        data: &DeviceData<B>,
        prep: &PreparedData,
        rows: &[u32],
        batch: &[u32],
        rng: &mut ChaCha8Rng,
    ) -> Option<Vec<f32>> {
        let sup = self.sup.as_ref()?;
        let enc = self.encode_eval(tape, data, prep, rows, batch, rng);
        let logits = sup.logits(tape, &self.params, enc.z_mean);
        let probs = tape.softmax_rows(logits);
        Some(tape.to_host(probs))
    }
}

/// 0/1 per gene: 0 for the masked columns (same for every cell of the minibatch).
fn gene_mask(mask: Mask, n_genes: usize, rng: &mut ChaCha8Rng) -> Vec<f32> {
    let mut m = vec![1.0f32; n_genes];
    match mask {
        Mask::Random10pct => {
            for v in &mut m {
                if rng.r#gen::<f32>() < 0.1 {
                    *v = 0.0;
                }
            }
        }
        Mask::First100 => m.iter_mut().take(100).for_each(|v| *v = 0.0),
        Mask::Off => {}
    }
    m
}
