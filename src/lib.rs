//! scdreamer: scDREAMER single-cell integration in Rust.
//!
//! The module layout follows the data flow:
//! `data` (h5ad, CSR, validation, HVG) -> `tape` + `backend` (autodiff on CPU/CUDA)
//! -> `nn` (layers, optimisers) -> `model` (scDREAMER, scDREAMER-Sup) -> `train`
//! -> `io` (outputs, checkpoints) -> `metrics` (evaluation).

#[cfg(feature = "h5ad")]
pub mod backed;
pub mod backend;
#[cfg(feature = "h5ad")]
pub mod cli;
pub mod csr;
pub mod data;
pub mod files;
pub mod io;
pub mod map;
pub mod metrics;
pub mod model;
pub mod nn;
pub mod ops;
#[cfg(feature = "h5ad")]
pub mod sim;
pub mod special;
pub mod tape;
pub mod train;

/// Version string written into every output (`uns["scdreamer"]["version"]`).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
pub mod pipeline;
#[cfg(feature = "h5ad")]
pub mod report;
pub mod saved_model;
