//! Counts as they arrive, checked on the way into the one in-memory representation (CSR f32):
//! the value check and canonical form shared by the h5ad reader and the in-memory converters
//! below (scipy CSR/CSC components and dense arrays handed over by the Python module), so a
//! matrix is refused with the same message whichever way it came in.

use anyhow::{Result, bail};

use crate::data::csr::Csr;

/// Checks each stored value: finite, non-negative, integer unless allowed. Errors name
/// the cell and gene, so it holds the obs and var names.
pub struct ValueCheck<'a> {
    pub what: &'a str,
    pub cells: &'a [String],
    pub genes: &'a [String],
    pub allow_non_integer: bool,
}

impl ValueCheck<'_> {
    #[inline]
    pub fn check(&self, row: usize, col: usize, v: f64) -> Result<()> {
        if (0.0..=F32_MAX).contains(&v) && (self.allow_non_integer || v.fract() == 0.0) {
            return Ok(());
        }
        let at = format!(
            "cell '{}' (row {row}), gene '{}' (column {col})",
            self.cells.get(row).map_or("?", |s| s.as_str()),
            self.genes.get(col).map_or("?", |s| s.as_str())
        );
        let what = self.what;
        let v_shown = readable(v);
        if !v.is_finite() {
            bail!("{what} has a non-finite value {v_shown} at {at}: scdreamer needs raw counts");
        }
        if v < 0.0 {
            bail!("{what} has a negative value {v_shown} at {at}: scdreamer needs raw counts");
        }
        if v > F32_MAX {
            bail!(
                "{what} has a value {v_shown} at {at}, above the float32 maximum {:e} that \
                 scdreamer computes in: these are not counts",
                f32::MAX
            );
        }
        let v = v_shown;
        bail!(
            "{what} has a non-integer value {v} at {at}: scdreamer needs raw integer counts \
             (this looks normalised or log-transformed); pass a layer of raw counts with \
             --layer NAME, or accept it with --allow-non-integer"
        )
    }
}

/// The largest value a count may have: it is held as float32.
const F32_MAX: f64 = f32::MAX as f64;

/// A value as a short string: scientific notation for the very small and the very large (a
/// subnormal printed as a decimal is 330 characters).
pub fn readable(v: f64) -> String {
    if v != 0.0 && v.is_finite() && !(1e-4..1e15).contains(&v.abs()) {
        format!("{v:e}")
    } else {
        format!("{v}")
    }
}

/// Make every row strictly increasing in column: sort unsorted rows and sum duplicate
/// entries (scipy's canonical format). A no-op pass for files that are already canonical.
pub fn canonicalize(m: &mut Csr) {
    let canonical = (0..m.n_rows).all(|r| m.row(r).0.windows(2).all(|w| w[0] < w[1]));
    if canonical {
        return;
    }
    let mut indptr = Vec::with_capacity(m.n_rows + 1);
    indptr.push(0u64);
    let mut indices = Vec::with_capacity(m.nnz());
    let mut data = Vec::with_capacity(m.nnz());
    let mut tmp: Vec<(u32, f32)> = Vec::new();
    for r in 0..m.n_rows {
        let (idx, val) = m.row(r);
        tmp.clear();
        tmp.extend(idx.iter().copied().zip(val.iter().copied()));
        tmp.sort_by_key(|e| e.0);
        for &(j, v) in &tmp {
            if indices.len() as u64 > indptr[r] && *indices.last().unwrap_or(&u32::MAX) == j {
                *data.last_mut().expect("a previous entry exists") += v;
            } else {
                indices.push(j);
                data.push(v);
            }
        }
        indptr.push(indices.len() as u64);
    }
    m.indptr = indptr;
    m.indices = indices;
    m.data = data;
}

/// A stored index (scipy uses int32 or int64).
pub trait StoredIndex: Copy {
    fn to_i64(self) -> i64;
}

/// A stored value of any numeric dtype, checked as f64 (as HDF5 converts them on read).
pub trait StoredValue: Copy {
    fn to_f64(self) -> f64;
}

macro_rules! stored {
    ($tr:ident, $f:ident, $to:ty: $($t:ty),*) => {
        $(impl $tr for $t {
            #[inline]
            fn $f(self) -> $to {
                self as $to
            }
        })*
    };
}
stored!(StoredIndex, to_i64, i64: i32, i64, u32, u64);
stored!(StoredValue, to_f64, f64: f32, f64, i8, i16, i32, i64, u8, u16, u32, u64);

