//! `write_h5ad`: an anndata-compatible file written atomically (temp file + rename).

use std::path::Path;

use anyhow::{Context, Result, bail};
use hdf5::{File, Group, H5Type};
use serde_json::Value;

use super::attrs::set_encoding;
use super::frame::write_frame;
use super::uns::write_dict;
use crate::data::anndata::{AnnData, Column, Frame};
use crate::data::csr::Csr;
use crate::data::dense::Dense;
use crate::files::cleanup::{Pending, TempPath, commit_all, explain_write_error, temp_beside};

/// Everything scdreamer adds to the input's X, obs and var.
#[derive(Clone, Debug, Default)]
pub struct Results {
    /// cells x k matrices, e.g. ("X_scdreamer", latent).
    pub obsm: Vec<(String, Dense)>,
    /// cells x genes matrices.
    pub layers: Vec<(String, Dense)>,
    /// Extra obs columns, added after the input's (same name = replaced).
    pub obs: Vec<(String, Column)>,
    /// Unstructured entries: dicts, strings, numbers, bools, arrays; null is skipped.
    pub uns: Vec<(String, Value)>,
}

/// Install the handler that removes half-written outputs on Ctrl-C, SIGTERM and SIGHUP.
pub fn install_ctrlc_cleanup() {
    crate::files::cleanup::install_signal_cleanup();
}

/// Refuse an output that is the input file itself (same path, symlink or hard link):
/// the input is never modified.
pub fn check_output_path(output: &Path, input: &Path) -> Result<()> {
    if crate::files::outputs::same_file(output, input) {
        bail!(
            "refusing to write the output onto the input file {}: choose another --output",
            input.display()
        );
    }
    Ok(())
}

/// Check every result against the data's shape before any file is created.
fn check_results(n: usize, g: usize, r: &Results) -> Result<()> {
    // obsm matrices are cells x any width, layers cells x genes.
    let obsm = r.obsm.iter().map(|(k, m)| ("obsm", k, m, None));
    let layers = r.layers.iter().map(|(k, m)| ("layer", k, m, Some(g)));
    let mut seen = std::collections::HashSet::new();
    for (kind, k, m, genes) in obsm.chain(layers) {
        if m.rows != n || m.data.len() != m.rows * m.cols || genes.is_some_and(|g| m.cols != g) {
            let expected = match genes {
                None => format!("there are {n} cells"),
                Some(g) => format!("the data is {n} x {g}"),
            };
            bail!(
                "{kind} '{k}' is {} x {} ({} values) but {expected}",
                m.rows,
                m.cols,
                m.data.len()
            );
        }
        if !seen.insert((kind, k)) {
            bail!("{kind} '{k}' given twice");
        }
    }
    for (k, c) in &r.obs {
        if c.len() != n {
            bail!(
                "obs column '{k}' has {} values but there are {n} cells",
                c.len()
            );
        }
    }
    for k in r
        .obsm
        .iter()
        .map(|e| &e.0)
        .chain(r.layers.iter().map(|e| &e.0))
    {
        if k.is_empty() || k.contains('/') {
            bail!("invalid key {k:?}: keys must be non-empty and contain no '/'");
        }
    }
    Ok(())
}

/// X handed to the writer a block of rows at a time, for matrices too large to hold.
pub trait CsrBlocks {
    fn n_rows(&self) -> usize;
    fn n_cols(&self) -> usize;
    /// Stored values over all blocks.
    fn nnz(&self) -> usize;
    /// Calls `f` with each block of rows, in order; together they hold every row.
    fn for_each_block(&self, f: &mut dyn FnMut(&Csr) -> Result<()>) -> Result<()>;
}

impl CsrBlocks for Csr {
    fn n_rows(&self) -> usize {
        self.n_rows
    }
    fn n_cols(&self) -> usize {
        self.n_cols
    }
    fn nnz(&self) -> usize {
        Csr::nnz(self)
    }
    fn for_each_block(&self, f: &mut dyn FnMut(&Csr) -> Result<()>) -> Result<()> {
        f(self)
    }
}

/// Write `adata` (X as CSR, obs, var) plus `results` to `path`, atomically: the file
/// appears complete or not at all, and an existing file at `path` is replaced only on success.
/// Callers that read from an input file must first call [`check_output_path`] so the input
/// is never overwritten; call [`install_ctrlc_cleanup`] once at start-up so Ctrl-C removes
/// the temp file too.
pub fn write_h5ad(path: &Path, adata: &AnnData, results: &Results) -> Result<()> {
    write_h5ad_blocks(path, &adata.x, &adata.obs, &adata.var, results)
}

/// [`write_h5ad`] with X given block by block (`integrate --backed`): only one block of X is
/// in memory at a time.
pub fn write_h5ad_blocks(
    path: &Path,
    x: &dyn CsrBlocks,
    obs: &Frame,
    var: &Frame,
    results: &Results,
) -> Result<()> {
    commit_all(vec![write_h5ad_pending(path, x, obs, var, results)?])
}

