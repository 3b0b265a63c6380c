//! Compressed sparse row matrix of counts, the one representation of X in memory.
//!
//! Memory is O(nnz): X is never densified as a whole. Minibatches are gathered
//! from rows on demand.

/// CSR matrix with f32 values. Counts up to 2^24 are exact in f32.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Csr {
    pub n_rows: usize,
    pub n_cols: usize,
    /// Row pointers, `n_rows + 1` entries; u64 so that > 2^31 non-zeros work.
    pub indptr: Vec<u64>,
    /// Column index of each stored value; sorted within a row.
    pub indices: Vec<u32>,
    pub data: Vec<f32>,
}

impl Csr {
    pub fn nnz(&self) -> usize {
        self.data.len()
    }

    /// Column indices and values of row `i`.
    pub fn row(&self, i: usize) -> (&[u32], &[f32]) {
        let (a, b) = (self.indptr[i] as usize, self.indptr[i + 1] as usize);
        (&self.indices[a..b], &self.data[a..b])
    }

    /// Sum of each row (library size per cell).
    pub fn row_sums(&self) -> Vec<f64> {
        (0..self.n_rows)
            .map(|i| self.row(i).1.iter().map(|&v| v as f64).sum())
            .collect()
    }

    /// Sum of each column.
    pub fn col_sums(&self) -> Vec<f64> {
        let mut s = vec![0.0f64; self.n_cols];
        for (&j, &v) in self.indices.iter().zip(&self.data) {
            s[j as usize] += v as f64;
        }
        s
    }

    /// The given columns (in the given order) of every row; the matrix itself, without a copy,
    /// when that is every column in order.
    pub fn into_columns(self, cols: &[usize]) -> Csr {
        if cols.len() == self.n_cols && cols.iter().enumerate().all(|(i, &j)| i == j) {
            return self;
        }
        let rows: Vec<usize> = (0..self.n_rows).collect();
        self.select(&rows, cols)
    }

    /// Keep the given rows (in the given order) and columns (in the given order).
    /// `col_map[j]` is the new index of old column j, or `u32::MAX` to drop it.
    pub fn select(&self, rows: &[usize], cols: &[usize]) -> Csr {
        let mut col_map = vec![u32::MAX; self.n_cols];
        for (new, &old) in cols.iter().enumerate() {
            col_map[old] = new as u32;
        }
        let mut indptr = Vec::with_capacity(rows.len() + 1);
        indptr.push(0u64);
        let mut indices = Vec::new();
        let mut data = Vec::new();
        let mut tmp: Vec<(u32, f32)> = Vec::new();
        for &r in rows {
            let (idx, val) = self.row(r);
            tmp.clear();
            for (&j, &v) in idx.iter().zip(val) {
                let nj = col_map[j as usize];
                if nj != u32::MAX {
                    tmp.push((nj, v));
                }
            }
            tmp.sort_unstable_by_key(|e| e.0);
            for &(j, v) in &tmp {
                indices.push(j);
                data.push(v);
            }
            indptr.push(indices.len() as u64);
        }
        Csr {
            n_rows: rows.len(),
            n_cols: cols.len(),
            indptr,
            indices,
            data,
        }
    }

    /// Write rows `rows` densely into `out` (row-major, `rows.len() x n_cols`).
    /// Used for minibatch targets only, never for the whole matrix.
    pub fn gather_dense(&self, rows: &[usize], out: &mut [f32]) {
        assert_eq!(out.len(), rows.len() * self.n_cols);
        out.fill(0.0);
        for (k, &r) in rows.iter().enumerate() {
            let (idx, val) = self.row(r);
            let o = &mut out[k * self.n_cols..(k + 1) * self.n_cols];
            for (&j, &v) in idx.iter().zip(val) {
                o[j as usize] = v;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> Csr {
        // [[1,0,2],[0,0,0],[0,3,0]]
        Csr {
            n_rows: 3,
            n_cols: 3,
            indptr: vec![0, 2, 2, 3],
            indices: vec![0, 2, 1],
            data: vec![1.0, 2.0, 3.0],
        }
    }

    #[test]
    fn sums_and_select() {
        let m = small();
        assert_eq!(m.row_sums(), vec![3.0, 0.0, 3.0]);
        assert_eq!(m.col_sums(), vec![1.0, 3.0, 2.0]);
        let s = m.select(&[2, 0], &[2, 1]);
        let mut d = vec![0.0; 4];
        s.gather_dense(&[0, 1], &mut d);
        assert_eq!(d, vec![0.0, 3.0, 2.0, 0.0]);
    }

    #[test]
    fn into_columns_moves_when_every_column_is_kept() {
        let m = small();
        let at = m.data.as_ptr();
        let all = m.into_columns(&[0, 1, 2]);
        assert_eq!(all, small());
        assert_eq!(
            all.data.as_ptr(),
            at,
            "every column in order: the same buffer, no copy"
        );
        assert_eq!(
            small().into_columns(&[2, 1]),
            small().select(&[0, 1, 2], &[2, 1])
        );
        assert_eq!(
            small().into_columns(&[1, 0, 2]),
            small().select(&[0, 1, 2], &[1, 0, 2])
        );
    }
}
