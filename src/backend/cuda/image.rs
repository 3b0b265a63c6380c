//! Which embedded image a GPU loads, as a pure function of its compute capability (testable
//! without a GPU).

use super::embedded::EmbeddedModule;

/// One way to get a loadable module for a device, in order of preference.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImageChoice {
    /// A build-time CUBIN for `sm_<arch>`.
    Cubin(u32),
    /// The build-time PTX, JIT-compiled by the driver.
    Ptx,
    /// Compile the embedded source now with the machine's NVRTC for the device's exact arch.
    Source,
}

/// The candidates for a device of compute capability `(major, minor)`, best first.
///
/// A CUBIN for `sm_XY` runs on devices `X.Z` with `Z >= Y` (same major), so the best CUBIN is
/// the one of the same major with the highest minor not above the device's. PTX for compute_80
/// JITs on any device >= 8.0. The source is the last resort (always present).
pub fn candidates(module: &EmbeddedModule, major: i32, minor: i32) -> Vec<ImageChoice> {
    let mut out = Vec::new();
    let device = (major.max(0) as u32) * 10 + minor.max(0) as u32;
    let best_cubin = module
        .cubins
        .iter()
        .map(|(arch, _)| *arch)
        .filter(|arch| arch / 10 == device / 10 && *arch <= device)
        .max();
    if let Some(arch) = best_cubin {
        out.push(ImageChoice::Cubin(arch));
    }
    if module.ptx.is_some() && device >= 80 {
        out.push(ImageChoice::Ptx);
    }
    out.push(ImageChoice::Source);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    static FAKE: EmbeddedModule = EmbeddedModule {
        name: "fake",
        source: "",
        cubins: &[(80, b"a"), (90, b"b")],
        ptx: Some("ptx"),
    };
    static SOURCE_ONLY: EmbeddedModule = EmbeddedModule {
        name: "src",
        source: "",
        cubins: &[],
        ptx: None,
    };

    #[test]
    fn picks_same_major_cubin_then_ptx_then_source() {
        use ImageChoice::*;
        assert_eq!(candidates(&FAKE, 9, 0), vec![Cubin(90), Ptx, Source]);
        assert_eq!(candidates(&FAKE, 8, 6), vec![Cubin(80), Ptx, Source]);
        assert_eq!(candidates(&FAKE, 8, 0), vec![Cubin(80), Ptx, Source]);
        // Blackwell: no CUBIN of major 10, the PTX JITs.
        assert_eq!(candidates(&FAKE, 10, 0), vec![Ptx, Source]);
        // Turing: too old for compute_80 PTX; only a runtime compile can serve it.
        assert_eq!(candidates(&FAKE, 7, 5), vec![Source]);
        assert_eq!(candidates(&SOURCE_ONLY, 9, 0), vec![Source]);
    }
}
