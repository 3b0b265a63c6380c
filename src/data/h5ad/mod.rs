//! h5ad (AnnData on HDF5) reading and writing, following the anndata >= 0.8 on-disk
//! specification: X as CSR/CSC groups or a dense array, obs/var dataframes with
//! categorical, string, numeric and bool columns, obsm/layers/uns on output.

pub mod attrs;
mod frame;
mod matrix;
mod read;
mod rows;
mod uns;
mod write;

pub use crate::data::dense::Dense;
pub use read::{ReadOptions, layer_names, open_h5, read_h5ad};
pub use rows::{GeneMap, RowReader};
pub use write::{
    CsrBlocks, Results, check_output_path, install_ctrlc_cleanup, write_h5ad, write_h5ad_blocks,
    write_h5ad_pending,
};
