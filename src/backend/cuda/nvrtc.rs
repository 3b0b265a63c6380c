//! A minimal NVRTC binding loaded with `dlopen` from an explicit directory.
//!
//! This file is shared verbatim by `build.rs` (through `#[path]`) and by the library, so it
//! depends on `std` and `libloading` only and reports errors as `String`.
//!
//! Why not cudarc's NVRTC: cudarc opens `libnvrtc.so` by bare name, which only works when
//! `LD_LIBRARY_PATH` is set before the process starts. The build and the tests must find the
//! NVRTC of a pip wheel (`nvidia-cuda-nvrtc`) or a toolkit from one environment variable, and
//! NVRTC itself `dlopen`s `libnvrtc-builtins.so.*` by soname: we pre-load that file from the
//! same directory so the soname lookup succeeds without `LD_LIBRARY_PATH`.

#![allow(dead_code)] // build.rs uses a subset of this file.

use std::ffi::{CStr, CString, c_char, c_int, c_void};
use std::path::{Path, PathBuf};

/// Environment variable naming the directory that holds `libnvrtc.so.*` (searched first).
pub const NVRTC_DIR_ENV: &str = "SCDREAMER_NVRTC_DIR";

/// What NVRTC produces for one kernel source.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// Machine code for one architecture, e.g. `Cubin(80)` = `sm_80`.
    Cubin(u32),
    /// PTX for a virtual architecture, e.g. `Ptx(80)` = `compute_80`; the driver JITs it.
    Ptx(u32),
}

impl Target {
    /// The `--gpu-architecture` value NVRTC expects.
    pub fn arch_flag(self) -> String {
        match self {
            Target::Cubin(sm) => format!("--gpu-architecture=sm_{sm}"),
            Target::Ptx(sm) => format!("--gpu-architecture=compute_{sm}"),
        }
    }
}

type Program = *mut c_void;
type FnVersion = unsafe extern "C" fn(*mut c_int, *mut c_int) -> c_int;
type FnCreate = unsafe extern "C" fn(
    *mut Program,
    *const c_char,
    *const c_char,
    c_int,
    *const *const c_char,
    *const *const c_char,
) -> c_int;
type FnCompile = unsafe extern "C" fn(Program, c_int, *const *const c_char) -> c_int;
type FnSize = unsafe extern "C" fn(Program, *mut usize) -> c_int;
type FnGet = unsafe extern "C" fn(Program, *mut c_char) -> c_int;
type FnDestroy = unsafe extern "C" fn(*mut Program) -> c_int;
type FnErrStr = unsafe extern "C" fn(c_int) -> *const c_char;

/// A loaded NVRTC library.
pub struct Nvrtc {
    /// The file that was opened (or the bare soname when found through the loader path).
    pub path: PathBuf,
    version: (i32, i32),
    create: FnCreate,
    compile: FnCompile,
    log_size: FnSize,
    log: FnGet,
    ptx_size: FnSize,
    ptx: FnGet,
    cubin_size: FnSize,
    cubin: FnGet,
    destroy: FnDestroy,
    err_str: FnErrStr,
    // Kept open for the lifetime of the function pointers above.
    _lib: libloading::Library,
    _builtins: Option<libloading::Library>,
}

/// Directories to search, in order: `$SCDREAMER_NVRTC_DIR`, then `lib64`/`lib` under
/// `$CUDA_HOME` and `$CUDA_PATH`, then `/usr/local/cuda/lib64`.
pub fn candidate_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(d) = std::env::var_os(NVRTC_DIR_ENV) {
        dirs.push(PathBuf::from(d));
    }
    for var in ["CUDA_HOME", "CUDA_PATH"] {
        if let Some(root) = std::env::var_os(var) {
            let root = PathBuf::from(root);
            dirs.push(root.join("lib64"));
            dirs.push(root.join("lib"));
        }
    }
    dirs.push(PathBuf::from("/usr/local/cuda/lib64"));
    dirs
}

/// The `libnvrtc.so*` and `libnvrtc-builtins.so*` files of one directory, newest major first.
fn libs_in(dir: &Path) -> Option<(PathBuf, Option<PathBuf>)> {
    let entries = std::fs::read_dir(dir).ok()?;
    let mut main = Vec::new();
    let mut builtins = Vec::new();
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        // `.alt.so` variants are the static-libstdc++ builds; the plain ones are enough.
        if name.contains(".alt.") {
            continue;
        }
        if name.starts_with("libnvrtc.so") {
            main.push(e.path());
        } else if name.starts_with("libnvrtc-builtins.so") {
            builtins.push(e.path());
        }
    }
    // Prefer the most specific name (libnvrtc.so.13 over libnvrtc.so), which sorts last.
    main.sort();
    builtins.sort();
    let lib = main.pop()?;
    Some((lib, builtins.pop()))
}

