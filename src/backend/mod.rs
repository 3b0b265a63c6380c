//! Compute backends behind one seam: CPU now, CUDA later.

#[cfg(feature = "cuda")]
pub mod cuda;
pub mod device;
