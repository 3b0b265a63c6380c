//! scDREAMER and scDREAMER-Sup: configuration, data preparation, networks and losses
//! (the "module" of scvi-tools terms). Training lives in `train`, the user API in `pipeline`.

pub mod config;
pub mod dataset;
pub mod hyper;
pub mod minibatch;
pub mod networks;
pub mod presets;
pub mod scdreamer;
pub mod sup;
pub mod sup_screen;
