//! `infer`: one loop over a data set's chunks for everything a model computes per cell (the
//! embedding, Sup's label predictions, the batch-corrected expression), for data in memory and
//! streamed alike. Tapes and random streams carry over between chunks, so the chunks of a file
//! are embedded as one matrix would be.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::cells::{Cells, Resident};
use super::fit::Trained;
use crate::data::Csr;
use crate::model::dataset::{DeviceData, PreparedData};
use crate::model::scdreamer::Scdreamer;
use crate::model::sup::LabelPrediction;
use crate::ops::Backend;
use crate::tape::Tape;

/// Rows per inference chunk: bounded memory whatever the number of cells.
const CHUNK: usize = 4096;

/// A model and the data of one chunk it runs on: what every per-chunk pass reads. `tape` and
/// `rng` carry over between calls, so a matrix streamed in blocks is computed as one.
pub struct ModelOn<'a, B: Backend> {
    pub model: &'a Scdreamer<B>,
    pub data: &'a DeviceData<B>,
    pub prep: &'a PreparedData,
}

impl<B: Backend> ModelOn<'_, B> {
    /// The embedding of every cell of `prep` (see [`Trained::latent`]).
    pub fn embed(&self, tape: &mut Tape<B>, rng: &mut ChaCha8Rng) -> Vec<f32> {
        let mut out = Vec::with_capacity(self.prep.n_cells() * self.model.cfg.latent);
        for (rows, batch) in self.row_chunks() {
            let (data, prep) = (self.data, self.prep);
            out.extend(self.model.embed_rows(tape, data, prep, &rows, &batch, rng));
        }
        out
    }

    /// Sup: label probabilities of every cell, row-major; None for an unsupervised model.
    pub fn label_probs(&self, tape: &mut Tape<B>, rng: &mut ChaCha8Rng) -> Option<Vec<f32>> {
        let mut probs = Vec::with_capacity(self.prep.n_cells() * self.model.cfg.n_labels);
        for (rows, batch) in self.row_chunks() {
            let (data, prep) = (self.data, self.prep);
            probs.extend(
                self.model
                    .label_probs_rows(tape, data, prep, &rows, &batch, rng)?,
            );
        }
        Some(probs)
    }

    /// Batch-corrected expression of every cell (see [`Trained::normalized`]).
    pub fn normalized(
        &self,
        as_batch: Option<u32>,
        tape: &mut Tape<B>,
        rng: &mut ChaCha8Rng,
    ) -> Vec<f32> {
        let (model, prep) = (self.model, self.prep);
        let g = model.cfg.n_genes;
        let targets: Vec<u32> = match as_batch {
            Some(b) => vec![b],
            None => (0..model.cfg.n_batches as u32).collect(),
        };
        let w = 1e4 / targets.len() as f32;
        let mut out = vec![0f32; prep.n_cells() * g];
        for (ci, (rows, batch)) in self.row_chunks().enumerate() {
            let dst = &mut out[ci * CHUNK * g..(ci * CHUNK + rows.len()) * g];
            for &t in &targets {
                let rho = model.normalized_rows(tape, self.data, prep, &rows, &batch, t, rng);
                for (d, r) in dst.iter_mut().zip(&rho) {
                    *d += w * r;
                }
            }
        }
        out
    }

    /// The cells in chunks of at most [`CHUNK`] rows, in order, with their batch codes.
    fn row_chunks(&self) -> impl Iterator<Item = (Vec<u32>, Vec<u32>)> + '_ {
        let n = self.prep.n_cells();
        (0..n).step_by(CHUNK).map(move |r0| {
            let rows: Vec<u32> = (r0 as u32..(r0 + CHUNK).min(n) as u32).collect();
            let batch = rows.iter().map(|&r| self.prep.batch[r as usize]).collect();
            (rows, batch)
        })
    }
}

/// The seeds of the inference passes (shared by the resident and the streamed paths).
pub fn latent_rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed ^ 0xe4bed)
}

/// What [`infer`] computes.
#[derive(Clone, Copy, Debug)]
pub struct Inference {
    /// The embedding, its pass seeded by `seed` (the authors' preset samples z).
    pub latent: bool,
    pub seed: u64,
    /// Sup: the label predictions (nothing for an unsupervised model).
    pub labels: bool,
    /// The batch-corrected expression, decoded as batch `Some(b)` or averaged over every
    /// batch (`Some(None)`); `None` skips it.
    pub normalized: Option<Option<u32>>,
    /// Draws a progress bar over the cells.
    pub progress: bool,
}

