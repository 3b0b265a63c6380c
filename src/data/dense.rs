//! Small row-major dense matrix used for results written to h5ad (obsm, layers).

/// Row-major `rows x cols` f32 matrix.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Dense {
    pub rows: usize,
    pub cols: usize,
    pub data: Vec<f32>,
}

impl Dense {
    /// A matrix from row-major values; errors when `data.len() != rows * cols`.
    pub fn new(rows: usize, cols: usize, data: Vec<f32>) -> anyhow::Result<Dense> {
        anyhow::ensure!(
            data.len() == rows * cols,
            "a {rows} x {cols} matrix needs {} values, got {}",
            rows * cols,
            data.len()
        );
        Ok(Dense { rows, cols, data })
    }

    /// All-zero matrix.
    pub fn zeros(rows: usize, cols: usize) -> Dense {
        Dense {
            rows,
            cols,
            data: vec![0.0; rows * cols],
        }
    }

    /// Row `i` as a slice.
    pub fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.cols..(i + 1) * self.cols]
    }
}
