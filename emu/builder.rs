//! Builds the emulated CUDA device (emu/README.md) with the machine's C++ compiler: the driver
//! (`libcuda.so`), cuBLAS (`libcublas.so`) and the kernels library compiled for the CPU from
//! the kernel sources ([`kernel_sources`]: `kernels/*.cu` and each op folder's `src/ops/**/*.cu`).
//! Shared by `build.rs` and by the seeded-fault tests, which build a kernels library from a
//! mutated copy of the sources.

use std::path::{Path, PathBuf};
use std::process::Command;

/// File name of the emulated driver (its soname is `libcuda.so`, the first name cudarc opens).
pub const DRIVER: &str = "libcuda.so";
/// File name of the emulated cuBLAS (soname `libcublas.so`).
pub const CUBLAS: &str = "libcublas.so";
/// File name of the kernels library.
pub const KERNELS: &str = "libscd_emu_kernels.so";

/// Sources of the driver library, in `emu/`.
pub const DRIVER_SOURCES: [&str; 5] = [
    "driver_api.cpp",
    "memory.cpp",
    "launch.cpp",
    "modules.cpp",
    "stats.cpp",
];

/// Every CUDA source of the crate under `manifest`: `kernels/*.cu` (kernels shared by several
/// ops, and the ones not yet in an op folder) and the `.cu` of each op folder under `src/ops/`,
/// sorted by path. A module is named by its file stem, so stems must be unique; the headers
/// stay in `kernels/` (`common.cuh`).
pub fn kernel_sources(manifest: &Path) -> Result<Vec<PathBuf>, String> {
    let mut found = Vec::new();
    collect_ext(&manifest.join("kernels"), "cu", false, &mut found)?;
    collect_ext(&manifest.join("src/ops"), "cu", true, &mut found)?;
    found.sort();
    let mut stems = std::collections::BTreeMap::new();
    for p in &found {
        if let Some(other) = stems.insert(stem(p), p) {
            return Err(format!(
                "two kernel modules named {}: {} and {}",
                stem(p),
                other.display(),
                p.display()
            ));
        }
    }
    Ok(found)
}

/// The headers every kernel source may include: `kernels/*.cuh`, sorted by path.
pub fn kernel_headers(manifest: &Path) -> Result<Vec<PathBuf>, String> {
    let mut found = Vec::new();
    collect_ext(&manifest.join("kernels"), "cuh", false, &mut found)?;
    found.sort();
    Ok(found)
}

/// Pushes the files of `dir` (and of its subfolders when `recurse`) ending in `.ext` to `out`.
fn collect_ext(dir: &Path, ext: &str, recurse: bool, out: &mut Vec<PathBuf>) -> Result<(), String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for path in entries.flatten().map(|e| e.path()) {
        if recurse && path.is_dir() {
            collect_ext(&path, ext, true, out)?;
        } else if path.extension().and_then(|e| e.to_str()) == Some(ext) {
            out.push(path);
        }
    }
    Ok(())
}

/// The module name of a kernel source: its file stem.
pub fn stem(src: &Path) -> String {
    src.file_stem()
        .expect("a file")
        .to_string_lossy()
        .into_owned()
}

fn cxx() -> String {
    std::env::var("CXX").unwrap_or_else(|_| "c++".to_string())
}