/// What [`infer`] computed (empty or None where not asked for).
pub struct Inferred {
    /// `n_cells x latent`, row-major.
    pub latent: Vec<f32>,
    pub predicted: Option<LabelPrediction>,
    /// `n_cells x genes`, row-major, counts per 10,000.
    pub normalized: Option<Vec<f32>>,
}

/// Runs `model` over every cell of `cells`, chunk by chunk in order.
pub fn infer<B: Backend>(
    model: &Scdreamer<B>,
    cells: &dyn Cells<B>,
    what: &Inference,
) -> anyhow::Result<Inferred> {
    let n = cells.n_cells();
    let mut tape = Tape::new(model.params.backend().clone());
    let mut rng_latent = latent_rng(what.seed);
    // The label and normalized passes take no sample of z: their streams only need a seed.
    let mut rng_labels = ChaCha8Rng::seed_from_u64(0);
    let mut rng_norm = ChaCha8Rng::seed_from_u64(0);
    let mut latent = Vec::with_capacity(if what.latent { n * model.cfg.latent } else { 0 });
    let mut probs: Option<Vec<f32>> =
        (what.labels && model.cfg.n_labels > 0).then(|| Vec::with_capacity(n * model.cfg.n_labels));
    let mut norm = what
        .normalized
        .map(|_| Vec::with_capacity(n * model.cfg.n_genes));
    let pb = cells_bar(what.progress, n);
    cells.for_each_chunk(&mut |prep, data| {
        let on = ModelOn { model, data, prep };
        if what.latent {
            latent.extend(on.embed(&mut tape, &mut rng_latent));
        }
        if let Some(p) = probs.as_mut() {
            p.extend(
                on.label_probs(&mut tape, &mut rng_labels)
                    .unwrap_or_default(),
            );
        }
        if let (Some(out), Some(as_batch)) = (norm.as_mut(), what.normalized) {
            out.extend(on.normalized(as_batch, &mut tape, &mut rng_norm));
        }
        pb.inc(prep.n_cells() as u64);
        Ok(())
    })?;
    pb.finish_and_clear();
    Ok(Inferred {
        latent,
        predicted: probs.map(|p| LabelPrediction::from_probs(&p, model.cfg.n_labels)),
        normalized: norm,
    })
}

/// A progress bar over `n` cells (hidden when `show` is false).
fn cells_bar(show: bool, n: usize) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::with_draw_target(Some(n as u64), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template(
        "{msg} [{bar:40}] {percent}% ({human_pos}/{human_len} cells, {eta} left)",
    ) {
        pb.set_style(style.progress_chars("=> "));
    }
    pb.set_message("embedding the cells");
    pb
}

impl<B: Backend> Trained<B> {
    /// The raw counts trained on (cells x selected genes), wherever `fit` left them.
    pub fn counts<'a>(&'a self, prep: &'a PreparedData) -> &'a Csr {
        self.data.host_counts(prep)
    }

    /// The held data as [`Cells`]: one chunk, so [`infer`] on it is one call of each
    /// per-chunk function below.
    pub fn cells<'a>(&'a self, prep: &'a PreparedData) -> Resident<'a, B> {
        Resident {
            prep,
            data: &self.data,
            train_rows: &[],
        }
    }

    /// The model on the held data of `prep`, and a fresh tape.
    fn on<'a>(&'a self, prep: &'a PreparedData) -> (ModelOn<'a, B>, Tape<B>) {
        let on = ModelOn {
            model: &self.model,
            data: &self.data,
            prep,
        };
        (on, Tape::new(self.model.params.backend().clone()))
    }

    /// The embedding of every cell (`n_cells x latent`, row-major): posterior mean by default.
    pub fn latent(&self, prep: &PreparedData, seed: u64) -> Vec<f32> {
        let (on, mut tape) = self.on(prep);
        on.embed(&mut tape, &mut latent_rng(seed))
    }

    /// Sup: the predicted cell type of every cell (argmax softmax(Dense(z_mean))) and its
    /// probability; None for an unsupervised model.
    pub fn predict_labels(&self, prep: &PreparedData) -> Option<LabelPrediction> {
        let (on, mut tape) = self.on(prep);
        let probs = on.label_probs(&mut tape, &mut ChaCha8Rng::seed_from_u64(0))?;
        Some(LabelPrediction::from_probs(&probs, self.model.cfg.n_labels))
    }

    /// Batch-corrected expression (`n_cells x genes`, counts per 10,000): the decoder's rho for
    /// the posterior mean, decoded as batch `as_batch`, or averaged over all batches (None).
    pub fn normalized(&self, prep: &PreparedData, as_batch: Option<u32>) -> Vec<f32> {
        let (on, mut tape) = self.on(prep);
        on.normalized(as_batch, &mut tape, &mut ChaCha8Rng::seed_from_u64(0))
    }
}
