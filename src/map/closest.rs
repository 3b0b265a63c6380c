//! The reference batch each new batch starts from: the one under which the reference model
//! explains the new batch's cells best (highest ELBO on a sample of them).

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::map::surgery::{self, BatchInit};
use crate::model::dataset::{DeviceData, PreparedData};
use crate::model::minibatch::Minibatch;
use crate::model::scdreamer::Scdreamer;
use crate::ops::Backend;
use crate::tape::Tape;

/// Cells of a new batch scored per candidate (enough for a stable mean, bounded cost).
const SAMPLE: usize = 512;

/// For each code in `new_codes`, the reference batch of `reference` (not yet extended) whose
/// rows give the cells of that code (among `rows`) the highest ELBO; `Mean` when it has fewer
/// than 2 cells.
pub fn closest_reference_batches<B: Backend>(
    reference: &Scdreamer<B>,
    data: &DeviceData<B>,
    prep: &PreparedData,
    rows: &[u32],
    new_codes: &[u32],
    seed: u64,
) -> anyhow::Result<Vec<BatchInit>> {
    let backend = reference.params.backend().clone();
    let mut tape = Tape::new(backend.clone());
    let mut best = vec![(f64::NEG_INFINITY, BatchInit::Mean); new_codes.len()];
    for b in 0..reference.cfg.n_batches as u32 {
        // Every new batch as a copy of reference batch b.
        let candidate = surgery::extend(reference, &vec![BatchInit::Copy(b); new_codes.len()])?;
        for (slot, &code) in best.iter_mut().zip(new_codes) {
            let cells: Vec<u32> = rows
                .iter()
                .copied()
                .filter(|&r| prep.batch[r as usize] == code)
                .take(SAMPLE)
                .collect();
            if cells.len() < 2 {
                continue;
            }
            let mut mb = Minibatch::new(&backend, cells.len(), &data.tables);
            mb.load(&backend, &data.tables, &cells)?;
            // The same noise for every candidate: differences come from the rows alone.
            let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0xc105e);
            tape.reset();
            let g = candidate.ae_graph(&mut tape, data, prep, &mb, false, &mut rng);
            let elbo = tape.scalar(g.losses.elbo) as f64;
            if elbo.is_finite() && elbo > slot.0 {
                *slot = (elbo, BatchInit::Copy(b));
            }
        }
    }
    Ok(best.into_iter().map(|(_, init)| init).collect())
}
