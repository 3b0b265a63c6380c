//! Reading X (or a layer) a block of rows at a time, for `integrate --backed`: the matrix is
//! never held whole. Each block comes out exactly as the same rows of [`super::read_h5ad`]'s
//! matrix (values checked, rows canonical: sorted columns, duplicates summed), optionally cut
//! down to some genes as `Csr::select` would.

use std::path::Path;

use anyhow::{Context, Result, bail};
use hdf5::{Dataset, File};

use super::matrix::{
    CHUNK, Matrix, MatrixSource, ValueCheck, read_dense_rows, read_indptr, read_range, sparse_parts,
};
use super::read::{ReadOptions, open_h5, open_parts};
use crate::data::anndata::{Frame, XEncoding};
use crate::data::csr::Csr;

enum Layout {
    Csr {
        data: Dataset,
        indices: Dataset,
        indptr: Vec<u64>,
    },
    Dense(Dataset),
}

/// An open h5ad whose counts are read by rows on demand. obs and var are in memory.
pub struct RowReader {
    /// Keeps the file open while the datasets are read.
    _file: File,
    path: String,
    what: String,
    layout: Layout,
    n_rows: usize,
    n_cols: usize,
    allow_non_integer: bool,
    pub obs: Frame,
    pub var: Frame,
    pub x_encoding: XEncoding,
    pub x_dtype: String,
}

/// A gene subset to read: `position[j]` is the new column of file gene j, `u32::MAX` to drop it.
pub struct GeneMap {
    position: Vec<u32>,
    n_selected: usize,
}

impl GeneMap {
    /// The map of `genes` (file gene indices, in their new order) among `n_genes`.
    pub fn new(genes: &[usize], n_genes: usize) -> Result<GeneMap> {
        let mut position = vec![u32::MAX; n_genes];
        for (k, &j) in genes.iter().enumerate() {
            if j >= n_genes {
                bail!("gene index {j} is outside the file's {n_genes} genes");
            }
            position[j] = k as u32;
        }
        Ok(GeneMap {
            position,
            n_selected: genes.len(),
        })
    }
}

impl RowReader {
    /// Opens `path` and reads obs and var; checks shapes and cell names. CSC matrices are
    /// refused: their rows are scattered over the whole file.
    pub fn open(path: &Path, opts: &ReadOptions) -> Result<RowReader> {
        let file = open_h5(path)?;
        let shown = path.display().to_string();
        let (what, matrix, obs, var) =
            open_parts(&file, opts).with_context(|| format!("cannot read {shown}"))?;
        let Matrix {
            source,
            n_rows,
            n_cols,
            encoding,
            dtype,
        } = matrix;
        let layout = match source {
            MatrixSource::Sparse { group, csr: true } => {
                let (data, indices) = sparse_parts(&group, &what)?;
                let indptr = read_indptr(&group, n_rows, &what, data.size())
                    .with_context(|| format!("cannot read {shown}"))?;
                Layout::Csr {
                    data,
                    indices,
                    indptr,
                }
            }
            MatrixSource::Sparse { csr: false, .. } => bail!(
                "{shown}: {what} is stored as CSC (by gene), which cannot be read by cells; \
                 --backed needs CSR or dense storage. Convert it once, e.g. in Python: \
                 adata.X = adata.X.tocsr(); adata.write_h5ad(...), or run without --backed"
            ),
            MatrixSource::Dense(ds) => Layout::Dense(ds),
        };
        Ok(RowReader {
            _file: file,
            path: shown,
            what,
            layout,
            n_rows,
            n_cols,
            allow_non_integer: opts.allow_non_integer,
            obs,
            var,
            x_encoding: encoding,
            x_dtype: dtype,
        })
    }

    pub fn n_rows(&self) -> usize {
        self.n_rows
    }

    /// The file, for messages.
    pub fn path(&self) -> &str {
        &self.path
    }

    pub fn n_cols(&self) -> usize {
        self.n_cols
    }

    /// Stored values of rows `r0..r1` (for a dense matrix, every value).
    pub fn stored_values(&self, r0: usize, r1: usize) -> u64 {
        match &self.layout {
            Layout::Csr { indptr, .. } => indptr[r1] - indptr[r0],
            Layout::Dense(_) => ((r1 - r0) * self.n_cols) as u64,
        }
    }

    /// Whether row `r` has stored values (a row without any has no counts).
    pub fn has_stored_values(&self, r: usize) -> bool {
        self.stored_values(r, r + 1) > 0
    }

    /// Rows `r0..r1`, every gene, each value checked (finite, non-negative, integer unless
    /// allowed).
    pub fn read_rows(&self, r0: usize, r1: usize) -> Result<Csr> {
        self.read(r0, r1, None)
            .with_context(|| format!("cannot read {}", self.path))
    }

    /// Rows `r0..r1` restricted to the genes of `genes`, in their order.
    pub fn read_rows_genes(&self, r0: usize, r1: usize, genes: &GeneMap) -> Result<Csr> {
        self.read(r0, r1, Some(genes))
            .with_context(|| format!("cannot read {}", self.path))
    }

