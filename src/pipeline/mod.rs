//! The driver of every command, shaped like scvi-tools' model classes: setup (register batch
//! and labels, choose genes: [`prepare()`], or [`prepare_streamed`] for a file read chunk by
//! chunk), [`fit`] (train), [`infer`] (get_latent_representation, get_normalized_expression,
//! label predictions), [`save_model`] and [`load`]. The data reaches the model through one
//! seam, [`Cells`]: the in-memory data set is its one-chunk case, a streamed file its chunks,
//! on whichever backend the caller chose. The CLI and the Python module are thin layers over
//! this: nothing here parses flags or prints a message (only progress bars, when asked).

mod cells;
mod fit;
mod infer;
pub mod limits;
pub mod prepare;
mod saved;
mod setup;
#[cfg(feature = "h5ad")]
mod streamed;

pub use cells::{Cells, ChunkVisit, Resident};
pub use fit::{FitOptions, Fitted, Trained, fit, fit_cells, relabel, upload, upload_for_training};
pub use infer::{Inference, Inferred, ModelOn, infer, latent_rng};
pub use prepare::{Prepared, Request, prepare};
pub use saved::{SavedData, load, save_model, saved_config};
pub use setup::{GeneSelection, Setup, select_genes};
#[cfg(feature = "h5ad")]
pub use streamed::{PreparedStreamed, StreamOptions, Streamed, StreamedCells, prepare_streamed};
