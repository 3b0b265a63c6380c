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

/// The embedding of every cell of `prep` (see [`Trained::latent`]); `tape` and `rng` carry over
/// between calls, so a matrix streamed in blocks is embedded as one.
pub fn embed_cells<B: Backend>(
    model: &Scdreamer<B>,
    data: &DeviceData<B>,
    prep: &PreparedData,
    tape: &mut Tape<B>,
    rng: &mut ChaCha8Rng,
) -> Vec<f32> {
    let n = prep.n_cells();
    let mut out = Vec::with_capacity(n * model.cfg.latent);
    let rows: Vec<u32> = (0..n as u32).collect();
    for chunk in rows.chunks(CHUNK) {
        let batch: Vec<u32> = chunk.iter().map(|&r| prep.batch[r as usize]).collect();
        out.extend(model.embed_rows(tape, data, prep, chunk, &batch, rng));
    }
    out
}

/// Sup: label probabilities of every cell of `prep`, row-major; None for an unsupervised model.
pub fn label_probs_cells<B: Backend>(
    model: &Scdreamer<B>,
    data: &DeviceData<B>,
    prep: &PreparedData,
    tape: &mut Tape<B>,
    rng: &mut ChaCha8Rng,
) -> Option<Vec<f32>> {
    let rows: Vec<u32> = (0..prep.n_cells() as u32).collect();
    let mut probs = Vec::with_capacity(rows.len() * model.cfg.n_labels);
    for chunk in rows.chunks(CHUNK) {
        let batch: Vec<u32> = chunk.iter().map(|&r| prep.batch[r as usize]).collect();
        probs.extend(model.label_probs_rows(tape, data, prep, chunk, &batch, rng)?);
    }
    Some(probs)
}

/// Batch-corrected expression of every cell of `prep` (see [`Trained::normalized`]).
pub fn normalized_cells<B: Backend>(
    model: &Scdreamer<B>,
    data: &DeviceData<B>,
    prep: &PreparedData,
    as_batch: Option<u32>,
    tape: &mut Tape<B>,
    rng: &mut ChaCha8Rng,
) -> Vec<f32> {
    let n = prep.n_cells();
    let g = model.cfg.n_genes;
    let targets: Vec<u32> = match as_batch {
        Some(b) => vec![b],
        None => (0..model.cfg.n_batches as u32).collect(),
    };
    let w = 1e4 / targets.len() as f32;
    let mut out = vec![0f32; n * g];
    let rows: Vec<u32> = (0..n as u32).collect();
    for (ci, chunk) in rows.chunks(CHUNK).enumerate() {
        let batch: Vec<u32> = chunk.iter().map(|&r| prep.batch[r as usize]).collect();
        let dst = &mut out[ci * CHUNK * g..(ci * CHUNK + chunk.len()) * g];
        for &t in &targets {
            let rho = model.normalized_rows(tape, data, prep, chunk, &batch, t, rng);
            for (d, r) in dst.iter_mut().zip(&rho) {
                *d += w * r;
            }
        }
    }
    out
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
        if what.latent {
            latent.extend(embed_cells(model, data, prep, &mut tape, &mut rng_latent));
        }
        if let Some(p) = probs.as_mut() {
            p.extend(
                label_probs_cells(model, data, prep, &mut tape, &mut rng_labels)
                    .unwrap_or_default(),
            );
        }
        if let (Some(out), Some(as_batch)) = (norm.as_mut(), what.normalized) {
            out.extend(normalized_cells(
                model,
                data,
                prep,
                as_batch,
                &mut tape,
                &mut rng_norm,
            ));
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

    fn tape(&self) -> Tape<B> {
        Tape::new(self.model.params.backend().clone())
    }

    /// The embedding of every cell (`n_cells x latent`, row-major): posterior mean by default.
    pub fn latent(&self, prep: &PreparedData, seed: u64) -> Vec<f32> {
        let mut rng = latent_rng(seed);
        embed_cells(&self.model, &self.data, prep, &mut self.tape(), &mut rng)
    }

    /// Sup: the predicted cell type of every cell (argmax softmax(Dense(z_mean))) and its
    /// probability; None for an unsupervised model.
    pub fn predict_labels(&self, prep: &PreparedData) -> Option<LabelPrediction> {
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let probs = label_probs_cells(&self.model, &self.data, prep, &mut self.tape(), &mut rng)?;
        Some(LabelPrediction::from_probs(&probs, self.model.cfg.n_labels))
    }

    /// Batch-corrected expression (`n_cells x genes`, counts per 10,000): the decoder's rho for
    /// the posterior mean, decoded as batch `as_batch`, or averaged over all batches (None).
    pub fn normalized(&self, prep: &PreparedData, as_batch: Option<u32>) -> Vec<f32> {
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        normalized_cells(
            &self.model,
            &self.data,
            prep,
            as_batch,
            &mut self.tape(),
            &mut rng,
        )
    }
}
