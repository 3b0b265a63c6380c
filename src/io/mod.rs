//! Outputs (h5ad results) and model checkpoints.
