//! Compiles the CUDA sources (`kernels/*.cu` and each op folder's `src/ops/**/*.cu`, found by
//! `emu/builder.rs`'s `kernel_sources`; headers in `kernels/`) with NVRTC into CUBIN (sm_80,
//! sm_90) and PTX (compute_80) and writes
//! `$OUT_DIR/kernels.rs`, which `src/backend/cuda/embedded.rs` includes into the binary.
//!
//! NVRTC is found by `src/backend/cuda/nvrtc.rs` (shared with the library): `$SCDREAMER_NVRTC_DIR`,
//! then `$CUDA_HOME`/`$CUDA_PATH` `lib64`/`lib`, `/usr/local/cuda/lib64`, then the loader path.
//! - A kernel that does not compile fails the build with NVRTC's log.
//! - Without NVRTC the sources alone are embedded (with a cargo warning) and the binary compiles
//!   them at first use with the GPU machine's NVRTC; `SCDREAMER_REQUIRE_NVRTC=1` makes a
//!   missing NVRTC a build error instead.
//! - PTX is embedded only from NVRTC <= 13.0: newer PTX would not JIT on a CUDA 13.0 driver (580).
//!   The CUBINs still cover sm_80..sm_89 and sm_90.

#[path = "src/backend/cuda/nvrtc.rs"]
mod nvrtc;

#[path = "emu/builder.rs"]
mod emu_builder;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// CUBIN architectures embedded (A100 family, H100/H200).
const CUBIN_ARCHS: [u32; 2] = [80, 90];
/// PTX virtual architecture embedded: the driver JITs it on any newer GPU.
const PTX_ARCH: u32 = 80;
/// Newest NVRTC whose PTX the target driver (580, CUDA 13.0) can JIT.
const MAX_PTX_NVRTC: (i32, i32) = (13, 0);

fn main() {
    println!("cargo:rerun-if-changed=kernels");
    // A new op folder adds its `pub mod` line here, so its `.cu` is found on the next build.
    println!("cargo:rerun-if-changed=src/ops/mod.rs");
    println!("cargo:rerun-if-changed=emu");
    println!("cargo:rerun-if-changed=src/backend/cuda/nvrtc.rs");
    for var in [
        nvrtc::NVRTC_DIR_ENV,
        "CUDA_HOME",
        "CUDA_PATH",
        "LD_LIBRARY_PATH",
        "SCDREAMER_REQUIRE_NVRTC",
        "SCDREAMER_REQUIRE_EMULATOR",
        "CXX",
    ] {
        println!("cargo:rerun-if-env-changed={var}");
    }
    if std::env::var_os("CARGO_FEATURE_CUDA").is_none() {
        return;
    }
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets it"));
    let kernel_dir = manifest.join("kernels");
    let sources = emu_builder::kernel_sources(&manifest).unwrap_or_else(|e| panic!("{e}"));
    for src in sources.iter().filter(|p| !p.starts_with(&kernel_dir)) {
        println!("cargo:rerun-if-changed={}", src.display());
    }
    let headers = emu_builder::kernel_headers(&manifest).unwrap_or_else(|e| panic!("{e}"));
    let header_texts: Vec<(String, String)> =
        headers.iter().map(|p| (file_name(p), read(p))).collect();
    let header_refs: Vec<(&str, &str)> = header_texts
        .iter()
        .map(|(n, t)| (n.as_str(), t.as_str()))
        .collect();

    let nvrtc = match nvrtc::Nvrtc::locate() {
        Ok(n) => Some(n),
        Err(e) => {
            if std::env::var("SCDREAMER_REQUIRE_NVRTC").as_deref() == Ok("1") {
                panic!("SCDREAMER_REQUIRE_NVRTC=1 but {e}");
            }
            println!(
                "cargo:warning=CUDA kernels embedded as source only (compiled at first GPU use): {e}"
            );
            None
        }
    };

    let mut modules = String::new();
    for src_path in &sources {
        let name = file_name(src_path);
        let stem = emu_builder::stem(src_path);
        let source = read(src_path);
        let mut cubins = String::new();
        let mut ptx = "None".to_string();
        if let Some(nv) = &nvrtc {
            for arch in CUBIN_ARCHS {
                let image =
                    compile_or_fail(nv, &name, &source, &header_refs, nvrtc::Target::Cubin(arch));
                let path = out_dir.join(format!("{stem}.sm_{arch}.cubin"));
                write(&path, &image);
                write!(
                    cubins,
                    "({arch}, include_bytes!({:?})), ",
                    path.display().to_string()
                )
                .unwrap();
            }
            if nv.version() <= MAX_PTX_NVRTC {
                let image = compile_or_fail(
                    nv,
                    &name,
                    &source,
                    &header_refs,
                    nvrtc::Target::Ptx(PTX_ARCH),
                );
                let path = out_dir.join(format!("{stem}.compute_{PTX_ARCH}.ptx"));
                write(&path, &image);
                ptx = format!("Some(include_str!({:?}))", path.display().to_string());
            }
        }
        writeln!(
            modules,
            "    EmbeddedModule {{ name: {stem:?}, source: include_str!({:?}), cubins: &[{cubins}], ptx: {ptx} }},",
            src_path.display().to_string()
        )
        .unwrap();
    }
    if let Some(nv) = &nvrtc {
        let (major, minor) = nv.version();
        if nv.version() > MAX_PTX_NVRTC {
            println!(
                "cargo:warning=NVRTC {major}.{minor} is newer than CUDA 13.0: PTX not embedded (CUBIN only)"
            );
        }
    }

    let mut header_entries = String::new();
    for p in &headers {
        writeln!(
            header_entries,
            "    ({:?}, include_str!({:?})),",
            file_name(p),
            p.display().to_string()
        )
        .unwrap();
    }
    let nvrtc_desc = match &nvrtc {
        Some(nv) => {
            let (major, minor) = nv.version();
            format!(
                "Some(\"NVRTC {major}.{minor} ({})\")",
                nv.path.display().to_string().escape_default()
            )
        }
        None => "None".to_string(),
    };
    // The emulator serves the CLI and the tests; the Python extension (built without the `h5ad`
    // feature) does not carry it.
    let emulator_dir = if std::env::var_os("CARGO_FEATURE_H5AD").is_some() {
        build_emulator(&manifest, &out_dir, &sources)
    } else {
        "None".to_string()
    };
    let generated = format!(
        "// Generated by build.rs from kernels/ and src/ops/; do not edit.\n\
         /// The NVRTC that compiled the embedded images, or None when only sources are embedded.\n\
         pub static NVRTC_AT_BUILD: Option<&str> = {nvrtc_desc};\n\
         /// The emulated CUDA device built from emu/ and kernels/ (None when it could not be built).\n\
         pub static EMULATOR_DIR: Option<&str> = {emulator_dir};\n\
         /// In-memory headers every kernel source may include.\n\
         pub static HEADERS: &[(&str, &str)] = &[\n{header_entries}];\n\
         /// Every kernel module, one per CUDA source.\n\
         pub static MODULES: &[EmbeddedModule] = &[\n{modules}];\n"
    );
    write(&out_dir.join("kernels.rs"), generated.as_bytes());
}

