//! `read_h5ad`: open, locate X or a layer, read obs/var, check shapes and names, read X.

use std::collections::HashSet;
use std::path::Path;

use anyhow::{Context, Result, bail};
use hdf5::File;

use super::frame::read_frame;
use super::matrix::{Matrix, ValueCheck, locate, read_matrix};
use crate::data::anndata::{AnnData, Frame};

/// How to read the counts.
#[derive(Clone, Debug, Default)]
pub struct ReadOptions {
    /// Read `layers/NAME` instead of X.
    pub layer: Option<String>,
    /// Accept non-integer values (they are refused by default: the likelihood is for counts).
    pub allow_non_integer: bool,
    /// Draw a progress bar on stderr for large matrices.
    pub progress: bool,
}

/// Open an HDF5 file for reading, turning HDF5's messages into one clear error.
pub fn open_h5(path: &Path) -> Result<File> {
    let shown = path.display();
    match std::fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            bail!("cannot read {shown}: no such file")
        }
        Err(e) => bail!("cannot read {shown}: {e}"),
        Ok(m) if m.is_dir() => bail!("cannot read {shown}: it is a directory, not an .h5ad file"),
        Ok(_) => {}
    }
    hdf5::silence_errors(true);
    // No HDF5 file locking: we only read, and a lock held by another handle (a notebook that
    // has the file open, or a writer in the same process) would otherwise refuse the read with
    // EAGAIN.
    let mut builder = File::with_options();
    builder.fapl().file_locking(false);
    builder
        .open(path)
        .map_err(|e| anyhow::anyhow!("cannot read {shown}: not a valid HDF5/h5ad file ({e})"))
}

/// Names of the layers stored in the file, for error messages and `inspect`.
pub fn layer_names(file: &File) -> Vec<String> {
    file.group("layers")
        .and_then(|g| g.member_names())
        .unwrap_or_default()
}

/// Read an .h5ad file: counts from X (or `opts.layer`) as CSR, plus obs and var.
///
/// Every value is checked (finite, non-negative, integer unless `allow_non_integer`),
/// shapes must agree and cell names must be unique. X is never densified.
pub fn read_h5ad(path: &Path, opts: &ReadOptions) -> Result<AnnData> {
    let file = open_h5(path)?;
    read_opened(&file, opts).with_context(|| format!("cannot read {}", path.display()))
}

/// Locates the counts (X or `opts.layer`) and reads obs and var, checking shapes and cell names;
/// the values are not read. Returns (the matrix's path in the file, the matrix, obs, var).
pub(super) fn open_parts(
    file: &File,
    opts: &ReadOptions,
) -> Result<(String, Matrix, Frame, Frame)> {
    let what = match &opts.layer {
        Some(name) => {
            let path = format!("layers/{name}");
            if !file.link_exists("layers") || !file.group("layers")?.link_exists(name) {
                let have = layer_names(file);
                bail!(
                    "layer '{name}' not found; layers in the file: {}",
                    if have.is_empty() {
                        "(none)".to_string()
                    } else {
                        have.join(", ")
                    }
                );
            }
            path
        }
        None => {
            if !file.link_exists("X") {
                let have = layer_names(file);
                bail!(
                    "no X matrix in the file{}",
                    if have.is_empty() {
                        String::new()
                    } else {
                        format!("; choose a layer with --layer ({})", have.join(", "))
                    }
                );
            }
            "X".to_string()
        }
    };
    let matrix = locate(file, &what)?;
    let obs = read_frame(file, "obs").context("reading obs")?;
    let mut var = read_frame(file, "var").context("reading var")?;
    let repeated = crate::data::names::make_unique(&mut var.index);
    if !repeated.is_empty() {
        eprintln!(
            "warning: {}",
            crate::data::names::repeated_warning(&repeated, "var_names")
        );
        var.repeated_names = repeated;
    }
    if obs.len() != matrix.n_rows {
        bail!(
            "{what} has {} rows but obs has {} cells",
            matrix.n_rows,
            obs.len()
        );
    }
    if var.len() != matrix.n_cols {
        bail!(
            "{what} has {} columns but var has {} genes",
            matrix.n_cols,
            var.len()
        );
    }
    check_unique_cells(&obs.index)?;
    Ok((what, matrix, obs, var))
}

fn read_opened(file: &File, opts: &ReadOptions) -> Result<AnnData> {
    let (what, matrix, obs, var) = open_parts(file, opts)?;
    let check = ValueCheck {
        what: &what,
        cells: &obs.index,
        genes: &var.index,
        allow_non_integer: opts.allow_non_integer,
    };
    let x = read_matrix(&matrix, &check, opts.progress)?;
    Ok(AnnData {
        x,
        obs,
        var,
        x_encoding: matrix.encoding,
        x_dtype: matrix.dtype,
    })
}

/// Cell names are used as keys in outputs and joins: a duplicate is an error.
fn check_unique_cells(names: &[String]) -> Result<()> {
    let mut seen = HashSet::with_capacity(names.len());
    for (i, n) in names.iter().enumerate() {
        if !seen.insert(n.as_str()) {
            bail!(
                "duplicate cell name '{n}' (row {i}); make names unique first, e.g. \
                 adata.obs_names_make_unique() in anndata"
            );
        }
    }
    Ok(())
}
