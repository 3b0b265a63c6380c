//! Data layer: the in-memory AnnData subset we need, h5ad I/O, validation and
//! preprocessing (highly variable genes, library sizes).

pub mod anndata;
pub mod checked;
pub mod csr;
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

pub use anndata::{AnnData, Column, Frame};
pub use csr::Csr;