/// Builds the emulated CUDA device (emu/) into `$OUT_DIR/emu`: `Some("dir")` as Rust source,
/// or `None` with a warning when no C++ compiler builds it (an error with
/// `SCDREAMER_REQUIRE_EMULATOR=1`, as the test script sets).
fn build_emulator(manifest: &Path, out_dir: &Path, sources: &[PathBuf]) -> String {
    let supported = std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux")
        && std::env::var("CARGO_CFG_TARGET_ARCH").as_deref() == Ok("x86_64");
    let dir = out_dir.join("emu");
    let result = if supported {
        let kernels = dir.join(emu_builder::KERNELS);
        emu_builder::build_driver(&manifest.join("emu"), &dir, &kernels).and_then(|()| {
            emu_builder::build_kernels(
                sources,
                &manifest.join("kernels"),
                &manifest.join("emu"),
                &dir.join("gen"),
                &kernels,
                &dir.join(emu_builder::DRIVER),
            )
        })
    } else {
        Err("the emulated CUDA device needs Linux on x86-64".to_string())
    };
    match result {
        Ok(()) => format!("Some({:?})", dir.display().to_string()),
        Err(e) => {
            if std::env::var("SCDREAMER_REQUIRE_EMULATOR").as_deref() == Ok("1") {
                panic!(
                    "SCDREAMER_REQUIRE_EMULATOR=1 but the emulated CUDA device did not build: {e}"
                );
            }
            println!(
                "cargo:warning=emulated CUDA device not built: {}",
                e.lines().next().unwrap_or("")
            );
            "None".to_string()
        }
    }
}

fn compile_or_fail(
    nv: &nvrtc::Nvrtc,
    name: &str,
    source: &str,
    headers: &[(&str, &str)],
    target: nvrtc::Target,
) -> Vec<u8> {
    match nv.compile(name, source, headers, target) {
        Ok(image) => image,
        Err(log) => panic!("CUDA kernel {name} does not compile:\n{log}"),
    }
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .expect("a file")
        .to_string_lossy()
        .into_owned()
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("cannot read {}: {e}", p.display()))
}

fn write(p: &Path, bytes: &[u8]) {
    std::fs::write(p, bytes).unwrap_or_else(|e| panic!("cannot write {}: {e}", p.display()));
}
