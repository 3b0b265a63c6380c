//! The seam between the drivers and the data: a data set's cells, on one backend, as
//! consecutive chunks of resident data. The in-memory data set is the one-chunk case
//! ([`Resident`], uploaded once); a file read with `--backed` is its chunks, each read and
//! uploaded when visited ([`super::Streamed`]). Training, inference and the output's X all go
//! through it, so every command runs the same steps on either.

use crate::model::dataset::{DeviceData, PreparedData};
use crate::ops::Backend;
use crate::train::{InMemory, TrainSource};

/// Called with each chunk in turn: its prepared cells and their data on the backend.
pub type ChunkVisit<'v, B> = dyn FnMut(&PreparedData, &DeviceData<B>) -> anyhow::Result<()> + 'v;

/// The cells of one data set on one backend.
pub trait Cells<B: Backend> {
    /// Every cell, trained on or not (each is embedded).
    fn n_cells(&self) -> usize;
    /// Visits every cell once, in the data set's order, a chunk at a time.
    fn for_each_chunk(&self, visit: &mut ChunkVisit<'_, B>) -> anyhow::Result<()>;
    /// The same cells as the trainer draws them, epoch by epoch (cells without counts in the
    /// selected genes left out).
    fn train_source(&self) -> Box<dyn TrainSource<B> + '_>;
}

/// The in-memory data set: one chunk holding every cell, already on the backend.
pub struct Resident<'a, B: Backend> {
    pub prep: &'a PreparedData,
    pub data: &'a DeviceData<B>,
    /// The cells trained on (with counts in the selected genes).
    pub train_rows: &'a [u32],
}

impl<B: Backend> Cells<B> for Resident<'_, B> {
    fn n_cells(&self) -> usize {
        self.prep.n_cells()
    }

    fn for_each_chunk(&self, visit: &mut ChunkVisit<'_, B>) -> anyhow::Result<()> {
        visit(self.prep, self.data)
    }

    fn train_source(&self) -> Box<dyn TrainSource<B> + '_> {
        Box::new(InMemory::new(
            self.data,
            self.prep,
            self.train_rows.to_vec(),
        ))
    }
}
