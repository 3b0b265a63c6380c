//! The bundled demo dataset (cellbench_3cl_10xsub: 1,345 cells x 824 genes, 3 platforms,
//! 3 cell lines), embedded in the binary so that `scdreamer inspect` / `integrate` with no
//! input work anywhere.

use std::path::PathBuf;

use anyhow::{Context, Result};

/// Name shown to users.
pub const DEMO_NAME: &str = "cellbench_3cl_10xsub";

/// The demo file's bytes.
pub static DEMO_H5AD: &[u8] = include_bytes!("../../data/demo.h5ad");

/// Path of the demo file, written once to the temp dir
/// (`scdreamer-demo-<version>.h5ad`, atomically, re-written if its content differs).
pub fn demo_path() -> Result<PathBuf> {
    let dir = std::env::temp_dir();
    let path = dir.join(format!("scdreamer-demo-{}.h5ad", crate::VERSION));
    if std::fs::read(&path).is_ok_and(|b| b == DEMO_H5AD) {
        return Ok(path);
    }
    let tmp = dir.join(format!(
        ".scdreamer-demo-{}.tmp-{}",
        crate::VERSION,
        std::process::id()
    ));
    let written = std::fs::write(&tmp, DEMO_H5AD).and_then(|_| std::fs::rename(&tmp, &path));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e).with_context(|| {
            format!(
                "cannot write the bundled demo dataset to {}",
                path.display()
            )
        });
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    #[test]
    fn demo_is_written_and_reused() {
        let p = super::demo_path().unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), super::DEMO_H5AD);
        assert_eq!(super::demo_path().unwrap(), p);
        assert!(super::DEMO_H5AD.starts_with(b"\x89HDF\r\n\x1a\n"));
    }
}