impl Nvrtc {
    /// Find and open NVRTC: the directories of [`candidate_dirs`], then the dynamic loader's
    /// own search path (`LD_LIBRARY_PATH`, ldconfig) by soname.
    pub fn locate() -> Result<Nvrtc, String> {
        let mut tried = Vec::new();
        for dir in candidate_dirs() {
            if let Some((lib, builtins)) = libs_in(&dir) {
                match Nvrtc::open(&lib, builtins.as_deref()) {
                    Ok(n) => return Ok(n),
                    Err(e) => tried.push(format!("{}: {e}", lib.display())),
                }
            } else {
                tried.push(format!("{}: no libnvrtc.so*", dir.display()));
            }
        }
        for soname in ["libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so"] {
            match Nvrtc::open(Path::new(soname), None) {
                Ok(n) => return Ok(n),
                Err(e) => tried.push(format!("{soname}: {e}")),
            }
        }
        Err(format!(
            "NVRTC not found (set {NVRTC_DIR_ENV} to the directory holding libnvrtc.so.*); tried: {}",
            tried.join("; ")
        ))
    }

    /// Open NVRTC from `lib`, pre-loading `builtins` (same directory) when given.
    pub fn open(lib: &Path, builtins: Option<&Path>) -> Result<Nvrtc, String> {
        // SAFETY: loading NVRTC runs its initialisers only; symbols are checked below.
        unsafe {
            let builtins = match builtins {
                Some(b) => Some(load_global(b)?),
                None => None,
            };
            let lib_handle = libloading::Library::new(lib).map_err(|e| e.to_string())?;
            let sym = |name: &[u8]| -> Result<*const c_void, String> {
                lib_handle
                    .get::<*const c_void>(name)
                    .map(|s| *s)
                    .map_err(|e| format!("missing symbol {}: {e}", String::from_utf8_lossy(name)))
            };
            // The symbol `name` as the function pointer type `ty` of the field it fills.
            macro_rules! typed_sym {
                ($ty:ty, $name:literal) => {
                    std::mem::transmute::<*const c_void, $ty>(sym(concat!($name, "\0").as_bytes())?)
                };
            }
            let version = typed_sym!(FnVersion, "nvrtcVersion");
            let mut major = 0;
            let mut minor = 0;
            version(&mut major, &mut minor);
            Ok(Nvrtc {
                path: lib.to_path_buf(),
                version: (major, minor),
                create: typed_sym!(FnCreate, "nvrtcCreateProgram"),
                compile: typed_sym!(FnCompile, "nvrtcCompileProgram"),
                log_size: typed_sym!(FnSize, "nvrtcGetProgramLogSize"),
                log: typed_sym!(FnGet, "nvrtcGetProgramLog"),
                ptx_size: typed_sym!(FnSize, "nvrtcGetPTXSize"),
                ptx: typed_sym!(FnGet, "nvrtcGetPTX"),
                cubin_size: typed_sym!(FnSize, "nvrtcGetCUBINSize"),
                cubin: typed_sym!(FnGet, "nvrtcGetCUBIN"),
                destroy: typed_sym!(FnDestroy, "nvrtcDestroyProgram"),
                err_str: typed_sym!(FnErrStr, "nvrtcGetErrorString"),
                _lib: lib_handle,
                _builtins: builtins,
            })
        }
    }

    /// NVRTC's (major, minor) version, e.g. (13, 0).
    pub fn version(&self) -> (i32, i32) {
        self.version
    }

    fn error_name(&self, code: c_int) -> String {
        // SAFETY: nvrtcGetErrorString returns a static C string for any code.
        unsafe {
            let p = (self.err_str)(code);
            if p.is_null() {
                format!("NVRTC error {code}")
            } else {
                CStr::from_ptr(p).to_string_lossy().into_owned()
            }
        }
    }

