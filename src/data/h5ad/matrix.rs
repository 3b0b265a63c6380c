//! Reading X (or a layer) into CSR: CSR and CSC groups and dense datasets, chunk by chunk,
//! checking every stored value on the way. Memory stays O(nnz): the dense matrix and the
//! CSC copy never exist in memory, only the CSR result plus one chunk.

use anyhow::{Context, Result, bail};
use hdf5::{Dataset, Group};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::attrs::{dtype_name, int_array_attr, is_numeric, str_attr, type_of};
use crate::data::anndata::XEncoding;
use crate::data::checked::assemble;
pub use crate::data::checked::{ValueCheck, canonicalize};
use crate::data::csr::Csr;
use crate::files::memory::{try_filled, try_with_capacity};

/// Stored values read per HDF5 call.
pub(super) const CHUNK: usize = 1 << 20;
/// Matrices with more stored values than this get a progress bar.
const PROGRESS_MIN: usize = 5_000_000;

/// Where the matrix lives in the file and how it is stored.
pub enum MatrixSource {
    /// CSR (`csr == true`) or CSC group with data / indices / indptr.
    Sparse {
        group: Group,
        csr: bool,
    },
    Dense(Dataset),
}

/// A located matrix: storage, shape (cells x genes) and the element type name.
pub struct Matrix {
    pub source: MatrixSource,
    pub n_rows: usize,
    pub n_cols: usize,
    pub encoding: XEncoding,
    pub dtype: String,
}

/// Find how the matrix at `path` is stored (without reading its values).
pub fn locate(root: &Group, path: &str) -> Result<Matrix> {
    if let Ok(ds) = root.dataset(path) {
        let shape = ds.shape();
        if shape.len() != 2 {
            bail!("{path} is a dataset of shape {shape:?}, expected a 2-D matrix");
        }
        let td = type_of(&ds)?;
        if !is_numeric(&td) {
            bail!("{path} holds {} values, expected numbers", dtype_name(&td));
        }
        return Ok(Matrix {
            n_rows: shape[0],
            n_cols: shape[1],
            encoding: XEncoding::Dense,
            dtype: dtype_name(&td),
            source: MatrixSource::Dense(ds),
        });
    }
    let group = root.group(path)?;
    // anndata >= 0.8 writes encoding-type; anndata 0.7 wrote h5sparse_format.
    let enc = match str_attr(&group, "encoding-type")? {
        Some(e) => e,
        None => str_attr(&group, "h5sparse_format")?
            .map(|f| format!("{f}_matrix"))
            .unwrap_or_default(),
    };
    let csr = match enc.as_str() {
        "csr_matrix" => true,
        "csc_matrix" => false,
        "" => bail!("{path} is a group without encoding-type: not a sparse matrix"),
        other => {
            bail!("{path} has encoding '{other}', expected csr_matrix, csc_matrix or a dense array")
        }
    };
    let shape = match int_array_attr(&group, "shape")? {
        Some(s) => s,
        None => int_array_attr(&group, "h5sparse_shape")?
            .with_context(|| format!("{path} has no 'shape' attribute"))?,
    };
    if shape.len() != 2 || shape.iter().any(|&d| d < 0) {
        bail!("{path} has an invalid shape {shape:?}");
    }
    for key in ["data", "indices", "indptr"] {
        if !group.link_exists(key) {
            bail!("{path} is a sparse matrix without '{key}'");
        }
    }
    let td = type_of(&*group.dataset("data")?)?;
    if !is_numeric(&td) {
        bail!(
            "{path}/data holds {} values, expected numbers",
            dtype_name(&td)
        );
    }
    Ok(Matrix {
        n_rows: shape[0] as usize,
        n_cols: shape[1] as usize,
        encoding: if csr { XEncoding::Csr } else { XEncoding::Csc },
        dtype: dtype_name(&td),
        source: MatrixSource::Sparse { group, csr },
    })
}

