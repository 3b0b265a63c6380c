//! Every kernel source (`kernels/*.cu` and the op folders' `src/ops/**/*.cu`) compiles with NVRTC for sm_80 and sm_90 (CUBIN) and compute_80 (PTX),
//! and a broken kernel fails with NVRTC's log. Needs libnvrtc (set SCDREAMER_NVRTC_DIR):
//! skips with a printed reason when absent, but fails when CI=true.
#![cfg(feature = "cuda")]

use std::path::PathBuf;

use scdreamer::backend::cuda::embedded;
use scdreamer::backend::cuda::nvrtc::{Nvrtc, Target};

#[path = "../emu/builder.rs"]
#[allow(dead_code)]
mod emu_builder;

fn in_ci() -> bool {
    std::env::var("CI").as_deref() == Ok("true")
}

/// NVRTC, or None (after printing why) outside CI.
fn nvrtc_or_skip(test: &str) -> Option<Nvrtc> {
    match Nvrtc::locate() {
        Ok(n) => Some(n),
        Err(e) if in_ci() => panic!("CI=true but {e}"),
        Err(e) => {
            eprintln!("skipping {test}: {e}");
            None
        }
    }
}

/// The source tree's root, or the current directory when the binary runs elsewhere
/// (scripts/gpu_check.sh runs carried test binaries from a copy of the repository).
fn source_root() -> PathBuf {
    let built = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    if built.join("kernels").is_dir() {
        built
    } else {
        PathBuf::from(".")
    }
}

/// (file name, text) of the kernel files as build.rs embeds them (`emu/builder.rs`): headers
/// (`cuh`) from kernels/, sources (`cu`) from kernels/ and the op folders, sorted.
fn kernel_files(ext: &str) -> Vec<(String, String)> {
    let root = source_root();
    let paths = if ext == "cu" {
        emu_builder::kernel_sources(&root)
    } else {
        emu_builder::kernel_headers(&root)
    };
    paths
        .unwrap_or_else(|e| panic!("{e}"))
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).expect("readable kernel");
            (p.file_name().unwrap().to_string_lossy().into_owned(), text)
        })
        .collect()
}

#[test]
fn every_kernel_compiles_for_sm80_sm90_and_compute80() {
    let Some(nv) = nvrtc_or_skip("every_kernel_compiles_for_sm80_sm90_and_compute80") else {
        return;
    };
    let headers = kernel_files("cuh");
    let header_refs: Vec<(&str, &str)> = headers
        .iter()
        .map(|(n, t)| (n.as_str(), t.as_str()))
        .collect();
    let sources = kernel_files("cu");
    assert!(
        sources.len() >= 7,
        "expected the kernel files, found {}",
        sources.len()
    );
    let mut failures = Vec::new();
    for (name, text) in &sources {
        for target in [Target::Cubin(80), Target::Cubin(90), Target::Ptx(80)] {
            match nv.compile(name, text, &header_refs, target) {
                Ok(image) => {
                    assert!(!image.is_empty(), "{name} {target:?}: empty image");
                    if let Target::Ptx(_) = target {
                        let ptx = String::from_utf8_lossy(&image);
                        assert!(ptx.contains(".target sm_80"), "{name}: PTX not for sm_80");
                        assert!(ptx.contains(".entry"), "{name}: PTX has no kernel entry");
                    } else {
                        assert_eq!(
                            &image[..4],
                            b"\x7fELF",
                            "{name} {target:?}: not an ELF cubin"
                        );
                    }
                }
                Err(log) => failures.push(log),
            }
        }
    }
    assert!(
        failures.is_empty(),
        "kernels failed to compile:\n{}",
        failures.join("\n\n")
    );
    let (major, minor) = nv.version();
    eprintln!(
        "{} kernel files compiled x3 targets with NVRTC {major}.{minor}",
        sources.len()
    );
}

#[test]
fn broken_kernel_fails_with_nvrtc_log() {
    let Some(nv) = nvrtc_or_skip("broken_kernel_fails_with_nvrtc_log") else {
        return;
    };
    let broken = "extern \"C\" __global__ void k(float* x) { x[0] = undefined_symbol_xyz; }";
    let err = nv
        .compile("broken.cu", broken, &[], Target::Cubin(80))
        .expect_err("a kernel with an undefined identifier must not compile");
    assert!(err.contains("broken.cu"), "log names the file: {err}");
    assert!(
        err.contains("undefined_symbol_xyz"),
        "log names the error: {err}"
    );
}

#[test]
fn embedded_modules_match_kernel_files() {
    let names: Vec<String> = kernel_files("cu")
        .into_iter()
        .map(|(n, _)| n.trim_end_matches(".cu").to_string())
        .collect();
    let embedded_names: Vec<&str> = embedded::MODULES.iter().map(|m| m.name).collect();
    assert_eq!(
        names, embedded_names,
        "build.rs embeds one module per kernel source (kernels/*.cu, src/ops/**/*.cu)"
    );
    match embedded::NVRTC_AT_BUILD {
        Some(by) => {
            for m in embedded::MODULES {
                let archs: Vec<u32> = m.cubins.iter().map(|(a, _)| *a).collect();
                assert_eq!(archs, vec![80, 90], "{}: cubins", m.name);
            }
            eprintln!("embedded images built by {by}");
        }
        None if in_ci() => panic!("CI=true but this build embedded kernel sources only (no NVRTC)"),
        None => eprintln!("this build embedded kernel sources only (no NVRTC at build time)"),
    }
}
