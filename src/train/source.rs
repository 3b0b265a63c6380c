//! Where the trainer's cells come from: the resident matrix, or (`--backed`) chunks of
//! cells read from disk. The trainer only sees pieces of resident data and row orders.

use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use crate::model::dataset::{DeviceData, PreparedData};
use crate::ops::Backend;

/// The trainer's callback for one piece of an epoch: `(data, prep, rows, rng)`.
pub type Visit<'v, B> =
    dyn FnMut(&DeviceData<B>, &PreparedData, &[u32], &mut ChaCha8Rng) -> anyhow::Result<()> + 'v;

/// Where the training cells come from, epoch by epoch: the whole resident matrix
/// ([`InMemory`]) or blocks of cells read from disk (`backed::ChunkSource`). A source hands
/// the trainer one or more pieces per epoch, each a resident matrix and the order in which to
/// train on its rows; minibatches never mix cells of two pieces.
pub trait TrainSource<B: Backend> {
    /// Cells trained on per epoch (cells with counts in the selected genes).
    fn n_train(&self) -> usize;
    /// Minibatch steps in one epoch with minibatches of `batch_size` (for the progress bar).
    fn steps_per_epoch(&self, batch_size: usize) -> usize;
    /// Visits one epoch's pieces: `visit(data, prep, rows, rng)` with `rows` (indices into
    /// `prep`) in the training order. `rng` is the trainer's stream: the source shuffles with
    /// it and passes it on.
    fn epoch(&mut self, rng: &mut ChaCha8Rng, visit: &mut Visit<'_, B>) -> anyhow::Result<()>;
}

/// The resident data: one piece per epoch, every training cell shuffled.
pub struct InMemory<'a, B: Backend> {
    pub data: &'a DeviceData<B>,
    pub prep: &'a PreparedData,
    /// The training rows; reshuffled in place each epoch (so epoch e's order depends on e-1's).
    perm: Vec<u32>,
}

impl<'a, B: Backend> InMemory<'a, B> {
    pub fn new(data: &'a DeviceData<B>, prep: &'a PreparedData, train_rows: Vec<u32>) -> Self {
        InMemory {
            data,
            prep,
            perm: train_rows,
        }
    }
}

impl<B: Backend> TrainSource<B> for InMemory<'_, B> {
    fn n_train(&self) -> usize {
        self.perm.len()
    }

    fn steps_per_epoch(&self, batch_size: usize) -> usize {
        self.perm.len() / batch_size
    }

    fn epoch(&mut self, rng: &mut ChaCha8Rng, visit: &mut Visit<'_, B>) -> anyhow::Result<()> {
        self.perm.shuffle(rng);
        visit(self.data, self.prep, &self.perm, rng)
    }
}
