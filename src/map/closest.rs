//! The reference batch each new batch starts from: the one under which the reference model
//! explains the new batch's cells best (highest ELBO on a sample of them).

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::backend::Backend;
use crate::map::surgery::BatchInit;
use crate::model::dataset::{DeviceData, PreparedData};
use crate::model::minibatch::Minibatch;
use crate::model::scdreamer::Scdreamer;
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
    new_codes
        .iter()
        .map(|&code| {
            let cells: Vec<u32> = rows
                .iter()
                .copied()
                .filter(|&r| prep.batch[r as usize] == code)
                .take(SAMPLE)
                .collect();
            if cells.len() < 2 {
                return Ok(BatchInit::Mean);
            }
            let mut mb = Minibatch::new(&backend, cells.len(), &data.tables);
            mb.load(&backend, &data.tables, &cells)?;
            let mut best = (f64::NEG_INFINITY, BatchInit::Mean);
            for b in 0..reference.cfg.n_batches as u32 {
                // The cells as if they came from reference batch b.
                mb.batch.reupload(&backend, &vec![b; cells.len()])?;
                // The same noise for every candidate: differences come from the rows alone.
                let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0xc105e);
                tape.reset();
                let g = reference.ae_graph(&mut tape, data, prep, &mb, &mut rng);
                let elbo = tape.scalar(g.losses[0]) as f64;
                if elbo.is_finite() && elbo > best.0 {
                    best = (elbo, BatchInit::Copy(b));
                }
            }
            Ok(best.1)
        })
        .collect()
}
