//! One opened GPU: context, stream, kernel modules (loaded lazily) and cuBLAS.
//!
//! Opening never panics: cudarc panics when libcuda is missing, so [`CudaRuntime::open`] checks
//! `is_culib_present` first and wraps the rest in `catch_unwind` as well.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex, OnceLock};

use anyhow::{Context, anyhow, bail};
use cudarc::cublas::CudaBlas;
use cudarc::driver::{CudaContext, CudaFunction, CudaModule, CudaStream};
use cudarc::nvrtc::Ptx;

use super::embedded::{self, EmbeddedModule};
use super::image::{self, ImageChoice};
use super::nvrtc::{Nvrtc, Target};

/// An opened GPU with everything the kernels need.
pub struct CudaRuntime {
    /// The CUDA context (primary context of the device).
    pub ctx: Arc<CudaContext>,
    /// The stream every kernel and cuBLAS call of this runtime goes to.
    pub stream: Arc<CudaStream>,
    /// Device name, e.g. "NVIDIA H100 80GB HBM3".
    pub name: String,
    /// Compute capability (major, minor).
    pub compute_capability: (i32, i32),
    modules: Mutex<HashMap<&'static str, Arc<CudaModule>>>,
    functions: Mutex<HashMap<(&'static str, String), CudaFunction>>,
    /// How each module was loaded, for `describe` and the GPU check script.
    load_log: Mutex<Vec<String>>,
    blas: OnceLock<Result<Arc<CudaBlas>, String>>,
}

impl CudaRuntime {
    /// Open GPU `ordinal`, or say in one line why not. Never panics. With
    /// `SCDREAMER_EMULATE_CUDA=1` this is the emulated device ([`super::emulator`]).
    pub fn open(ordinal: usize) -> Result<Arc<CudaRuntime>, String> {
        if super::emulator::requested() {
            super::emulator::install()?;
        }
        // SAFETY: only tries to dlopen libcuda by its usual names.
        if !unsafe { cudarc::driver::sys::is_culib_present() } {
            return Err("no CUDA driver on this machine (libcuda.so not found)".into());
        }
        match std::panic::catch_unwind(AssertUnwindSafe(|| Self::open_unchecked(ordinal))) {
            Ok(result) => result,
            Err(payload) => Err(format!(
                "CUDA initialisation failed: {}",
                panic_text(&payload)
            )),
        }
    }

    fn open_unchecked(ordinal: usize) -> Result<Arc<CudaRuntime>, String> {
        let count = CudaContext::device_count()
            .map_err(|e| format!("the CUDA driver cannot list GPUs ({e})"))?;
        if count <= 0 {
            return Err("the CUDA driver sees no GPU".into());
        }
        if ordinal >= count as usize {
            return Err(format!(
                "GPU {ordinal} does not exist (the driver sees {count})"
            ));
        }
        let ctx = CudaContext::new(ordinal)
            .map_err(|e| format!("cannot open a CUDA context on GPU {ordinal} ({e})"))?;
        let name = ctx.name().unwrap_or_else(|_| "unknown GPU".into());
        let compute_capability = ctx
            .compute_capability()
            .map_err(|e| format!("cannot read the compute capability of GPU {ordinal} ({e})"))?;
        if compute_capability < (7, 5) {
            return Err(format!(
                "GPU {ordinal} ({name}) has compute capability {}.{}; scdreamer needs >= 7.5",
                compute_capability.0, compute_capability.1
            ));
        }
        let stream = ctx
            .new_stream()
            .map_err(|e| format!("cannot create a CUDA stream ({e})"))?;
        Ok(Arc::new(CudaRuntime {
            ctx,
            stream,
            name,
            compute_capability,
            modules: Mutex::new(HashMap::new()),
            functions: Mutex::new(HashMap::new()),
            load_log: Mutex::new(Vec::new()),
            blas: OnceLock::new(),
        }))
    }

    /// One line naming the GPU, e.g. "GPU 0: NVIDIA H100 (sm_90)".
    pub fn describe(&self) -> String {
        let (major, minor) = self.compute_capability;
        format!(
            "GPU {}: {} (sm_{major}{minor})",
            self.ctx.ordinal(),
            self.name
        )
    }

