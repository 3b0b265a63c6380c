//! Training loop: seeded shuffling and minibatches, the alternating adversarial updates of the
//! spec (AE step, discriminator step, batch-classifier step per minibatch), progress, the
//! per-epoch log, and a hard stop on NaN/Inf.

pub mod log;
pub mod source;
pub mod trainer;

pub use log::{EpochLog, write_log};
pub use source::{InMemory, TrainSource, Visit};
pub use trainer::{StepProgress, TrainOptions, train, train_from, train_observed};
