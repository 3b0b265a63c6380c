//! Data layer: the in-memory AnnData subset we need, h5ad I/O, validation and
//! preprocessing (highly variable genes, library sizes).

pub mod anndata;
pub mod checked;
#[cfg(feature = "h5ad")]
pub mod demo;
pub mod dense;
#[cfg(feature = "h5ad")]
pub mod h5ad;
pub mod hvg;
pub mod labels;
pub mod names;
pub mod preprocess;
pub mod validate;

/// The CSR type lives at the crate's ground floor (`crate::csr`) so the compute layers
/// can use it without importing the data layer; these names keep the old paths.
pub use crate::csr::{self, Csr};
pub use anndata::{AnnData, Column, Frame};