    /// Compile `source` (file name `name`, used in messages) with in-memory `headers`
    /// (`(include name, text)`) for `target`. Returns the CUBIN bytes or the PTX text
    /// (without the trailing NUL). On failure the error holds NVRTC's log.
    pub fn compile(
        &self,
        name: &str,
        source: &str,
        headers: &[(&str, &str)],
        target: Target,
    ) -> Result<Vec<u8>, String> {
        let c_src = CString::new(source).map_err(|_| format!("{name}: NUL byte in source"))?;
        let c_name = CString::new(name).map_err(|_| format!("{name}: NUL byte in name"))?;
        let mut header_texts = Vec::new();
        let mut header_names = Vec::new();
        for (hname, htext) in headers {
            header_names.push(CString::new(*hname).map_err(|_| format!("{hname}: NUL byte"))?);
            header_texts.push(CString::new(*htext).map_err(|_| format!("{hname}: NUL byte"))?);
        }
        let text_ptrs: Vec<*const c_char> = header_texts.iter().map(|c| c.as_ptr()).collect();
        let name_ptrs: Vec<*const c_char> = header_names.iter().map(|c| c.as_ptr()).collect();
        let opts: Vec<CString> = compile_options(target)
            .into_iter()
            .map(|o| CString::new(o).expect("options have no NUL"))
            .collect();
        let opt_ptrs: Vec<*const c_char> = opts.iter().map(|c| c.as_ptr()).collect();

        // SAFETY: every pointer stays alive until nvrtcDestroyProgram below; sizes come from
        // NVRTC and the buffers are allocated to them.
        unsafe {
            let mut prog: Program = std::ptr::null_mut();
            let rc = (self.create)(
                &mut prog,
                c_src.as_ptr(),
                c_name.as_ptr(),
                headers.len() as c_int,
                text_ptrs.as_ptr(),
                name_ptrs.as_ptr(),
            );
            if rc != 0 {
                return Err(format!(
                    "{name}: nvrtcCreateProgram: {}",
                    self.error_name(rc)
                ));
            }
            let rc = (self.compile)(prog, opt_ptrs.len() as c_int, opt_ptrs.as_ptr());
            let log = self.program_log(prog);
            let result = if rc != 0 {
                Err(format!(
                    "{name} ({}): {}\n{log}",
                    target.arch_flag(),
                    self.error_name(rc)
                ))
            } else {
                self.program_output(prog, target)
                    .map_err(|e| format!("{name} ({}): {e}", target.arch_flag()))
            };
            (self.destroy)(&mut prog);
            result
        }
    }

    unsafe fn program_log(&self, prog: Program) -> String {
        let mut size = 0usize;
        // SAFETY: prog is a live program; the buffer has the size NVRTC reported.
        unsafe {
            if (self.log_size)(prog, &mut size) != 0 || size == 0 {
                return String::new();
            }
            let mut buf = vec![0u8; size];
            if (self.log)(prog, buf.as_mut_ptr() as *mut c_char) != 0 {
                return String::new();
            }
            String::from_utf8_lossy(trim_nul(&buf)).into_owned()
        }
    }

    unsafe fn program_output(&self, prog: Program, target: Target) -> Result<Vec<u8>, String> {
        let (size_fn, get_fn) = match target {
            Target::Cubin(_) => (self.cubin_size, self.cubin),
            Target::Ptx(_) => (self.ptx_size, self.ptx),
        };
        let mut size = 0usize;
        // SAFETY: prog compiled successfully; the buffer has the size NVRTC reported.
        unsafe {
            let rc = size_fn(prog, &mut size);
            if rc != 0 {
                return Err(self.error_name(rc));
            }
            let mut buf = vec![0u8; size];
            let rc = get_fn(prog, buf.as_mut_ptr() as *mut c_char);
            if rc != 0 {
                return Err(self.error_name(rc));
            }
            if matches!(target, Target::Ptx(_)) {
                let n = trim_nul(&buf).len();
                buf.truncate(n);
            }
            if buf.is_empty() {
                return Err("NVRTC returned an empty image".into());
            }
            Ok(buf)
        }
    }
}

/// Options for every kernel: C++17, line info for profilers, and IEEE math (no fast-math: the
/// kernels must match the CPU ops to a few ulps).
pub fn compile_options(target: Target) -> Vec<String> {
    vec![
        target.arch_flag(),
        "--std=c++17".into(),
        "--generate-line-info".into(),
        "--fmad=true".into(),
    ]
}

fn trim_nul(buf: &[u8]) -> &[u8] {
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    &buf[..end]
}

/// Load a library with `RTLD_GLOBAL` so NVRTC's later `dlopen` by soname finds it.
unsafe fn load_global(path: &Path) -> Result<libloading::Library, String> {
    #[cfg(unix)]
    {
        use libloading::os::unix::{Library, RTLD_GLOBAL, RTLD_NOW};
        // SAFETY: the builtins library has no initialisers with preconditions.
        unsafe {
            Library::open(Some(path), RTLD_NOW | RTLD_GLOBAL)
                .map(libloading::Library::from)
                .map_err(|e| format!("{}: {e}", path.display()))
        }
    }
    #[cfg(not(unix))]
    {
        // SAFETY: as above; Windows finds DLLs next to the main one by default.
        unsafe { libloading::Library::new(path).map_err(|e| format!("{}: {e}", path.display())) }
    }
}
