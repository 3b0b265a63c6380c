//! Harness of the bad-input suite: every case runs the binary on inputs copied into its own
//! scratch directory and checks the exit code (non-zero, never a panic's 101, an abort's 134 or
//! a signal), the `error:` line, that nothing new is left in the directory (no output, no temp
//! file) and that every input's bytes are unchanged.

#![allow(dead_code)] // each test crate uses a different part

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_scdreamer");

/// Longest any case may take: a hang is a failure, not a stuck CI job.
pub const LIMIT: Duration = Duration::from_secs(120);

pub fn demo() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/data/demo.h5ad"))
}

/// A scratch directory for one case.
pub struct Case {
    pub dir: tempfile::TempDir,
}

impl Case {
    pub fn new() -> Case {
        Case {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A copy of the demo file named `name`.
    pub fn demo(&self, name: &str) -> PathBuf {
        let p = self.path(name);
        std::fs::copy(demo(), &p).unwrap();
        p
    }

    /// A copy of the shared small trained model, as directory `name`.
    pub fn model(&self, name: &str) -> PathBuf {
        let src = trained_model();
        let dst = self.path(name);
        std::fs::create_dir(&dst).unwrap();
        for f in ["weights.safetensors", "config.json"] {
            std::fs::copy(src.join(f), dst.join(f)).unwrap();
        }
        dst
    }

    /// Edits `config.json` of a model directory.
    pub fn edit_config(&self, model: &Path, f: impl FnOnce(&mut serde_json::Value)) {
        let p = model.join("config.json");
        let mut v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
        f(&mut v);
        std::fs::write(&p, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
    }

    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, text).unwrap();
        p
    }
}

/// How a run ended.
pub struct Outcome {
    pub code: i32,
    pub stderr: String,
    pub elapsed: Duration,
}

/// Runs `program args` with the time limit; panics on a hang, a signal, a panic or an abort.
pub fn run_program(program: &str, args: &[String]) -> Outcome {
    let t = Instant::now();
    let mut child = Command::new(program)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts");
    let stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::BufReader::new(stderr), &mut s).ok();
        s
    });
    let stdout = child.stdout.take().unwrap();
    let out_reader = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::BufReader::new(stdout), &mut s).ok();
        s
    });
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if t.elapsed() > LIMIT {
            child.kill().ok();
            child.wait().ok();
            panic!("{program} {args:?} hangs: still running after {LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let elapsed = t.elapsed();
    let mut stderr = reader.join().unwrap();
    let stdout = out_reader.join().unwrap();
    stderr.push_str(&stdout);
    let code = match status.code() {
        Some(c) => c,
        None => panic!("{args:?} was killed by a signal ({status:?}):\n{stderr}"),
    };
    assert!(
        code != 101 && !stderr.contains("panicked"),
        "{args:?} panicked (rc {code}):\n{stderr}"
    );
    assert!(
        code != 134 && code < 128,
        "{args:?} aborted or died of a signal (rc {code}):\n{stderr}"
    );
    Outcome {
        code,
        stderr,
        elapsed,
    }
}

pub fn run(args: &[&str]) -> Outcome {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    run_program(BIN, &args)
}

/// Every file and directory under `dir` with its bytes (directories: None).
pub fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Option<Vec<u8>>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(dir).unwrap().to_path_buf();
            let meta = std::fs::symlink_metadata(&p).unwrap();
            if meta.is_dir() {
                out.insert(rel, None);
                stack.push(p);
            } else if meta.file_type().is_symlink() {
                out.insert(
                    rel,
                    Some(
                        std::fs::read_link(&p)
                            .unwrap()
                            .into_os_string()
                            .into_encoded_bytes(),
                    ),
                );
            } else {
                out.insert(rel, Some(std::fs::read(&p).unwrap()));
            }
        }
    }
    out
}