/// `indptr` of a compressed matrix with `n` major rows: `n + 1` entries from 0, non-decreasing,
/// ending within the stored values.
fn check_indptr<I: StoredIndex>(
    indptr: &[I],
    n: usize,
    nnz: usize,
    what: &str,
) -> Result<Vec<u64>> {
    if indptr.len() != n + 1 {
        bail!(
            "{what}: indptr has {} entries, expected {} for the shape",
            indptr.len(),
            n + 1
        );
    }
    let p: Vec<i64> = indptr.iter().map(|v| v.to_i64()).collect();
    if p[0] != 0 {
        bail!("{what}: indptr starts at {}, expected 0", p[0]);
    }
    if let Some(k) = p.windows(2).position(|w| w[1] < w[0]) {
        bail!("{what}: indptr decreases at position {}", k + 1);
    }
    if p[n] as usize > nnz {
        bail!(
            "{what}: indptr ends at {} but only {nnz} values are stored",
            p[n]
        );
    }
    Ok(p.into_iter().map(|v| v as u64).collect())
}

fn check_lengths(n_indices: usize, n_data: usize, what: &str) -> Result<()> {
    if n_indices != n_data {
        bail!("{what}: data has {n_data} values but indices has {n_indices}");
    }
    Ok(())
}

/// Which way a compressed sparse matrix is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Major {
    /// By row (cell): scipy's CSR.
    Rows,
    /// By column (gene): scipy's CSC.
    Columns,
}

/// The three arrays of a compressed sparse matrix of `shape` cells x genes, as scipy stores
/// them.
pub struct Compressed<'a, I, V> {
    pub major: Major,
    pub shape: (usize, usize),
    pub indptr: &'a [I],
    pub indices: &'a [I],
    pub data: &'a [V],
}

/// A [`Csr`] of `shape` from parts already checked.
pub(crate) fn assemble(
    shape: (usize, usize),
    indptr: Vec<u64>,
    indices: Vec<u32>,
    data: Vec<f32>,
) -> Csr {
    Csr {
        n_rows: shape.0,
        n_cols: shape.1,
        indptr,
        indices,
        data,
    }
}

/// Rows of CSR parts: indptr, column indices and values.
type Rows = (Vec<u64>, Vec<u32>, Vec<f32>);

/// Compressed components (cells x genes, CSR or CSC) to a checked, canonical [`Csr`].
pub fn csr_from_parts<I: StoredIndex, V: StoredValue>(
    parts: &Compressed<'_, I, V>,
    check: &ValueCheck,
) -> Result<Csr> {
    let (n_rows, n_cols) = parts.shape;
    let major = match parts.major {
        Major::Rows => n_rows,
        Major::Columns => n_cols,
    };
    check_lengths(parts.indices.len(), parts.data.len(), check.what)?;
    let ptr = check_indptr(parts.indptr, major, parts.data.len(), check.what)?;
    let nnz = ptr[major] as usize;
    let (indptr, indices, data) = match parts.major {
        Major::Rows => gather_rows(parts, ptr, nnz, check)?,
        Major::Columns => scatter_columns(parts, &ptr, nnz, check)?,
    };
    let mut m = assemble(parts.shape, indptr, indices, data);
    canonicalize(&mut m);
    Ok(m)
}

/// CSR: each row's values in stored order, their columns range-checked.
fn gather_rows<I: StoredIndex, V: StoredValue>(
    parts: &Compressed<'_, I, V>,
    indptr: Vec<u64>,
    nnz: usize,
    check: &ValueCheck,
) -> Result<Rows> {
    let (what, (n_rows, n_cols)) = (check.what, parts.shape);
    let mut out_idx = Vec::with_capacity(nnz);
    let mut out_val = Vec::with_capacity(nnz);
    for r in 0..n_rows {
        for k in indptr[r] as usize..indptr[r + 1] as usize {
            let j = parts.indices[k].to_i64();
            if j < 0 || j as usize >= n_cols {
                bail!("{what}: indices has column {j} in row {r}, outside 0..{n_cols}");
            }
            let v = parts.data[k].to_f64();
            check.check(r, j as usize, v)?;
            out_idx.push(j as u32);
            out_val.push(v as f32);
        }
    }
    Ok((indptr, out_idx, out_val))
}

