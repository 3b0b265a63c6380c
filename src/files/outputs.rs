//! Every path a run will write, checked before any work starts: against every input (the
//! input is never overwritten, whichever output would land on it), against each other, and
//! for writability (missing parent, an existing directory where a file goes, a file where a
//! directory goes, a read-only file system). A typo costs a second, not a training run.

use std::io::ErrorKind;
use std::path::{Component, Path, PathBuf};

use anyhow::{Result, bail};

/// What is written at an output path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    File,
    /// A directory created when missing (`--save-model DIR`).
    Dir,
    /// A file inside a `Dir` output (its parent may not exist yet).
    DirFile,
}

/// The outputs and inputs of one run.
#[derive(Default, Debug)]
pub struct OutputPlan {
    outputs: Vec<(String, PathBuf, Kind)>,
    inputs: Vec<(String, PathBuf)>,
}

/// The path made absolute with symlinks resolved as far as it exists; the missing rest is
/// appended lexically (`.` dropped, `..` popped).
pub fn resolve(p: &Path) -> Option<PathBuf> {
    let abs = if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir().ok()?.join(p)
    };
    let mut missing = Vec::new();
    let mut base = abs.as_path();
    let canon = loop {
        if let Ok(c) = base.canonicalize() {
            break c;
        }
        missing.push(base.components().next_back()?.as_os_str().to_os_string());
        base = base.parent()?;
    };
    let mut out = canon;
    for part in missing.iter().rev() {
        match Path::new(part).components().next() {
            Some(Component::ParentDir) => {
                out.pop();
            }
            Some(Component::CurDir) | None => {}
            _ => out.push(part),
        }
    }
    Some(out)
}

/// True when `a` and `b` are one file: same inode (symlinks and hard links included) when both
/// exist, else the same resolved path.
pub fn same_file(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    if let (Ok(ma), Ok(mb)) = (std::fs::metadata(a), std::fs::metadata(b)) {
        return ma.dev() == mb.dev() && ma.ino() == mb.ino();
    }
    matches!((resolve(a), resolve(b)), (Some(x), Some(y)) if x == y)
}

/// The directory a file `p` goes into ("." for a bare name).
fn parent_of(p: &Path) -> &Path {
    p.parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// Creates and removes a probe file in `dir`: the one reliable test that the directory takes
/// new files (permissions, read-only mounts, ACLs; root ignores the mode bits).
fn probe_writable(dir: &Path, role: &str, target: &Path) -> Result<()> {
    let probe = dir.join(format!(".scdreamer-write-test-{}", std::process::id()));
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
    {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            Ok(())
        }
        Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(()),
        Err(e) => bail!(
            "cannot write {role} {}: directory {} does not take new files ({e})",
            target.display(),
            dir.display()
        ),
    }
}

impl OutputPlan {
    pub fn new() -> OutputPlan {
        OutputPlan::default()
    }

    /// A file the run writes; `role` names it in messages (e.g. "--output").
    pub fn file(mut self, role: &str, path: &Path) -> Self {
        self.outputs
            .push((role.to_string(), path.to_path_buf(), Kind::File));
        self
    }

    /// A directory the run creates if needed and writes `files` into.
    pub fn dir(mut self, role: &str, path: &Path, files: &[&str]) -> Self {
        self.outputs
            .push((role.to_string(), path.to_path_buf(), Kind::Dir));
        for f in files {
            self.outputs
                .push((format!("{role} file {f}"), path.join(f), Kind::DirFile));
        }
        self
    }

    /// A file the run reads (never to be written).
    pub fn input(mut self, role: &str, path: &Path) -> Self {
        self.inputs.push((role.to_string(), path.to_path_buf()));
        self
    }

    /// Checks everything; the first problem is the error.
    pub fn check(&self) -> Result<()> {
        for (role, out, _) in &self.outputs {
            for (in_role, input) in &self.inputs {
                if same_file(out, input) {
                    bail!(
                        "refusing to write {role} {} onto the input {in_role} {}: choose another path",
                        out.display(),
                        input.display()
                    );
                }
            }
        }
        for (i, (ra, a, ka)) in self.outputs.iter().enumerate() {
            for (rb, b, kb) in &self.outputs[i + 1..] {
                let clash = same_file(a, b)
                    || (*ka == Kind::Dir && *kb != Kind::Dir && inside(a, b) && !own(ra, rb))
                    || (*kb == Kind::Dir && *ka != Kind::Dir && inside(b, a) && !own(rb, ra));
                if clash {
                    bail!(
                        "{ra} {} and {rb} {} are the same path: give them different names",
                        a.display(),
                        b.display()
                    );
                }
            }
        }
        for (role, out, kind) in &self.outputs {
            match kind {
                Kind::File => check_file_target(role, out)?,
                Kind::Dir => check_dir_target(role, out)?,
                Kind::DirFile => {
                    if out.is_dir() {
                        bail!("{role} {} is an existing directory", out.display());
                    }
                }
            }
        }
        Ok(())
    }
}