/// Asserts `before` and `after` hold the same paths with the same bytes.
pub fn assert_unchanged(
    before: &BTreeMap<PathBuf, Option<Vec<u8>>>,
    after: &BTreeMap<PathBuf, Option<Vec<u8>>>,
    args: &[&str],
) {
    let new: Vec<_> = after.keys().filter(|k| !before.contains_key(*k)).collect();
    assert!(new.is_empty(), "{args:?} left {new:?}");
    for (k, v) in before {
        match after.get(k) {
            None => panic!("{args:?} removed the input {k:?}"),
            Some(w) => assert!(v == w, "{args:?} changed the bytes of the input {k:?}"),
        }
    }
}

/// The bad-input check: non-zero exit (not 101/134/a signal), an `error:` line holding every
/// string of `want`, nothing left in the case directory, every input unchanged.
pub fn expect_error(case: &Case, args: &[&str], want: &[&str]) -> Outcome {
    let before = snapshot(case.dir.path());
    let out = run(args);
    assert!(out.code != 0, "{args:?} succeeded:\n{}", out.stderr);
    let line = out
        .stderr
        .lines()
        .find(|l| l.starts_with("error:"))
        .unwrap_or_else(|| panic!("{args:?}: no `error:` line in\n{}", out.stderr));
    for w in want {
        assert!(line.contains(w), "{args:?}: expected {w:?} in\n{line}");
    }
    assert_unchanged(&before, &snapshot(case.dir.path()), args);
    out
}

/// [`expect_error`] for problems found before any work: under a second.
pub fn expect_fast_error(case: &Case, args: &[&str], want: &[&str]) {
    let out = expect_error(case, args, want);
    assert!(
        out.elapsed < Duration::from_secs(1),
        "{args:?} took {:?} to refuse",
        out.elapsed
    );
}

/// A small model trained once on the demo (1 epoch, width 16), shared by the embed cases.
pub fn trained_model() -> PathBuf {
    static MODEL: OnceLock<PathBuf> = OnceLock::new();
    MODEL
        .get_or_init(|| {
            let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
                .join(format!("hostile-model-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&root);
            std::fs::create_dir_all(&root).unwrap();
            let out = root.join("train.h5ad");
            let model = root.join("model");
            let o = run(&[
                "integrate",
                "-i",
                demo().to_str().unwrap(),
                "-o",
                out.to_str().unwrap(),
                "--epochs",
                "1",
                "--hidden",
                "16",
                "--latent",
                "4",
                "--n-top-genes",
                "100",
                "--quiet",
                "--save-model",
                model.to_str().unwrap(),
            ]);
            assert_eq!(o.code, 0, "{}", o.stderr);
            model
        })
        .clone()
}

/// True when `unshare -Urm` can mount a tmpfs here (user namespaces); prints why not.
pub fn can_mount() -> bool {
    let ok = Command::new("unshare")
        .args(["-Urm", "sh", "-c", "mount -t tmpfs -o size=64k tmpfs /tmp"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!("skipping: cannot mount a tmpfs in a user namespace (unshare -Urm) here");
    }
    ok
}

/// Runs the binary with a fresh tmpfs (mount `options`) at `mount_point`, in a private mount
/// namespace; returns the outcome and what the tmpfs holds afterwards.
pub fn run_on_tmpfs(mount_point: &Path, options: &str, args: &[&str]) -> (Outcome, String) {
    let script = format!(
        "mount -t tmpfs -o {options} tmpfs \"$0\" || exit 77; \"$@\"; rc=$?; \
         echo \"LEFT:$(ls -A \"$0\" | tr '\\n' ' ')\"; exit $rc"
    );
    let mut all = vec![
        "-Urm".to_string(),
        "sh".into(),
        "-c".into(),
        script,
        mount_point.display().to_string(),
        BIN.to_string(),
    ];
    all.extend(args.iter().map(|s| s.to_string()));
    let out = run_program("unshare", &all);
    assert_ne!(out.code, 77, "mounting the tmpfs failed:\n{}", out.stderr);
    let left = out
        .stderr
        .lines()
        .find_map(|l| l.strip_prefix("LEFT:"))
        .unwrap_or("?")
        .trim()
        .to_string();
    (out, left)
}
