//! numpy arrays (a scipy CSR/CSC matrix's components, or a dense array; the obs columns the
//! model reads) -> the library's in-memory AnnData, every value checked as the CLI checks a
//! file. The arrays are read in place (no copy on the Python side); the result is the one
//! CSR copy in f32 that the library trains on, as when the CLI reads a file.

use numpy::{PyArray1, PyArray2, PyArrayMethods};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use scdreamer::data::checked::{self, Compressed, Major, StoredIndex, ValueCheck, csr_from_parts};
use scdreamer::data::{AnnData, Column, Csr, Frame, anndata::XEncoding};

use crate::errors::IntoPy;

/// Checked counts and the obs columns they came with, until a setup takes them.
#[pyclass(module = "scdreamer._scdreamer")]
pub struct Data {
    pub adata: Option<AnnData>,
}

impl Data {
    /// The data, once: a setup takes the counts.
    pub fn take(&mut self) -> PyResult<AnnData> {
        self.adata
            .take()
            .ok_or_else(|| PyValueError::new_err("this Data was already used"))
    }
}

/// Calls `$body` with `$arr` bound to a readonly numpy array of the element type of `$obj`,
/// one of the numeric types counts come in.
macro_rules! with_values {
    ($obj:expr, $dim:ident, |$arr:ident| $body:expr) => {{
        let obj = $obj;
        with_values!(@try obj, $dim, $arr, $body; f32, f64, i32, i64, u32, u64, i16, u16, i8, u8)
    }};
    (@try $obj:ident, $dim:ident, $arr:ident, $body:expr; $($t:ty),*) => {{
        $(
            if let Ok(a) = $obj.downcast::<$dim<$t>>() {
                let $arr = a.readonly();
                return $body;
            }
        )*
        return Err(PyValueError::new_err(format!(
            "counts of dtype {} are not supported: give float or integer counts",
            $obj.getattr("dtype").map(|d| d.to_string()).unwrap_or_default()
        )));
    }};
}

/// The compressed components of a CSR (`csr == true`) or CSC matrix.
#[allow(clippy::too_many_arguments)]
fn compressed<I: numpy::Element + StoredIndex + Send + Sync>(
    py: Python<'_>,
    csr: bool,
    shape: (usize, usize),
    indptr: &Bound<'_, PyAny>,
    indices: &Bound<'_, PyAny>,
    data: &Bound<'_, PyAny>,
    check: &ValueCheck,
) -> PyResult<Csr> {
    let indptr = indptr.downcast::<PyArray1<I>>()?.readonly();
    let indices = indices.downcast::<PyArray1<I>>()?.readonly();
    let (ip, ix) = (
        indptr
            .as_slice()
            .map_err(|_| PyValueError::new_err("indptr must be contiguous"))?,
        indices
            .as_slice()
            .map_err(|_| PyValueError::new_err("indices must be contiguous"))?,
    );
    with_values!(data, PyArray1, |d| {
        let vals = d
            .as_slice()
            .map_err(|_| PyValueError::new_err("data must be contiguous"))?;
        let parts = Compressed {
            major: if csr { Major::Rows } else { Major::Columns },
            shape,
            indptr: ip,
            indices: ix,
            data: vals,
        };
        py.allow_threads(|| csr_from_parts(&parts, check)).py_err()
    })
}

fn dense(py: Python<'_>, data: &Bound<'_, PyAny>, check: &ValueCheck) -> PyResult<Csr> {
    with_values!(data, PyArray2, |d| {
        let view = d.as_array();
        let shape = (view.nrows(), view.ncols());
        py.allow_threads(|| checked::csr_from_dense(shape, |r, j| view[[r, j]], check))
            .py_err()
    })
}

/// One obs column: (name, kind, values, categories) with kind `categorical` (int32 codes, -1
/// missing), `f64`, `i64`, `bool` or `str`.
type ColumnIn<'py> = (String, String, Bound<'py, PyAny>, Option<Vec<String>>);

