//! Outputs (the results written into the h5ad) and model checkpoints.

pub mod checkpoint;
pub mod record;
#[cfg(feature = "h5ad")]
pub mod results;
