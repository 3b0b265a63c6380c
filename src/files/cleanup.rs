//! Temporary files and directories of outputs being written, removed on drop and by the signal
//! handler (SIGINT, SIGTERM, SIGHUP), so an interrupted or failed run leaves nothing behind.
//! Commits (the final renames) hold a lock the handler waits for: a signal never lands between
//! the renames of a model's two files.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

/// Temp paths being written, removed by the signal handler.
static IN_PROGRESS: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());
/// Held while temp files are renamed into place.
static COMMIT: Mutex<()> = Mutex::new(());

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

fn remove_path(p: &Path) {
    if p.is_dir() {
        let _ = std::fs::remove_dir_all(p);
    } else {
        let _ = std::fs::remove_file(p);
    }
}

/// Install a handler for Ctrl-C (SIGINT), SIGTERM and SIGHUP that deletes every half-written
/// output and exits with 130. Safe to call more than once. (The CLI's: the Python package
/// leaves signals to Python.)
#[cfg(feature = "h5ad")]
pub fn install_signal_cleanup() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let result = ctrlc::set_handler(|| {
            // Wait for a rename in progress: afterwards its temps are registered no more.
            let _commit = lock(&COMMIT);
            let paths = lock(&IN_PROGRESS).clone();
            for p in paths {
                remove_path(&p);
            }
            eprintln!("\ninterrupted: no output written");
            std::process::exit(130);
        });
        if let Err(e) = result {
            eprintln!("warning: cannot install the Ctrl-C/SIGTERM handler: {e}");
        }
    });
}

/// A registered temp file or directory, deleted on drop unless committed.
pub struct TempPath {
    pub path: PathBuf,
    keep: bool,
}

impl TempPath {
    pub fn new(path: PathBuf) -> TempPath {
        lock(&IN_PROGRESS).push(path.clone());
        TempPath { path, keep: false }
    }

    /// The path stays (it was renamed into place, or is gone).
    pub fn keep(mut self) {
        self.keep = true;
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        if !self.keep {
            remove_path(&self.path);
        }
        lock(&IN_PROGRESS).retain(|p| p != &self.path);
    }
}

/// Runs the renames of `f` with signals held off until it returns.
pub fn commit<T>(f: impl FnOnce() -> T) -> T {
    let _g = lock(&COMMIT);
    f()
}

/// Temp name beside `target`: `.<name>.tmp-<pid>`, so the rename stays on one file system.
pub fn temp_beside(target: &Path) -> anyhow::Result<PathBuf> {
    let name = target
        .file_name()
        .ok_or_else(|| anyhow::anyhow!("output path {} has no file name", target.display()))?;
    let dir = target
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    Ok(dir.join(format!(
        ".{}.tmp-{}",
        name.to_string_lossy(),
        std::process::id()
    )))
}

/// "No space left on device" first when an error chain comes from a full disk (HDF5 buries
/// errno 28 deep in its own message), else the error unchanged.
pub fn explain_write_error(e: anyhow::Error, path: &Path) -> anyhow::Error {
    let text = format!("{e:#}");
    if text.contains("No space left on device") || text.contains("errno = 28") {
        anyhow::anyhow!(
            "cannot write {}: No space left on device (nothing was written; free some space \
             or choose another --output)",
            path.display()
        )
    } else {
        e
    }
}

/// A complete output under its temp name, renamed into place by [`commit_all`]; dropped
/// uncommitted, it is removed.
pub struct Pending {
    tmp: TempPath,
    target: PathBuf,
    /// Directories created for the target (removed with the temp on failure).
    created: Option<TempPath>,
}

impl Pending {
    pub fn new(tmp: TempPath, target: PathBuf) -> Pending {
        Pending {
            tmp,
            target,
            created: None,
        }
    }

    /// Also remove `dir` (a parent this output created) unless committed.
    pub fn with_created(mut self, dir: Option<TempPath>) -> Pending {
        self.created = dir;
        self
    }
}

/// Renames every pending output into place, in order, with signals held off: a run's outputs
/// appear together or not at all.
pub fn commit_all(pending: Vec<Pending>) -> anyhow::Result<()> {
    commit(|| {
        for p in pending {
            std::fs::rename(&p.tmp.path, &p.target).map_err(|e| {
                anyhow::anyhow!(
                    "cannot move {} to {}: {e}",
                    p.tmp.path.display(),
                    p.target.display()
                )
            })?;
            p.tmp.keep();
            if let Some(c) = p.created {
                c.keep();
            }
        }
        Ok(())
    })
}

/// Writes `bytes` to a registered temp file beside `path` (synced), ready to commit.
pub fn write_pending(path: &Path, bytes: &[u8]) -> anyhow::Result<Pending> {
    use std::io::Write;
    let tmp = TempPath::new(temp_beside(path)?);
    let res = (|| -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp.path)?;
        f.write_all(bytes)?;
        f.sync_all()
    })();
    if let Err(e) = res {
        anyhow::bail!("cannot write {}: {e}", path.display());
    }
    Ok(Pending::new(tmp, path.to_path_buf()))
}
