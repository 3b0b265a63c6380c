//! Numerical kernels below the autodiff tape.

pub mod losses;
