//! The emulated CUDA device: the real host code (cudarc, [`super::CudaBackend`], every
//! launcher) on a CPU implementation of the driver API and cuBLAS, running the kernels of
//! `kernels/*.cu` compiled for the CPU (`emu/`, built by `build.rs`; emu/README.md says how).
//!
//! cudarc opens `libcuda.so` and `libcublas.so` by name. [`install`] loads the emulator's
//! libraries of those sonames first, by path and globally, so the dynamic loader hands cudarc
//! the emulator: nothing in the host code changes. `SCDREAMER_EMULATE_CUDA=1` makes every GPU
//! open ([`super::CudaRuntime::open`]) do that; the CUDA tests do it where no GPU exists.

use std::sync::OnceLock;

/// `SCDREAMER_EMULATE_CUDA=1`: `--device cuda|auto` and the CUDA tests use the emulated device.
pub const ENV: &str = "SCDREAMER_EMULATE_CUDA";
/// `SCDREAMER_EMULATE_CUDA_STATS=FILE`: the emulator writes its counters there as JSON at exit.
pub const STATS_ENV: &str = "SCDREAMER_EMULATE_CUDA_STATS";
/// `SCDREAMER_EMULATED_TEST_LOG=FILE`: each CUDA test that ran on the emulated device appends
/// its name (scripts/test.sh counts them for the CI log).
pub const TEST_LOG_ENV: &str = "SCDREAMER_EMULATED_TEST_LOG";

/// True when `SCDREAMER_EMULATE_CUDA=1`.
pub fn requested() -> bool {
    std::env::var(ENV).as_deref() == Ok("1")
}

/// The directory of the emulator built with this binary, if it was built.
pub fn directory() -> Option<&'static str> {
    super::embedded::EMULATOR_DIR
}

struct Emulator {
    driver: libloading::os::unix::Library,
    _cublas: libloading::os::unix::Library,
}

static EMULATOR: OnceLock<Result<Emulator, String>> = OnceLock::new();

fn load() -> Result<Emulator, String> {
    let dir = directory().ok_or_else(|| {
        "this scdreamer was built without the emulated CUDA device (no C++ compiler at build \
         time)"
            .to_string()
    })?;
    let open = |name: &str| {
        let path = std::path::Path::new(dir).join(name);
        // SAFETY: the emulator's libraries run no code at load time but their own static
        // constructors.
        unsafe {
            libloading::os::unix::Library::open(
                Some(&path),
                libloading::os::unix::RTLD_NOW | libloading::os::unix::RTLD_GLOBAL,
            )
        }
        .map_err(|e| {
            format!(
                "cannot load the emulated CUDA device {}: {e}",
                path.display()
            )
        })
    };
    Ok(Emulator {
        driver: open("libcuda.so")?,
        _cublas: open("libcublas.so")?,
    })
}

/// Load the emulated device so that cudarc finds it instead of a real driver (once per
/// process; later calls return the first result).
pub fn install() -> Result<(), String> {
    EMULATOR
        .get_or_init(load)
        .as_ref()
        .map(|_| ())
        .map_err(Clone::clone)
}

/// True once [`install`] succeeded in this process.
pub fn active() -> bool {
    matches!(EMULATOR.get(), Some(Ok(_)))
}

/// The emulator's function `name` (NUL-terminated), when it is installed.
fn symbol<T: Copy>(name: &[u8]) -> Option<T> {
    let Some(Ok(emu)) = EMULATOR.get() else {
        return None;
    };
    // SAFETY: the caller names the emulator's exported C signature as T.
    unsafe { emu.driver.get::<T>(name).ok().map(|s| *s) }
}

/// Marks a training-step boundary in the emulator's per-step counters (no-op otherwise).
pub fn mark_step() {
    if let Some(f) = symbol::<unsafe extern "C" fn()>(b"scdEmuMarkStep\0") {
        // SAFETY: `void scdEmuMarkStep(void)`.
        unsafe { f() }
    }
}

/// Writes the counters to `SCDREAMER_EMULATE_CUDA_STATS` now (they are also written at exit).
pub fn write_stats() {
    if let Some(f) = symbol::<unsafe extern "C" fn()>(b"scdEmuWriteStats\0") {
        // SAFETY: `void scdEmuWriteStats(void)`.
        unsafe { f() }
    }
}

/// Clears a sticky kernel fault, so a test can go on after provoking one.
pub fn reset_error() {
    if let Some(f) = symbol::<unsafe extern "C" fn()>(b"scdEmuResetError\0") {
        // SAFETY: `void scdEmuResetError(void)`.
        unsafe { f() }
    }
}

/// Block and thread order of later launches: forward, or reversed.
pub fn set_reversed_order(reversed: bool) {
    if let Some(f) = symbol::<unsafe extern "C" fn(i32)>(b"scdEmuSetOrder\0") {
        // SAFETY: `void scdEmuSetOrder(int)`.
        unsafe { f(i32::from(reversed)) }
    }
}

/// The emulator's last error message ("" when none).
pub fn last_error() -> String {
    match symbol::<unsafe extern "C" fn() -> *const std::os::raw::c_char>(b"scdEmuLastError\0") {
        // SAFETY: a NUL-terminated string valid until the next call on this thread.
        Some(f) => unsafe { std::ffi::CStr::from_ptr(f()) }
            .to_string_lossy()
            .into_owned(),
        None => String::new(),
    }
}

/// For the CUDA tests: note in `SCDREAMER_EMULATED_TEST_LOG` that `test` ran on the emulated
/// device (nothing when the variable is unset or a real GPU is in use).
pub fn note_test(test: &str) {
    use std::io::Write;
    let Some(path) = std::env::var_os(TEST_LOG_ENV) else {
        return;
    };
    if !active() {
        return;
    }
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        let _ = writeln!(f, "{test}");
    }
}