    /// How each loaded module was obtained ("zinb: cubin sm_90", "adam: ptx (JIT)", ...).
    pub fn load_log(&self) -> Vec<String> {
        self.load_log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// The kernel `kernel` of module `module` (a `kernels/*.cu` stem), loading the module on
    /// first use.
    /// Functions are cached: a training step launches hundreds of kernels.
    pub fn function(&self, module: &'static str, kernel: &str) -> anyhow::Result<CudaFunction> {
        let key = (module, kernel.to_string());
        if let Ok(cache) = self.functions.lock()
            && let Some(f) = cache.get(&key)
        {
            return Ok(f.clone());
        }
        let m = self.module(module)?;
        let f = m
            .load_function(kernel)
            .map_err(|e| anyhow!("kernel {kernel} not found in kernels/{module}.cu ({e:?})"))?;
        if let Ok(mut cache) = self.functions.lock() {
            cache.insert(key, f.clone());
        }
        Ok(f)
    }

    /// Load every embedded module now (surfaces image problems at start-up, not mid-training).
    pub fn load_all(&self) -> anyhow::Result<()> {
        for m in embedded::MODULES {
            self.module(m.name)?;
        }
        Ok(())
    }

    fn module(&self, name: &'static str) -> anyhow::Result<Arc<CudaModule>> {
        let mut cache = self
            .modules
            .lock()
            .map_err(|_| anyhow!("CUDA module cache poisoned"))?;
        if let Some(m) = cache.get(name) {
            return Ok(m.clone());
        }
        let embedded = embedded::module(name)
            .ok_or_else(|| anyhow!("no kernel module kernels/{name}.cu in this build"))?;
        let (module, how) = self.load_embedded(embedded)?;
        if let Ok(mut log) = self.load_log.lock() {
            log.push(format!("{name}: {how}"));
        }
        cache.insert(name, module.clone());
        Ok(module)
    }

    /// Try the candidates of [`image::candidates`] in order; the first that loads wins.
    fn load_embedded(&self, m: &EmbeddedModule) -> anyhow::Result<(Arc<CudaModule>, String)> {
        let (major, minor) = self.compute_capability;
        let mut errors = Vec::new();
        for choice in image::candidates(m, major, minor) {
            let attempt = match choice {
                ImageChoice::Cubin(arch) => {
                    let bytes = m.cubins.iter().find(|(a, _)| *a == arch).map(|(_, b)| *b);
                    match bytes {
                        Some(b) => self
                            .ctx
                            .load_module(Ptx::from_binary(b.to_vec()))
                            .map(|md| (md, format!("cubin sm_{arch}")))
                            .map_err(|e| format!("cubin sm_{arch}: {e:?}")),
                        None => Err(format!("cubin sm_{arch} missing")),
                    }
                }
                ImageChoice::Ptx => match m.ptx {
                    Some(text) => self
                        .ctx
                        .load_module(Ptx::from_src(text))
                        .map(|md| (md, "ptx compute_80 (driver JIT)".to_string()))
                        .map_err(|e| format!("ptx: {e:?}")),
                    None => Err("ptx missing".into()),
                },
                ImageChoice::Source => self.compile_at_runtime(m),
            };
            match attempt {
                Ok(ok) => return Ok(ok),
                Err(e) => errors.push(e),
            }
        }
        bail!(
            "cannot load kernels/{}.cu on {}: {}",
            m.name,
            self.describe(),
            errors.join("; ")
        )
    }

    fn compile_at_runtime(&self, m: &EmbeddedModule) -> Result<(Arc<CudaModule>, String), String> {
        let nvrtc = nvrtc_for_runtime()?;
        let (major, minor) = self.compute_capability;
        let arch = (major * 10 + minor) as u32;
        let cubin = nvrtc.compile(
            &format!("{}.cu", m.name),
            m.source,
            embedded::HEADERS,
            Target::Cubin(arch),
        )?;
        let (vmaj, vmin) = nvrtc.version();
        self.ctx
            .load_module(Ptx::from_binary(cubin))
            .map(|md| {
                (
                    md,
                    format!("compiled at run time for sm_{arch} by NVRTC {vmaj}.{vmin}"),
                )
            })
            .map_err(|e| format!("runtime cubin sm_{arch}: {e:?}"))
    }

    /// cuBLAS on this runtime's stream, created on first use (libcublas must be loadable).
    pub fn blas(&self) -> anyhow::Result<Arc<CudaBlas>> {
        let r = self.blas.get_or_init(|| {
            // SAFETY: only tries to dlopen libcublas by its usual names.
            if !unsafe { cudarc::cublas::sys::is_culib_present() } {
                return Err("libcublas.so not found (install the CUDA toolkit or the \
                            nvidia-cublas wheel and put its lib directory on LD_LIBRARY_PATH)"
                    .into());
            }
            let stream = self.stream.clone();
            match std::panic::catch_unwind(AssertUnwindSafe(|| CudaBlas::new(stream))) {
                Ok(Ok(b)) => Ok(Arc::new(b)),
                Ok(Err(e)) => Err(format!("cannot create a cuBLAS handle ({e:?})")),
                Err(p) => Err(format!("cuBLAS initialisation failed: {}", panic_text(&p))),
            }
        });
        r.clone().map_err(|e| anyhow!(e))
    }

    /// Wait for all queued work; turns an asynchronous kernel fault into an error here.
    pub fn synchronize(&self) -> anyhow::Result<()> {
        self.stream
            .synchronize()
            .map_err(|e| anyhow!("{e:?}"))
            .with_context(|| format!("CUDA error on {}", self.describe()))
    }
}

/// The process-wide NVRTC used to compile embedded sources at run time.
fn nvrtc_for_runtime() -> Result<&'static Nvrtc, String> {
    static NVRTC: OnceLock<Result<Nvrtc, String>> = OnceLock::new();
    NVRTC
        .get_or_init(Nvrtc::locate)
        .as_ref()
        .map_err(|e| format!("this binary holds kernel sources only and {e}"))
}

fn panic_text(payload: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic".into()
    }
}
