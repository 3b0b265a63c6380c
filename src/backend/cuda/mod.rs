//! CUDA backend: kernels compiled from `kernels/*.cu` at build time (see `build.rs`), loaded
//! through cudarc with dynamic loading, so the binary runs on machines without CUDA.
//!
//! - [`nvrtc`]: NVRTC loader shared with `build.rs`;
//! - [`embedded`]: the CUBIN/PTX/source images in the binary, [`image`]: which one a GPU loads;
//! - [`runtime`]: an opened GPU (context, stream, modules, cuBLAS);
//! - [`emulator`]: the emulated CUDA device (the same host code and kernels on the CPU);
//! - [`ops`]: typed launchers of every kernel, each named after the CPU op it mirrors;
//! - [`backend`]: [`CudaBackend`], the tape's `Backend` on one GPU.

pub mod backend;
pub mod embedded;
pub mod emulator;
pub mod image;
pub mod nvrtc;
pub mod ops;
pub mod runtime;

pub use backend::{CudaBackend, CudaCsr};
pub use runtime::CudaRuntime;