fn common_flags() -> Vec<String> {
    [
        "-std=c++17",
        "-O2",
        "-fPIC",
        "-shared",
        "-g1",
        // The scheduler long-jumps from a faulting fiber's stack back to the launch.
        "-U_FORTIFY_SOURCE",
        "-D_FORTIFY_SOURCE=0",
        "-fno-strict-aliasing",
        // No FMA contraction: __fmul_rn and friends must round once, as on the GPU.
        "-ffp-contract=off",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn run(mut cmd: Command, what: &str) -> Result<(), String> {
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run the C++ compiler for {what}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{what} failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(())
}

/// Build the driver and cuBLAS libraries into `out`. `kernels` is the kernels library the
/// driver loads unless `SCDREAMER_EMU_KERNELS` names another.
pub fn build_driver(emu_dir: &Path, out: &Path, kernels: &Path) -> Result<(), String> {
    std::fs::create_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;
    let mut cmd = Command::new(cxx());
    cmd.args(common_flags())
        .arg(format!("-DSCD_EMU_KERNELS_PATH=\"{}\"", kernels.display()))
        .arg(format!("-Wl,-soname,{DRIVER}"))
        .arg("-o")
        .arg(out.join(DRIVER));
    for s in DRIVER_SOURCES {
        cmd.arg(emu_dir.join(s));
    }
    cmd.args(["-ldl", "-lpthread"]);
    run(cmd, "the emulated CUDA driver")?;

    let mut cmd = Command::new(cxx());
    cmd.args(common_flags())
        .arg("-fvisibility=hidden")
        // AVX2 for the GEMM loops (the machines that run the project's x86-64-v3 build); the
        // sum over k stays in order, and -ffp-contract=off keeps FMA out.
        .args(["-O3", "-mavx2"])
        .arg(format!("-Wl,-soname,{CUBLAS}"))
        .arg("-o")
        .arg(out.join(CUBLAS))
        .arg(emu_dir.join("cublas.cpp"))
        .arg(out.join(DRIVER));
    run(cmd, "the emulated cuBLAS")
}

/// Names of the `__global__` kernels of one CUDA source, in order.
pub fn kernel_names(source: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = source;
    while let Some(pos) = rest.find("__global__") {
        rest = &rest[pos + "__global__".len()..];
        let mut s = rest.trim_start();
        s = s.strip_prefix("void").unwrap_or(s).trim_start();
        if let Some(after) = s.strip_prefix("__launch_bounds__") {
            // Skip the balanced parentheses of the launch bounds.
            let mut depth = 0usize;
            let mut end = 0;
            for (i, c) in after.char_indices() {
                match c {
                    '(' => depth += 1,
                    ')' => {
                        depth -= 1;
                        if depth == 0 {
                            end = i + 1;
                            break;
                        }
                    }
                    _ => {}
                }
            }
            s = after[end..].trim_start();
        }
        let name: String = s
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if !name.is_empty() {
            names.push(name);
        }
    }
    names
}

/// `extern __shared__ T name[];` becomes a pointer to the launch's dynamic shared memory (the
/// one construct of the kernels that C++ has no spelling for).
pub fn rewrite_dynamic_shared(source: &str) -> String {
    let mut out = String::with_capacity(source.len());
    let mut rest = source;
    while let Some(pos) = rest.find("extern __shared__") {
        out.push_str(&rest[..pos]);
        let decl_end = rest[pos..].find(';').map(|e| pos + e).unwrap_or(rest.len());
        let decl = rest[pos + "extern __shared__".len()..decl_end].trim();
        let before_bracket = decl.split('[').next().unwrap_or(decl).trim();
        let split = before_bracket
            .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .map(|i| i + 1)
            .unwrap_or(0);
        let (ty, name) = before_bracket.split_at(split);
        let ty = ty.trim();
        out.push_str(&format!("{ty}* {name} = ({ty}*)scd_emu_dynamic_shared()"));
        rest = &rest[decl_end..];
    }
    out.push_str(rest);
    out
}

/// Build the kernels library `out_so` from the CUDA `sources` (headers from `include_dir`),
/// generated sources in `work`. Modules compile in parallel.
pub fn build_kernels(
    sources: &[PathBuf],
    include_dir: &Path,
    emu_dir: &Path,
    work: &Path,
    out_so: &Path,
    driver_so: &Path,
) -> Result<(), String> {
    std::fs::create_dir_all(work).map_err(|e| format!("{}: {e}", work.display()))?;
    let mut seen = std::collections::BTreeMap::new();
    let mut children = Vec::new();
    let mut objects = Vec::new();
    for src in sources {
        let stem = stem(src);
        let text = std::fs::read_to_string(src).map_err(|e| format!("{}: {e}", src.display()))?;
        let names = kernel_names(&text);
        for n in &names {
            if let Some(other) = seen.insert(n.clone(), stem.clone()) {
                return Err(format!(
                    "kernel {n} is defined in modules {other} and {stem}"
                ));
            }
        }
        let prepped = work.join(format!("{stem}.cu.cpp"));
        write(&prepped, &rewrite_dynamic_shared(&text))?;
        let mut unit = format!(
            "// Generated by emu/builder.rs from {}; do not edit.\n\
             #include \"cuda_builtins.h\"\n#include {:?}\n#include \"kernels_module.h\"\n\
             static const scd_emu_kernel KERNELS[] = {{\n",
            src.display(),
            prepped.display().to_string()
        );
        for n in &names {
            unit.push_str(&format!("    SCD_EMU_KERNEL({stem:?}, {n}),\n"));
        }
        unit.push_str(
            "};\nstatic scd_emu_registrar REGISTRAR(KERNELS, sizeof(KERNELS) / sizeof(KERNELS[0]));\n",
        );
        let unit_path = work.join(format!("{stem}_module.cpp"));
        write(&unit_path, &unit)?;
        let obj = work.join(format!("{stem}.o"));
        children.push(spawn_object(&unit_path, &obj, include_dir, emu_dir)?);
        objects.push(obj);
    }
    let reg_obj = work.join("kernels_registry.o");
    children.push(spawn_object(
        &emu_dir.join("kernels_registry.cpp"),
        &reg_obj,
        include_dir,
        emu_dir,
    )?);
    objects.push(reg_obj);
    let mut errors = Vec::new();
    for (what, child) in children {
        let out = child
            .wait_with_output()
            .map_err(|e| format!("{what}: {e}"))?;
        if !out.status.success() {
            errors.push(format!("{what}:\n{}", String::from_utf8_lossy(&out.stderr)));
        }
    }
    if !errors.is_empty() {
        return Err(format!(
            "compiling the kernels for the emulated device failed:\n{}",
            errors.join("\n")
        ));
    }
    let mut cmd = Command::new(cxx());
    cmd.args(["-shared", "-fPIC", "-o"])
        .arg(out_so)
        .args(&objects)
        .arg(driver_so);
    run(cmd, "linking the kernels library")
}

fn spawn_object(
    unit: &Path,
    obj: &Path,
    include_dir: &Path,
    emu_dir: &Path,
) -> Result<(String, std::process::Child), String> {
    let mut cmd = Command::new(cxx());
    let flags: Vec<String> = common_flags()
        .into_iter()
        .filter(|f| f != "-shared")
        .collect();
    cmd.args(flags)
        .arg("-c")
        .arg("-w")
        .arg("-I")
        .arg(emu_dir)
        .arg("-I")
        .arg(include_dir)
        .arg("-o")
        .arg(obj)
        .arg(unit)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let what = unit.display().to_string();
    let child = cmd
        .spawn()
        .map_err(|e| format!("cannot run the C++ compiler for {what}: {e}"))?;
    Ok((what, child))
}

fn write(path: &Path, text: &str) -> Result<(), String> {
    std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))
}
