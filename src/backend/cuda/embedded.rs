//! The kernel images that `build.rs` embedded into the binary.

/// One `kernels/*.cu` file: its source (always, for runtime compilation), the CUBINs compiled
/// at build time (per `sm_XY` as `XY`) and the PTX (compute_80), when NVRTC was there.
#[derive(Debug)]
pub struct EmbeddedModule {
    /// File stem, e.g. `"zinb"` for `kernels/zinb.cu`.
    pub name: &'static str,
    /// The CUDA C++ source.
    pub source: &'static str,
    /// `(arch, cubin)` pairs, e.g. `(80, ..)` for sm_80.
    pub cubins: &'static [(u32, &'static [u8])],
    /// PTX text for compute_80, absent when the build's NVRTC was missing or too new.
    pub ptx: Option<&'static str>,
}

include!(concat!(env!("OUT_DIR"), "/kernels.rs"));

/// The embedded module named `name` (a `kernels/*.cu` file stem).
pub fn module(name: &str) -> Option<&'static EmbeddedModule> {
    MODULES.iter().find(|m| m.name == name)
}