    fn read(&self, r0: usize, r1: usize, genes: Option<&GeneMap>) -> Result<Csr> {
        if r0 > r1 || r1 > self.n_rows {
            bail!("rows {r0}..{r1} are outside the {} cells", self.n_rows);
        }
        let check = ValueCheck {
            what: &self.what,
            cells: &self.obs.index,
            genes: &self.var.index,
            allow_non_integer: self.allow_non_integer,
        };
        let mut out = RowBuilder::new(
            r1 - r0,
            genes.map_or(self.n_cols, |g| g.n_selected),
            self.stored_values(r0, r1) as usize,
            genes,
        );
        match &self.layout {
            Layout::Csr {
                data,
                indices,
                indptr,
            } => {
                let mut r = r0;
                while r < r1 {
                    // About CHUNK stored values per HDF5 call, at least one row.
                    let mut e = r + 1;
                    while e < r1 && (indptr[e + 1] - indptr[r]) as usize <= CHUNK {
                        e += 1;
                    }
                    let (a, b) = (indptr[r] as usize, indptr[e] as usize);
                    let vals = read_range::<f64>(data, a, b)?;
                    let idx = read_range::<i64>(indices, a, b)?;
                    for row in r..e {
                        let (s, t) = (indptr[row] as usize - a, indptr[row + 1] as usize - a);
                        for k in s..t {
                            let j = idx[k];
                            if j < 0 || j as usize >= self.n_cols {
                                bail!(
                                    "{}/indices has column {j} in row {row}, outside 0..{}",
                                    self.what,
                                    self.n_cols
                                );
                            }
                            out.push(&check, row, j as usize, vals[k])?;
                        }
                        out.end_row();
                    }
                    r = e;
                }
            }
            Layout::Dense(ds) => {
                let g = self.n_cols;
                let rows_per_block = (CHUNK / g.max(1)).max(1);
                let mut r = r0;
                while r < r1 {
                    let e = (r + rows_per_block).min(r1);
                    let block = read_dense_rows(ds, r, e, g)?;
                    for row in r..e {
                        for (j, &v) in block[(row - r) * g..(row - r + 1) * g].iter().enumerate() {
                            if v != 0.0 || v.is_nan() {
                                out.push(&check, row, j, v)?;
                            }
                        }
                        out.end_row();
                    }
                    r = e;
                }
            }
        }
        Ok(out.finish())
    }
}

/// Builds the CSR of a block row by row, canonicalising each row the way the whole-matrix
/// reader does (stable sort by file column, duplicates summed in stored order), then mapping
/// to the selected genes and sorting by the new column as `Csr::select` does.
struct RowBuilder<'a> {
    genes: Option<&'a GeneMap>,
    csr: Csr,
    row: Vec<(u32, f32)>,
}

impl<'a> RowBuilder<'a> {
    fn new(n_rows: usize, n_cols: usize, capacity: usize, genes: Option<&'a GeneMap>) -> Self {
        let mut indptr = Vec::with_capacity(n_rows + 1);
        indptr.push(0u64);
        // A gene subset keeps about its share of the values (reserving that avoids the
        // doubling growth of a Vec, up to twice the block's memory).
        let capacity = match genes {
            Some(g) => {
                (capacity as u128 * g.n_selected as u128 / g.position.len().max(1) as u128) as usize
            }
            None => capacity,
        };
        RowBuilder {
            genes,
            csr: Csr {
                n_rows,
                n_cols,
                indptr,
                indices: Vec::with_capacity(capacity),
                data: Vec::with_capacity(capacity),
            },
            row: Vec::new(),
        }
    }

    #[inline]
    fn push(&mut self, check: &ValueCheck, row: usize, j: usize, v: f64) -> Result<()> {
        match self.genes {
            // Full rows are what the setup pass reads: every value is checked there.
            None => check.check(row, j, v)?,
            Some(g) if g.position[j] == u32::MAX => return Ok(()),
            Some(_) => {}
        }
        self.row.push((j as u32, v as f32));
        Ok(())
    }

    fn end_row(&mut self) {
        let row = &mut self.row;
        if !row.windows(2).all(|w| w[0].0 < w[1].0) {
            row.sort_by_key(|e| e.0);
            let mut merged: Vec<(u32, f32)> = Vec::with_capacity(row.len());
            for &(j, v) in row.iter() {
                match merged.last_mut() {
                    Some(last) if last.0 == j => last.1 += v,
                    _ => merged.push((j, v)),
                }
            }
            *row = merged;
        }
        if let Some(g) = self.genes {
            for e in row.iter_mut() {
                e.0 = g.position[e.0 as usize];
            }
            row.sort_unstable_by_key(|e| e.0);
        }
        for &(j, v) in row.iter() {
            self.csr.indices.push(j);
            self.csr.data.push(v);
        }
        self.csr.indptr.push(self.csr.indices.len() as u64);
        row.clear();
    }

    fn finish(self) -> Csr {
        self.csr
    }
}
