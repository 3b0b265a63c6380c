//! `--device auto|cpu|cuda`: which backend a run uses, and one line saying why.

/// What the user asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceRequest {
    /// A GPU when one is usable, else the CPU (with a reason).
    Auto,
    /// The CPU, always.
    Cpu,
    /// A GPU or an error.
    Cuda,
}

/// The device a run uses.
pub enum Device {
    /// The CPU backend. `note` is the one line to print when `auto` fell back (None when the
    /// user asked for the CPU).
    Cpu { note: Option<String> },
    /// An opened GPU.
    #[cfg(feature = "cuda")]
    Cuda(std::sync::Arc<crate::backend::cuda::CudaRuntime>),
}

impl Device {
    /// One line for the log: "device: cpu (...)" or "device: GPU 0: NVIDIA H100 (sm_90)".
    pub fn describe(&self) -> String {
        match self {
            Device::Cpu { note: Some(n) } => format!("device: cpu ({n})"),
            Device::Cpu { note: None } => "device: cpu".into(),
            #[cfg(feature = "cuda")]
            Device::Cuda(rt) => format!("device: {}", rt.describe()),
        }
    }

    /// True for a GPU.
    pub fn is_cuda(&self) -> bool {
        !matches!(self, Device::Cpu { .. })
    }
}

/// Why no GPU can be used, or the opened GPU. Never panics.
///
/// A GPU counts as usable only when its context opens, every kernel module loads and cuBLAS
/// initialises, so `auto` falls back to the CPU (and `cuda` fails) at start-up rather than in
/// the middle of training.
#[cfg(feature = "cuda")]
pub fn probe_gpu() -> Result<std::sync::Arc<crate::backend::cuda::CudaRuntime>, String> {
    let rt = crate::backend::cuda::CudaRuntime::open(0)?;
    let checked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        rt.load_all()
            .and_then(|()| rt.blas().map(|_| ()))
            .map_err(|e| format!("{} is unusable: {e:#}", rt.describe()))
    }));
    match checked {
        Ok(Ok(())) => Ok(rt),
        Ok(Err(why)) => Err(why.replace('\n', " ")),
        Err(_) => Err(format!(
            "{} is unusable: CUDA set-up panicked",
            rt.describe()
        )),
    }
}

/// For the CUDA tests and checks: a real GPU when one is usable (and `SCDREAMER_EMULATE_CUDA`
/// is not 1), else the emulated CUDA device; the flag says which. With
/// `SCDREAMER_REQUIRE_GPU=1` (scripts/gpu_check.sh on a GPU machine) only a real GPU counts.
#[cfg(feature = "cuda")]
pub fn probe_gpu_or_emulated()
-> Result<(std::sync::Arc<crate::backend::cuda::CudaRuntime>, bool), String> {
    use crate::backend::cuda::emulator;
    let require_real = std::env::var("SCDREAMER_REQUIRE_GPU").as_deref() == Ok("1");
    let real = if emulator::requested() {
        Err(format!("{}=1", emulator::ENV))
    } else {
        probe_gpu()
    };
    match real {
        // Once installed in this process the emulator is what cudarc opens, "real" or not.
        Ok(rt) => Ok((rt, emulator::active())),
        Err(why) if require_real => Err(format!("SCDREAMER_REQUIRE_GPU=1 but {why}")),
        Err(why) => {
            emulator::install().map_err(|e| format!("no GPU ({why}) and {e}"))?;
            probe_gpu().map(|rt| (rt, true))
        }
    }
}

/// The CUDA backend on a resolved GPU.
#[cfg(feature = "cuda")]
pub fn cuda_backend(
    rt: std::sync::Arc<crate::backend::cuda::CudaRuntime>,
) -> anyhow::Result<crate::backend::cuda::CudaBackend> {
    crate::backend::cuda::CudaBackend::new(rt)
}

/// Why no GPU can be used (this build has no CUDA support).
#[cfg(not(feature = "cuda"))]
pub fn probe_gpu() -> Result<std::convert::Infallible, String> {
    Err("this scdreamer was built without the `cuda` feature".into())
}

/// Resolve the request: `cpu` is the CPU; `cuda` is a GPU or an error naming why none is
/// usable; `auto` is a GPU when one opens, else the CPU with a note saying why.
pub fn resolve(request: DeviceRequest) -> anyhow::Result<Device> {
    match request {
        DeviceRequest::Cpu => Ok(Device::Cpu { note: None }),
        DeviceRequest::Cuda => match probe_gpu() {
            #[cfg(feature = "cuda")]
            Ok(rt) => Ok(Device::Cuda(rt)),
            #[cfg(not(feature = "cuda"))]
            Ok(never) => match never {},
            Err(why) => {
                anyhow::bail!("--device cuda: no usable GPU: {why} (use --device cpu or auto)")
            }
        },
        DeviceRequest::Auto => match probe_gpu() {
            #[cfg(feature = "cuda")]
            Ok(rt) => Ok(Device::Cuda(rt)),
            #[cfg(not(feature = "cuda"))]
            Ok(never) => match never {},
            Err(why) => Ok(Device::Cpu {
                note: Some(format!("no usable GPU: {why}")),
            }),
        },
    }
}
