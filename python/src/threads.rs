//! Threads: the pool of `n_threads`, and training on its own thread while the calling thread
//! checks for Ctrl-C and draws progress.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use pyo3::prelude::*;
use scdreamer::train::StepProgress;

use crate::args::*;

/// A thread pool of `n` threads (None: rayon's global pool, all cores, as the CLI without
/// --threads).
pub(crate) fn pool(n: Option<usize>) -> PyResult<Option<Arc<rayon::ThreadPool>>> {
    match n {
        None => Ok(None),
        Some(0) => Err(bad("n_threads must be at least 1".into())),
        Some(n) => rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build()
            .map(|p| Some(Arc::new(p)))
            .map_err(|e| bad(format!("cannot start {n} threads: {e}"))),
    }
}

pub(crate) fn install<R: Send>(
    pool: &Option<Arc<rayon::ThreadPool>>,
    f: impl FnOnce() -> R + Send,
) -> R {
    match pool {
        Some(p) => p.install(f),
        None => scdreamer::backend::cpu::par::on_a_worker(f),
    }
}

/// Where training is, shared between the training thread and the calling (main) thread.
#[derive(Default)]
pub(crate) struct Shared {
    step: AtomicUsize,
    total: AtomicUsize,
    epoch: AtomicUsize,
    epochs: AtomicUsize,
    /// Set by the main thread (Ctrl-C, or an error in the progress callback): the training
    /// thread stops at its next step.
    stop: AtomicBool,
}

/// Stops training at the next step once `stop` is set.
#[derive(Debug)]
pub(crate) struct Stopped;

impl std::fmt::Display for Stopped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("training was interrupted")
    }
}

impl std::error::Error for Stopped {}

/// Runs `work` on its own thread (inside the thread pool, if any) while the calling thread
/// checks for Ctrl-C and feeds `callback(step, total steps, epoch, epochs)` about every 0.1 s.
/// Python runs signal handlers only on the main thread, and a thread pool's `install` runs
/// the work on a pool thread, so the checks cannot live in the training loop itself.
pub(crate) fn watched<R: Send>(
    py: Python<'_>,
    pool: &Option<Arc<rayon::ThreadPool>>,
    callback: Option<PyObject>,
    work: impl FnOnce(&mut dyn FnMut(StepProgress) -> anyhow::Result<()>) -> anyhow::Result<R> + Send,
) -> PyResult<R> {
    let shared = Shared::default();
    let mut raised: Option<PyErr> = None;
    let result = py.allow_threads(|| {
        std::thread::scope(|scope| {
            let sh = &shared;
            let handle = scope.spawn(move || {
                install(pool, move || {
                    let mut on_step = |p: StepProgress| -> anyhow::Result<()> {
                        sh.step.store(p.step, Ordering::Relaxed);
                        sh.total.store(p.total_steps, Ordering::Relaxed);
                        sh.epoch.store(p.epoch, Ordering::Relaxed);
                        sh.epochs.store(p.epochs, Ordering::Relaxed);
                        if sh.stop.load(Ordering::Relaxed) {
                            return Err(anyhow::Error::new(Stopped));
                        }
                        Ok(())
                    };
                    work(&mut on_step)
                })
            });
            let mut last = Instant::now();
            let mut shown = usize::MAX;
            loop {
                let done = handle.is_finished();
                if done || last.elapsed() >= Duration::from_millis(100) {
                    last = Instant::now();
                    let step = shared.step.load(Ordering::Relaxed);
                    let r = Python::with_gil(|py| -> PyResult<()> {
                        py.check_signals()?;
                        if let Some(cb) = callback
                            .as_ref()
                            .filter(|_| step != shown && shared.total.load(Ordering::Relaxed) > 0)
                        {
                            shown = step;
                            let total = shared.total.load(Ordering::Relaxed);
                            let epoch = shared.epoch.load(Ordering::Relaxed);
                            let epochs = shared.epochs.load(Ordering::Relaxed);
                            cb.call1(py, (step, total, epoch, epochs))?;
                        }
                        Ok(())
                    });
                    if let Err(e) = r {
                        if raised.is_none() {
                            raised = Some(e);
                        }
                        shared.stop.store(true, Ordering::Relaxed);
                    }
                }
                if done {
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            handle
                .join()
                .unwrap_or_else(|_| Err(anyhow::anyhow!("training panicked")))
        })
    });
    match (result, raised) {
        (Ok(r), None) => Ok(r),
        // Ctrl-C or a failing callback: that exception, whatever training returned.
        (_, Some(e)) => Err(e),
        (Err(e), None) => Err(crate::errors::to_py(e)),
    }
}