/// [`write_h5ad_blocks`] up to the final rename, which [`commit_all`] does together with the
/// run's other outputs.
pub fn write_h5ad_pending(
    path: &Path,
    x: &dyn CsrBlocks,
    obs: &Frame,
    var: &Frame,
    results: &Results,
) -> Result<Pending> {
    if obs.len() != x.n_rows() || var.len() != x.n_cols() {
        bail!(
            "X is {} x {} but there are {} cells and {} genes",
            x.n_rows(),
            x.n_cols(),
            obs.len(),
            var.len()
        );
    }
    check_results(x.n_rows(), x.n_cols(), results)?;
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if !dir.is_dir() {
        bail!("output directory {} does not exist", dir.display());
    }
    let tmp = TempPath::new(temp_beside(path)?);
    hdf5::silence_errors(true);
    let written = (|| -> Result<()> {
        let file = File::create(&tmp.path)
            .with_context(|| format!("cannot create {}", tmp.path.display()))?;
        write_all(&file, x, obs, var, results)
            .with_context(|| format!("writing {}", path.display()))?;
        file.flush()?;
        file.close()
            .with_context(|| format!("closing {}", tmp.path.display()))?;
        Ok(())
    })();
    written.map_err(|e| explain_write_error(e, path))?;
    Ok(Pending::new(tmp, path.to_path_buf()))
}

fn dict_group(root: &Group, name: &str) -> Result<Group> {
    let g = root.create_group(name)?;
    set_encoding(&g, "dict", "0.1.0")?;
    Ok(g)
}

fn write_all(file: &File, x: &dyn CsrBlocks, obs: &Frame, var: &Frame, r: &Results) -> Result<()> {
    set_encoding(file, "anndata", "0.1.0")?;
    write_csr(file, "X", x).context("X")?;
    let layers = dict_group(file, "layers")?;
    for (k, m) in &r.layers {
        write_dense(&layers, k, m).with_context(|| format!("layers/{k}"))?;
    }
    write_frame(file, "obs", obs, &r.obs)?;
    let obsm = dict_group(file, "obsm")?;
    for (k, m) in &r.obsm {
        write_dense(&obsm, k, m).with_context(|| format!("obsm/{k}"))?;
    }
    dict_group(file, "obsp")?;
    let uns = dict_group(file, "uns")?;
    let entries: Vec<(String, &Value)> = r.uns.iter().map(|(k, v)| (k.clone(), v)).collect();
    write_dict(&uns, &entries)?;
    write_frame(file, "var", var, &[])?;
    dict_group(file, "varm")?;
    dict_group(file, "varp")?;
    Ok(())
}

/// CSR group as anndata writes it: float32 data, int32 indices/indptr when they fit (int64
/// otherwise), written block by block.
fn write_csr(root: &Group, name: &str, m: &dyn CsrBlocks) -> Result<()> {
    let g = root.create_group(name)?;
    set_encoding(&g, "csr_matrix", "0.1.0")?;
    let (n, nnz) = (m.n_rows(), m.nnz());
    let shape = [n as i64, m.n_cols() as i64];
    g.new_attr_builder().with_data(&shape[..]).create("shape")?;
    if nnz <= i32::MAX as usize && m.n_cols() <= i32::MAX as usize {
        write_csr_blocks::<i32>(&g, m, |v| v as i32)
    } else {
        write_csr_blocks::<i64>(&g, m, |v| v as i64)
    }
}

/// Column indices converted to the file's integer type per write.
const INDEX_SLAB: usize = 1 << 20;

fn write_csr_blocks<I: H5Type + Copy>(
    g: &Group,
    m: &dyn CsrBlocks,
    int: impl Fn(u64) -> I,
) -> Result<()> {
    let (n, nnz) = (m.n_rows(), m.nnz());
    let data = g.new_dataset::<f32>().shape(nnz).create("data")?;
    let indices = g.new_dataset::<I>().shape(nnz).create("indices")?;
    let indptr = g.new_dataset::<I>().shape(n + 1).create("indptr")?;
    indptr.write_slice(&[int(0)], 0..1)?;
    let (mut row, mut at) = (0usize, 0usize);
    m.for_each_block(&mut |b: &Csr| {
        let k = b.nnz();
        if row + b.n_rows > n || at + k > nnz {
            bail!("X blocks hold more than the {n} rows and {nnz} values announced (at row {row})");
        }
        if k > 0 {
            data.write_slice(&b.data, at..at + k)?;
            // Converted a slab at a time: a whole-matrix index copy would cost 4 bytes per
            // stored value (0.8 GB at 1M cells x 2,000 genes, 10% dense) at the end of a run.
            let mut idx: Vec<I> = Vec::with_capacity(k.min(INDEX_SLAB));
            for (s, slab) in b.indices.chunks(INDEX_SLAB).enumerate() {
                idx.clear();
                idx.extend(slab.iter().map(|&j| int(j as u64)));
                let start = at + s * INDEX_SLAB;
                indices.write_slice(&idx, start..start + slab.len())?;
            }
        }
        if b.n_rows > 0 {
            let ptr: Vec<I> = b.indptr[1..].iter().map(|&p| int(p + at as u64)).collect();
            indptr.write_slice(&ptr, row + 1..row + 1 + b.n_rows)?;
        }
        row += b.n_rows;
        at += k;
        Ok(())
    })?;
    if row != n || at != nnz {
        bail!("X blocks held {row} rows and {at} values, expected {n} and {nnz}");
    }
    Ok(())
}

/// Dense float32 2-D array.
fn write_dense(g: &Group, name: &str, m: &Dense) -> Result<()> {
    let ds = g
        .new_dataset::<f32>()
        .shape((m.rows, m.cols))
        .create(name)?;
    if !m.data.is_empty() {
        ds.write_raw(&m.data)?;
    }
    set_encoding(&ds, "array", "0.2.0")
}