fn column(
    kind: &str,
    values: &Bound<'_, PyAny>,
    categories: Option<Vec<String>>,
) -> PyResult<Column> {
    Ok(match kind {
        "categorical" => Column::Categorical {
            codes: values.downcast::<PyArray1<i32>>()?.to_vec()?,
            categories: categories.unwrap_or_default(),
            ordered: false,
        },
        "f64" => Column::F64(values.downcast::<PyArray1<f64>>()?.to_vec()?),
        "i64" => Column::I64(values.downcast::<PyArray1<i64>>()?.to_vec()?),
        "bool" => Column::Bool(values.downcast::<PyArray1<bool>>()?.to_vec()?),
        "str" => Column::Str(values.extract()?),
        other => {
            return Err(PyValueError::new_err(format!(
                "unknown column kind {other}"
            )));
        }
    })
}

/// Checks and converts the counts (`fmt`: `csr`, `csc` or `dense`; `what` names them in
/// messages, e.g. `adata.X`) and the obs columns.
#[pyfunction]
#[pyo3(signature = (fmt, shape, data, indices, indptr, obs_names, var_names, columns, what, allow_non_integer))]
#[allow(clippy::too_many_arguments)]
pub fn read_data(
    py: Python<'_>,
    fmt: &str,
    shape: (usize, usize),
    data: Bound<'_, PyAny>,
    indices: Option<Bound<'_, PyAny>>,
    indptr: Option<Bound<'_, PyAny>>,
    obs_names: Vec<String>,
    var_names: Vec<String>,
    columns: Vec<ColumnIn<'_>>,
    what: &str,
    allow_non_integer: bool,
) -> PyResult<Data> {
    if obs_names.len() != shape.0 || var_names.len() != shape.1 {
        return Err(PyValueError::new_err(format!(
            "{what} has shape {shape:?} but there are {} cells and {} genes",
            obs_names.len(),
            var_names.len()
        )));
    }
    let check = ValueCheck {
        what,
        cells: &obs_names,
        genes: &var_names,
        allow_non_integer,
    };
    let (x, encoding) = match fmt {
        "dense" => (dense(py, &data, &check)?, XEncoding::Dense),
        "csr" | "csc" => {
            let (ip, ix) = match (&indptr, &indices) {
                (Some(p), Some(i)) => (p, i),
                _ => {
                    return Err(PyValueError::new_err(
                        "a sparse matrix needs indptr and indices",
                    ));
                }
            };
            let csr = fmt == "csr";
            let m = if ip.downcast::<PyArray1<i64>>().is_ok() {
                compressed::<i64>(py, csr, shape, ip, ix, &data, &check)?
            } else {
                compressed::<i32>(py, csr, shape, ip, ix, &data, &check)?
            };
            (m, if csr { XEncoding::Csr } else { XEncoding::Csc })
        }
        other => {
            return Err(PyValueError::new_err(format!(
                "unknown matrix format {other}"
            )));
        }
    };
    let dtype = data
        .getattr("dtype")
        .map(|d| d.to_string())
        .unwrap_or_default();
    let mut obs = Frame {
        index: obs_names,
        index_name: "_index".into(),
        columns: Vec::new(),
        repeated_names: Vec::new(),
    };
    for (name, kind, values, categories) in columns {
        let c = column(&kind, &values, categories)?;
        if c.len() != obs.len() {
            return Err(PyValueError::new_err(format!(
                "obs['{name}'] has {} values for {} cells",
                c.len(),
                obs.len()
            )));
        }
        obs.columns.push((name, c));
    }
    // Repeated gene names are made unique as the CLI's reader does (anndata's
    // var_names_make_unique), so name matching is defined on unique names.
    let mut var_names = var_names;
    let repeated_names = scdreamer::data::names::make_unique(&mut var_names);
    if !repeated_names.is_empty() {
        eprintln!(
            "warning: {}",
            scdreamer::data::names::repeated_warning(&repeated_names, "var_names")
        );
    }
    let var = Frame {
        index: var_names,
        index_name: "_index".into(),
        columns: Vec::new(),
        repeated_names,
    };
    Ok(Data {
        adata: Some(AnnData {
            x,
            obs,
            var,
            x_encoding: encoding,
            x_dtype: dtype,
        }),
    })
}
