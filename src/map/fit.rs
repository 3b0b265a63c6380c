//! Training the query's new batch parameters with every reference weight frozen (scArches
//! surgery). Only the rows (or columns) of the new batches move: the loss is the reference's
//! autoencoder loss on the query cells, and the update is Adam applied on the host to those rows,
//! so the training step itself needs no freezing hook.

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use crate::map::surgery::BATCH_ROW_PARAMS;
use crate::model::dataset::{DeviceData, PreparedData};
use crate::model::minibatch::Minibatch;
use crate::model::scdreamer::Scdreamer;
use crate::ops::Backend;
use crate::tape::{ParamId, Tape};

/// Settings of the query training.
#[derive(Clone, Copy, Debug)]
pub struct QueryFit {
    pub epochs: usize,
    pub batch_size: usize,
    pub lr: f32,
    pub seed: u64,
}

/// Adam state of the trainable rows of one parameter.
struct Slot {
    id: ParamId,
    /// First trainable element (the first new batch's row).
    start: usize,
    m: Vec<f32>,
    v: Vec<f32>,
}

/// Trains the rows of batches `first_new..` of every per-batch parameter on the cells `rows`.
/// Returns the mean autoencoder loss of each epoch.
pub fn fit_new_batches<B: Backend>(
    model: &mut Scdreamer<B>,
    data: &DeviceData<B>,
    prep: &PreparedData,
    rows: &[u32],
    first_new: usize,
    fit: &QueryFit,
) -> anyhow::Result<Vec<f64>> {
    let mut slots: Vec<Slot> = BATCH_ROW_PARAMS
        .iter()
        .filter_map(|n| model.params.find(n))
        .map(|id| {
            let (r, c) = model.params.shape(id);
            let start = first_new * c;
            Slot {
                id,
                start,
                m: vec![0.0; r * c - start],
                v: vec![0.0; r * c - start],
            }
        })
        .collect();
    let bs = fit.batch_size.min(rows.len()).max(1);
    let mut rng = ChaCha8Rng::seed_from_u64(fit.seed ^ 0x9a7_0001);
    let mut tape = Tape::new(model.params.backend().clone());
    let mut order = rows.to_vec();
    let backend = model.params.backend().clone();
    let mut mb = Minibatch::new(&backend, bs, &data.tables);
    let mut losses = Vec::with_capacity(fit.epochs);
    let mut t = 0i32;
    for epoch in 0..fit.epochs {
        order.shuffle(&mut rng);
        let (mut sum, mut steps) = (0f64, 0usize);
        for mb_rows in order.chunks_exact(bs) {
            mb.load(&backend, &data.tables, mb_rows)?;
            tape.reset();
            let ae = model.ae_graph(&mut tape, data, prep, &mb, false, &mut rng);
            let loss = tape.scalar(ae.loss);
            if !loss.is_finite() {
                anyhow::bail!(
                    "training the query's batch parameters diverged (loss {loss} in epoch {}); \
                     nothing was written. Try fewer --epochs",
                    epoch + 1
                );
            }
            model.params.zero_all_grads();
            tape.backward(ae.loss, &mut model.params);
            t += 1;
            for s in &mut slots {
                adam_rows(model, s, fit.lr, t)?;
            }
            sum += loss as f64;
            steps += 1;
        }
        losses.push(sum / steps.max(1) as f64);
    }
    Ok(losses)
}

/// One Adam step (betas 0.9 / 0.999, no weight decay) on the trainable rows of `s`.
fn adam_rows<B: Backend>(
    model: &mut Scdreamer<B>,
    s: &mut Slot,
    lr: f32,
    t: i32,
) -> anyhow::Result<()> {
    let (b1, b2, eps) = (0.9f32, 0.999f32, 1e-8f32);
    let g = model.params.grad_to_host(s.id);
    let mut w = model.params.value_to_host(s.id);
    let (c1, c2) = (1.0 - b1.powi(t), 1.0 - b2.powi(t));
    for (i, (wi, gi)) in w[s.start..].iter_mut().zip(&g[s.start..]).enumerate() {
        s.m[i] = b1 * s.m[i] + (1.0 - b1) * gi;
        s.v[i] = b2 * s.v[i] + (1.0 - b2) * gi * gi;
        *wi -= lr * (s.m[i] / c1) / ((s.v[i] / c2).sqrt() + eps);
    }
    model.params.set_value(s.id, &w)
}
