//! Layers and optimisers built on the tape.

mod adam;
mod linear;

pub use adam::{Adam, AdamConfig};
pub use linear::Linear;
