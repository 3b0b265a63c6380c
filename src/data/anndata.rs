//! The part of AnnData that scdreamer reads and writes: X (CSR counts), obs and var.

use crate::data::csr::Csr;

/// One obs/var column, in the encodings anndata >= 0.8 writes.
#[derive(Clone, Debug, PartialEq)]
pub enum Column {
    /// Categorical: `codes[i]` indexes `categories`, -1 means missing.
    Categorical {
        codes: Vec<i32>,
        categories: Vec<String>,
        ordered: bool,
    },
    Str(Vec<String>),
    F64(Vec<f64>),
    F32(Vec<f32>),
    I64(Vec<i64>),
    I32(Vec<i32>),
    Bool(Vec<bool>),
}

impl Column {
    pub fn len(&self) -> usize {
        match self {
            Column::Categorical { codes, .. } => codes.len(),
            Column::Str(v) => v.len(),
            Column::F64(v) => v.len(),
            Column::F32(v) => v.len(),
            Column::I64(v) => v.len(),
            Column::I32(v) => v.len(),
            Column::Bool(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Value of row `i` as a string label (None = missing).
    pub fn label(&self, i: usize) -> Option<String> {
        match self {
            Column::Categorical {
                codes, categories, ..
            } => {
                let c = codes[i];
                if c < 0 {
                    None
                } else {
                    categories.get(c as usize).cloned()
                }
            }
            Column::Str(v) => Some(v[i].clone()),
            Column::F64(v) => {
                if v[i].is_nan() {
                    None
                } else {
                    Some(format!("{}", v[i]))
                }
            }
            Column::F32(v) => {
                if v[i].is_nan() {
                    None
                } else {
                    Some(format!("{}", v[i]))
                }
            }
            Column::I64(v) => Some(v[i].to_string()),
            Column::I32(v) => Some(v[i].to_string()),
            Column::Bool(v) => Some(v[i].to_string()),
        }
    }

    /// Keep rows `rows` in order.
    pub fn select(&self, rows: &[usize]) -> Column {
        fn pick<T: Clone>(v: &[T], rows: &[usize]) -> Vec<T> {
            rows.iter().map(|&r| v[r].clone()).collect()
        }
        match self {
            Column::Categorical {
                codes,
                categories,
                ordered,
            } => Column::Categorical {
                codes: pick(codes, rows),
                categories: categories.clone(),
                ordered: *ordered,
            },
            Column::Str(v) => Column::Str(pick(v, rows)),
            Column::F64(v) => Column::F64(pick(v, rows)),
            Column::F32(v) => Column::F32(pick(v, rows)),
            Column::I64(v) => Column::I64(pick(v, rows)),
            Column::I32(v) => Column::I32(pick(v, rows)),
            Column::Bool(v) => Column::Bool(pick(v, rows)),
        }
    }
}

/// A data frame (obs or var): an index of names plus named columns, in file order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Frame {
    pub index: Vec<String>,
    /// Name of the index column (`_index` attribute), usually "_index".
    pub index_name: String,
    pub columns: Vec<(String, Column)>,
    /// Index names that occurred more than once in the file, which made the index unique
    /// (see [`crate::data::names::make_unique`]); empty for a unique index.
    pub repeated_names: Vec<String>,
}

impl Frame {
    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// A frame of cells `c0`, `c1`, ... with the one column `key`, for unit tests.
    #[cfg(test)]
    pub(crate) fn one_column(key: &str, col: Column) -> Frame {
        Frame {
            repeated_names: Vec::new(),
            index: (0..col.len()).map(|i| format!("c{i}")).collect(),
            index_name: "_index".into(),
            columns: vec![(key.into(), col)],
        }
    }

    pub fn get(&self, key: &str) -> Option<&Column> {
        self.columns.iter().find(|(k, _)| k == key).map(|(_, c)| c)
    }

    pub fn keys(&self) -> Vec<&str> {
        self.columns.iter().map(|(k, _)| k.as_str()).collect()
    }

    /// Column `key`, or an error that lists the keys that exist.
    pub fn require(&self, key: &str, what: &str) -> anyhow::Result<&Column> {
        self.get(key).ok_or_else(|| {
            anyhow::anyhow!(
                "{what} key '{key}' not found; available {what} keys: {}",
                if self.columns.is_empty() {
                    "(none)".to_string()
                } else {
                    self.keys().join(", ")
                }
            )
        })
    }

    pub fn select(&self, rows: &[usize]) -> Frame {
        Frame {
            repeated_names: self.repeated_names.clone(),
            index: rows.iter().map(|&r| self.index[r].clone()).collect(),
            index_name: self.index_name.clone(),
            columns: self
                .columns
                .iter()
                .map(|(k, c)| (k.clone(), c.select(rows)))
                .collect(),
        }
    }
}

/// How X was stored in the file (reported by `inspect`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum XEncoding {
    Csr,
    Csc,
    Dense,
}

/// Counts matrix plus annotations, as read from an h5ad file.
#[derive(Clone, Debug)]
pub struct AnnData {
    /// Cells x genes counts (from X or the requested layer), always CSR in memory.
    pub x: Csr,
    pub obs: Frame,
    pub var: Frame,
    /// Encoding in the file and the stored dtype, e.g. (Csr, "float32").
    pub x_encoding: XEncoding,
    pub x_dtype: String,
}

impl AnnData {
    pub fn n_obs(&self) -> usize {
        self.x.n_rows
    }
    pub fn n_vars(&self) -> usize {
        self.x.n_cols
    }
}