pub(super) fn progress_bar(total: usize, show: bool, label: &str) -> ProgressBar {
    if !show || total <= PROGRESS_MIN {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template(
        "{msg} [{bar:40}] {percent}% ({human_pos}/{human_len} values, {eta} left)",
    ) {
        pb.set_style(style.progress_chars("=> "));
    }
    pb.set_message(label.to_string());
    pb
}

/// Read a slice of a 1-D dataset converted to `T` (HDF5 converts any numeric type).
pub(super) fn read_range<T: hdf5::H5Type + Clone>(
    ds: &Dataset,
    a: usize,
    b: usize,
) -> Result<Vec<T>> {
    if a == b {
        return Ok(Vec::new());
    }
    Ok(ds.read_slice_1d::<T, _>(a..b)?.to_vec())
}

/// indptr with `n + 1` entries, starting at 0, non-decreasing, ending within `nnz_max`.
pub(super) fn read_indptr(group: &Group, n: usize, what: &str, nnz_max: usize) -> Result<Vec<u64>> {
    let ds = group.dataset("indptr")?;
    if ds.size() != n + 1 {
        bail!(
            "{what}/indptr has {} entries, expected {} for the shape",
            ds.size(),
            n + 1
        );
    }
    let raw = ds.read_raw::<i64>()?;
    if raw[0] != 0 {
        bail!("{what}/indptr starts at {}, expected 0", raw[0]);
    }
    if let Some(k) = raw.windows(2).position(|w| w[1] < w[0]) {
        bail!("{what}/indptr decreases at position {}", k + 1);
    }
    let last = raw[n] as usize;
    if last > nnz_max {
        bail!("{what}/indptr ends at {last} but only {nnz_max} values are stored");
    }
    Ok(raw.into_iter().map(|v| v as u64).collect())
}

/// Read the whole matrix as CSR f32, checking values with `check`.
pub fn read_matrix(m: &Matrix, check: &ValueCheck, progress: bool) -> Result<Csr> {
    let mut csr = match &m.source {
        MatrixSource::Sparse { group, csr: true } => read_csr(group, m, check, progress)?,
        MatrixSource::Sparse { group, csr: false } => read_csc(group, m, check, progress)?,
        MatrixSource::Dense(ds) => read_dense(ds, m, check, progress)?,
    };
    canonicalize(&mut csr);
    // Repeated (cell, gene) entries are summed: each was checked, their sum may not be.
    if let Some(k) = csr.data.iter().position(|v| !v.is_finite()) {
        let row = csr.indptr.partition_point(|&p| p as usize <= k) - 1;
        bail!(
            "{} repeats an entry of cell '{}' (row {row}), gene {} whose sum overflows float32: \
             these are not counts",
            check.what,
            check.cells.get(row).map_or("?", |s| s.as_str()),
            csr.indices[k]
        );
    }
    Ok(csr)
}

pub(super) fn sparse_parts(group: &Group, what: &str) -> Result<(Dataset, Dataset)> {
    let data = group.dataset("data")?;
    let indices = group.dataset("indices")?;
    if data.size() != indices.size() {
        bail!(
            "{what}: data has {} values but indices has {}",
            data.size(),
            indices.size()
        );
    }
    Ok((data, indices))
}

/// Rows `r0..r1` with about CHUNK stored values, as consecutive blocks over `indptr`.
fn blocks(indptr: &[u64]) -> impl Iterator<Item = (usize, usize)> + '_ {
    let n = indptr.len() - 1;
    let mut r0 = 0;
    std::iter::from_fn(move || {
        if r0 >= n {
            return None;
        }
        let mut r1 = r0 + 1;
        while r1 < n && (indptr[r1 + 1] - indptr[r0]) as usize <= CHUNK {
            r1 += 1;
        }
        let out = (r0, r1);
        r0 = r1;
        Some(out)
    })
}

/// Every value stored in `data` and `indices` (a compressed matrix whose major rows or columns
/// start at `ptr`), read about CHUNK values at a time and handed to `f(major, stored index,
/// value)` in stored order.
fn for_each_stored(
    (data, indices): (&Dataset, &Dataset),
    ptr: &[u64],
    pb: &ProgressBar,
    mut f: impl FnMut(usize, i64, f64) -> Result<()>,
) -> Result<()> {
    for (m0, m1) in blocks(ptr) {
        let (a, b) = (ptr[m0] as usize, ptr[m1] as usize);
        let vals = read_range::<f64>(data, a, b)?;
        let idx = read_range::<i64>(indices, a, b)?;
        for major in m0..m1 {
            for k in ptr[major] as usize - a..ptr[major + 1] as usize - a {
                f(major, idx[k], vals[k])?;
            }
        }
        pb.inc((b - a) as u64);
    }
    Ok(())
}

fn read_csr(group: &Group, m: &Matrix, check: &ValueCheck, progress: bool) -> Result<Csr> {
    let what = check.what;
    let (data, indices) = sparse_parts(group, what)?;
    let indptr = read_indptr(group, m.n_rows, what, data.size())?;
    let nnz = indptr[m.n_rows] as usize;
    let pb = progress_bar(nnz, progress, &format!("reading {what}"));
    let mut out_idx = Vec::with_capacity(nnz);
    let mut out_val = Vec::with_capacity(nnz);
    for_each_stored((&data, &indices), &indptr, &pb, |r, j, v| {
        if j < 0 || j as usize >= m.n_cols {
            bail!(
                "{what}/indices has column {j} in row {r}, outside 0..{}",
                m.n_cols
            );
        }
        check.check(r, j as usize, v)?;
        out_idx.push(j as u32);
        out_val.push(v as f32);
        Ok(())
    })?;
    pb.finish_and_clear();
    Ok(assemble((m.n_rows, m.n_cols), indptr, out_idx, out_val))
}