fn check_file_target(role: &str, out: &Path) -> Result<()> {
    if out.file_name().is_none() || out.as_os_str().to_string_lossy().ends_with('/') {
        bail!("{role} {} has no file name", out.display());
    }
    if out.is_dir() {
        bail!(
            "{role} {} is an existing directory; give a file name",
            out.display()
        );
    }
    let dir = parent_of(out);
    if !dir.is_dir() {
        bail!(
            "cannot write {role} {}: directory {} does not exist",
            out.display(),
            dir.display()
        );
    }
    probe_writable(dir, role, out)
}

fn check_dir_target(role: &str, dir: &Path) -> Result<()> {
    if dir.exists() && !dir.is_dir() {
        bail!(
            "{role} {} is an existing file, not a directory: give a directory for the model",
            dir.display()
        );
    }
    let base = nearest_existing(dir).unwrap_or_else(|| PathBuf::from("."));
    if !base.is_dir() {
        bail!(
            "cannot create {role} {}: {} is a file, not a directory",
            dir.display(),
            base.display()
        );
    }
    probe_writable(&base, role, dir)
}

/// True when file output `file` lies inside directory output `dir`.
fn inside(dir: &Path, file: &Path) -> bool {
    matches!((resolve(dir), resolve(file)), (Some(d), Some(f)) if f.starts_with(&d))
}

/// True when `file_role` is one of the files `dir_role` itself writes.
fn own(dir_role: &str, file_role: &str) -> bool {
    file_role.starts_with(&format!("{dir_role} file "))
}

/// The deepest ancestor of `p` (itself included) that exists.
fn nearest_existing(p: &Path) -> Option<PathBuf> {
    p.ancestors()
        .map(|a| {
            if a.as_os_str().is_empty() {
                Path::new(".")
            } else {
                a
            }
        })
        .find(|a| a.exists())
        .map(Path::to_path_buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outputs_onto_inputs_or_each_other_are_refused() {
        let d = tempfile::tempdir().unwrap();
        let input = d.path().join("in.h5ad");
        std::fs::write(&input, b"x").unwrap();
        let out = d.path().join("out.h5ad");
        let plan = |log: &Path| {
            OutputPlan::new()
                .file("--output", &out)
                .file("the training log", log)
                .input("--input", &input)
                .check()
        };
        assert!(plan(&d.path().join("out.log.csv")).is_ok());
        let e = plan(&input).unwrap_err().to_string();
        assert!(e.contains("onto the input --input"), "{e}");
        let e = plan(&out).unwrap_err().to_string();
        assert!(e.contains("same path"), "{e}");
        // A model directory holding the output file.
        let e = OutputPlan::new()
            .file("--output", &d.path().join("m/weights.safetensors"))
            .dir(
                "--save-model",
                &d.path().join("m"),
                &["weights.safetensors"],
            )
            .check()
            .unwrap_err()
            .to_string();
        assert!(e.contains("same path"), "{e}");
    }

    #[test]
    fn missing_parent_directory_and_file_as_dir_are_refused() {
        let d = tempfile::tempdir().unwrap();
        let e = OutputPlan::new()
            .file("--output", &d.path().join("no/such/out.h5ad"))
            .check()
            .unwrap_err()
            .to_string();
        assert!(e.contains("does not exist"), "{e}");
        let e = OutputPlan::new()
            .file("--output", d.path())
            .check()
            .unwrap_err()
            .to_string();
        assert!(e.contains("existing directory"), "{e}");
        let f = d.path().join("file");
        std::fs::write(&f, b"").unwrap();
        let e = OutputPlan::new()
            .dir("--save-model", &f, &["config.json"])
            .check()
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a directory"), "{e}");
        assert!(
            OutputPlan::new()
                .dir("--save-model", &d.path().join("a/b"), &["config.json"])
                .check()
                .is_ok()
        );
    }

    #[test]
    fn resolve_handles_missing_tails() {
        let d = tempfile::tempdir().unwrap();
        let base = d.path().canonicalize().unwrap();
        assert_eq!(resolve(&d.path().join("x/../y")).unwrap(), base.join("y"));
        assert_eq!(resolve(&d.path().join("./z")).unwrap(), base.join("z"));
    }
}
