//! `integrate --backed`: training on a file larger than memory. X is never held whole: it is
//! read from disk in chunks of consecutive cells.
//!
//! - [`scan`]: streaming passes over every gene that check the values, sum each cell's counts
//!   and select the genes (the same highly variable genes as the in-memory selection);
//! - [`Backed::new`]: one pass over the selected genes for the library sizes and the transform
//!   constants;
//! - [`ChunkSource`]: the trainer's cells, epoch by epoch: the chunks in a seeded shuffled
//!   order, the cells of a chunk shuffled, minibatches within one chunk;
//! - [`Backed::load_chunk`]: one chunk prepared and on a backend (`pipeline::Streamed` visits
//!   them in order for inference), and [`Backed`] as the output's X, block by block.

mod chunks;
mod scan;
mod source;

pub use chunks::{chunk_ranges, default_chunk_cells};
pub use scan::{Scan, scan};
pub use source::{Backed, ChunkSource};