/// CSC -> CSR in two passes over the file: count values per row, then scatter them.
/// Columns are visited in order, so every row comes out sorted by column.
fn read_csc(group: &Group, m: &Matrix, check: &ValueCheck, progress: bool) -> Result<Csr> {
    let what = check.what;
    let (data, indices) = sparse_parts(group, what)?;
    let col_ptr = read_indptr(group, m.n_cols, what, data.size())?;
    let nnz = col_ptr[m.n_cols] as usize;
    let pb = progress_bar(2 * nnz, progress, &format!("reading {what} (CSC)"));
    // n_rows comes from the group's shape attribute, not from stored data: check it first.
    let mut counts = try_filled(
        m.n_rows + 1,
        0u64,
        &format!("{what}'s shape attribute ({} rows)", m.n_rows),
    )?;
    let mut a = 0;
    while a < nnz {
        let b = (a + CHUNK).min(nnz);
        for i in read_range::<i64>(&indices, a, b)? {
            if i < 0 || i as usize >= m.n_rows {
                bail!("{what}/indices has row {i}, outside 0..{}", m.n_rows);
            }
            counts[i as usize + 1] += 1;
        }
        pb.inc((b - a) as u64);
        a = b;
    }
    for r in 0..m.n_rows {
        counts[r + 1] += counts[r];
    }
    let indptr = counts;
    let mut next: Vec<u64> = indptr[..m.n_rows].to_vec();
    let mut out_idx = vec![0u32; nnz];
    let mut out_val = vec![0f32; nnz];
    for_each_stored((&data, &indices), &col_ptr, &pb, |c, i, v| {
        let i = i as usize; // range-checked in the first pass
        check.check(i, c, v)?;
        let p = next[i] as usize;
        out_idx[p] = c as u32;
        out_val[p] = v as f32;
        next[i] += 1;
        Ok(())
    })?;
    pb.finish_and_clear();
    Ok(assemble((m.n_rows, m.n_cols), indptr, out_idx, out_val))
}

/// Rows `r0..r1` of a dense 2-D dataset with `g` columns, row-major as f64.
pub(super) fn read_dense_rows(ds: &Dataset, r0: usize, r1: usize, g: usize) -> Result<Vec<f64>> {
    if g == 0 {
        return Ok(Vec::new());
    }
    Ok(ds
        .read_slice_2d::<f64, _>((r0..r1, ..))?
        .iter()
        .copied()
        .collect())
}

/// Dense 2-D dataset -> CSR, a block of rows at a time.
fn read_dense(ds: &Dataset, m: &Matrix, check: &ValueCheck, progress: bool) -> Result<Csr> {
    let (n, g) = (m.n_rows, m.n_cols);
    let pb = progress_bar(
        n.saturating_mul(g),
        progress,
        &format!("reading {} (dense)", check.what),
    );
    let rows_per_block = (CHUNK / g.max(1)).max(1);
    crate::files::memory::check_fits(
        rows_per_block as u128 * g as u128 * 8,
        &format!("a row of {} ({g} genes)", check.what),
    )?;
    let mut indptr = try_with_capacity(n + 1, &format!("{}'s shape ({n} x {g})", check.what))?;
    indptr.push(0u64);
    let mut out_idx = Vec::new();
    let mut out_val = Vec::new();
    let mut r0 = 0;
    while r0 < n {
        let r1 = (r0 + rows_per_block).min(n);
        let block = read_dense_rows(ds, r0, r1, g)?;
        for r in r0..r1 {
            let row = &block[(r - r0) * g..(r - r0 + 1) * g];
            for (j, &v) in row.iter().enumerate() {
                if v != 0.0 || v.is_nan() {
                    check.check(r, j, v)?;
                    out_idx.push(j as u32);
                    out_val.push(v as f32);
                }
            }
            indptr.push(out_idx.len() as u64);
        }
        pb.inc(((r1 - r0) * g) as u64);
        r0 = r1;
    }
    pb.finish_and_clear();
    Ok(assemble((n, g), indptr, out_idx, out_val))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonicalize_sorts_and_merges() {
        let mut m = Csr {
            n_rows: 2,
            n_cols: 4,
            indptr: vec![0, 3, 5],
            indices: vec![3, 1, 3, 2, 0],
            data: vec![1.0, 2.0, 4.0, 5.0, 6.0],
        };
        canonicalize(&mut m);
        assert_eq!(m.indptr, vec![0, 2, 4]);
        assert_eq!(m.indices, vec![1, 3, 0, 2]);
        assert_eq!(m.data, vec![2.0, 5.0, 6.0, 5.0]);
    }

    #[test]
    fn blocks_cover_all_rows() {
        let indptr = vec![
            0u64,
            0,
            (CHUNK + 5) as u64,
            (CHUNK + 6) as u64,
            (CHUNK + 6) as u64,
        ];
        let b: Vec<_> = blocks(&indptr).collect();
        assert_eq!(b.first().map(|x| x.0), Some(0));
        assert_eq!(b.last().map(|x| x.1), Some(4));
        assert!(b.windows(2).all(|w| w[0].1 == w[1].0));
    }
}