/// CSC: count the values of each row, then scatter them column by column, so rows come out
/// sorted.
fn scatter_columns<I: StoredIndex, V: StoredValue>(
    parts: &Compressed<'_, I, V>,
    col_ptr: &[u64],
    nnz: usize,
    check: &ValueCheck,
) -> Result<Rows> {
    let (what, (n_rows, n_cols)) = (check.what, parts.shape);
    let mut counts = vec![0u64; n_rows + 1];
    for i in &parts.indices[..nnz] {
        let i = i.to_i64();
        if i < 0 || i as usize >= n_rows {
            bail!("{what}: indices has row {i}, outside 0..{n_rows}");
        }
        counts[i as usize + 1] += 1;
    }
    for r in 0..n_rows {
        counts[r + 1] += counts[r];
    }
    let mut next: Vec<u64> = counts[..n_rows].to_vec();
    let mut out_idx = vec![0u32; nnz];
    let mut out_val = vec![0f32; nnz];
    for c in 0..n_cols {
        for k in col_ptr[c] as usize..col_ptr[c + 1] as usize {
            let i = parts.indices[k].to_i64() as usize; // range-checked above
            let v = parts.data[k].to_f64();
            check.check(i, c, v)?;
            let p = next[i] as usize;
            out_idx[p] = c as u32;
            out_val[p] = v as f32;
            next[i] += 1;
        }
    }
    Ok((counts, out_idx, out_val))
}

/// A dense matrix (cells x genes, `value(row, col)`, any memory layout) to a checked [`Csr`]
/// holding its non-zeros: the dense matrix is read in place, never copied.
pub fn csr_from_dense<V: StoredValue>(
    shape: (usize, usize),
    value: impl Fn(usize, usize) -> V,
    check: &ValueCheck,
) -> Result<Csr> {
    let (n_rows, n_cols) = shape;
    let mut indptr = Vec::with_capacity(n_rows + 1);
    indptr.push(0u64);
    let mut out_idx = Vec::new();
    let mut out_val = Vec::new();
    for r in 0..n_rows {
        for j in 0..n_cols {
            let v = value(r, j).to_f64();
            if v != 0.0 || v.is_nan() {
                check.check(r, j, v)?;
                out_idx.push(j as u32);
                out_val.push(v as f32);
            }
        }
        indptr.push(out_idx.len() as u64);
    }
    Ok(assemble(shape, indptr, out_idx, out_val))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(p: &str, n: usize) -> Vec<String> {
        (0..n).map(|i| format!("{p}{i}")).collect()
    }

    /// The strict check ("X", integers only) with these cell and gene names.
    fn strict<'a>(cells: &'a [String], genes: &'a [String]) -> ValueCheck<'a> {
        ValueCheck {
            what: "X",
            cells,
            genes,
            allow_non_integer: false,
        }
    }

    fn parts<'a, I, V>(
        major: Major,
        shape: (usize, usize),
        p: &'a [I],
        i: &'a [I],
        d: &'a [V],
    ) -> Compressed<'a, I, V> {
        Compressed {
            major,
            shape,
            indptr: p,
            indices: i,
            data: d,
        }
    }

    #[test]
    fn csr_csc_and_dense_give_the_same_matrix() {
        // [[1,0,2],[0,0,0],[0,3,0]]
        let (cells, genes) = (names("c", 3), names("g", 3));
        let check = strict(&cells, &genes);
        let csr = parts(
            Major::Rows,
            (3, 3),
            &[0i32, 2, 2, 3],
            &[2, 0, 1],
            &[2f64, 1., 3.],
        );
        let csr = csr_from_parts(&csr, &check).unwrap();
        let csc = parts(
            Major::Columns,
            (3, 3),
            &[0i64, 1, 2, 3],
            &[0, 2, 0],
            &[1i32, 3, 2],
        );
        let csc = csr_from_parts(&csc, &check).unwrap();
        let dense = [[1u8, 0, 2], [0, 0, 0], [0, 3, 0]];
        let d = csr_from_dense((3, 3), |r, j| dense[r][j], &check).unwrap();
        assert_eq!(csr, csc);
        assert_eq!(csr, d);
        assert_eq!(csr.indices, vec![0, 2, 1], "rows are sorted");
    }

    #[test]
    fn bad_values_and_components_are_named() {
        let (cells, genes) = (names("c", 2), names("g", 2));
        let check = strict(&cells, &genes);
        let e = csr_from_dense(
            (2, 2),
            |r, j| if (r, j) == (1, 0) { -1.0 } else { 0.0 },
            &check,
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("negative value -1") && e.contains("cell 'c1'") && e.contains("gene 'g0'"),
            "{e}"
        );
        let e = csr_from_parts(
            &parts(
                Major::Rows,
                (2, 2),
                &[0i32, 1, 2],
                &[0, 1],
                &[1.5f32, f32::NAN],
            ),
            &check,
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("non-integer value 1.5") && e.contains("'c0'"),
            "{e}"
        );
        let e = csr_from_parts(
            &parts(Major::Rows, (2, 2), &[0i32, 1, 2], &[0, 5], &[1f32, 1.]),
            &check,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("column 5 in row 1"), "{e}");
        let e = csr_from_parts(
            &parts(Major::Columns, (2, 2), &[0i32, 2], &[0, 1], &[1f32, 1.]),
            &check,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("indptr has 2 entries, expected 3"), "{e}");
    }
}
