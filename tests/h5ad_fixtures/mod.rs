//! Small h5ad files written directly with the hdf5 crate (independently of scdreamer's
//! writer), in every X encoding the reader accepts, for round-trip and bad-input tests.

#![allow(dead_code)] // each test crate uses a different part

use std::path::Path;

use hdf5::types::VarLenUnicode;
use hdf5::{File, Group, H5Type, Location};

/// How X is stored.
#[derive(Clone, Copy, Debug)]
pub enum XKind {
    /// float32 data, int32 indptr/indices (what anndata writes for float32 counts).
    CsrF32I32,
    /// float64 data, int64 indptr/indices.
    CsrF64I64,
    /// CSC, int32 data, int64 indices, int32 indptr.
    CscI32,
    /// Dense int64 2-D array.
    DenseI64,
    /// Dense float64 2-D array.
    DenseF64,
}

/// A tiny dataset described densely (row-major values, cells x genes).
#[derive(Clone, Debug)]
pub struct Fixture {
    pub cells: Vec<String>,
    pub genes: Vec<String>,
    pub values: Vec<f64>,
    pub batch: Vec<&'static str>,
    pub cell_type: Vec<&'static str>,
}

impl Fixture {
    /// 5 cells x 4 genes of counts, 2 batches, 2 cell types; cell1 has no counts.
    pub fn small() -> Fixture {
        #[rustfmt::skip]
        let values = vec![
            1.0, 0.0, 3.0, 0.0,
            0.0, 0.0, 0.0, 0.0,
            2.0, 5.0, 0.0, 7.0,
            0.0, 1.0, 1.0, 0.0,
            9.0, 0.0, 0.0, 0.0,
        ];
        Fixture {
            cells: (0..5).map(|i| format!("cell{i}")).collect(),
            genes: (0..4).map(|j| format!("gene{j}")).collect(),
            values,
            batch: vec!["b1", "b0", "b1", "b0", "b1"],
            cell_type: vec!["T", "B", "B", "T", "T"],
        }
    }

    pub fn n(&self) -> usize {
        self.cells.len()
    }

    pub fn g(&self) -> usize {
        self.genes.len()
    }

    /// Set value at (cell, gene).
    pub fn set(&mut self, i: usize, j: usize, v: f64) {
        let g = self.g();
        self.values[i * g + j] = v;
    }
}

pub fn vlen(s: &str) -> VarLenUnicode {
    s.parse().unwrap()
}

pub fn str_attr(loc: &Location, name: &str, v: &str) {
    loc.new_attr::<VarLenUnicode>()
        .create(name)
        .unwrap()
        .write_scalar(&vlen(v))
        .unwrap();
}

pub fn encoding(loc: &Location, t: &str, v: &str) {
    str_attr(loc, "encoding-type", t);
    str_attr(loc, "encoding-version", v);
}

/// A 1-D dataset without encoding attributes (the arrays inside a sparse matrix group).
fn raw<T: H5Type>(g: &Group, name: &str, v: &[T]) -> hdf5::Dataset {
    g.new_dataset_builder().with_data(v).create(name).unwrap()
}

fn array<T: H5Type>(g: &Group, name: &str, v: &[T]) {
    encoding(&raw(g, name, v), "array", "0.2.0");
}

fn strings(g: &Group, name: &str, v: &[String]) {
    let v: Vec<VarLenUnicode> = v.iter().map(|s| vlen(s)).collect();
    let ds = g
        .new_dataset_builder()
        .with_data(&v[..])
        .create(name)
        .unwrap();
    encoding(&ds, "string-array", "0.2.0");
}

/// Categorical column with categories in first-seen order reversed (so they are not sorted).
fn categorical(g: &Group, name: &str, labels: &[&str]) {
    let mut cats: Vec<String> = Vec::new();
    for l in labels {
        if !cats.iter().any(|c| c == l) {
            cats.push(l.to_string());
        }
    }
    cats.reverse();
    let codes: Vec<i8> = labels
        .iter()
        .map(|l| cats.iter().position(|c| c == l).unwrap() as i8)
        .collect();
    let sub = g.create_group(name).unwrap();
    encoding(&sub, "categorical", "0.2.0");
    sub.new_attr::<bool>()
        .create("ordered")
        .unwrap()
        .write_scalar(&false)
        .unwrap();
    array(&sub, "codes", &codes);
    strings(&sub, "categories", &cats);
}

fn frame(root: &Group, name: &str, index: &[String], cols: &[(&str, &[&str])]) {
    let g = root.create_group(name).unwrap();
    encoding(&g, "dataframe", "0.2.0");
    str_attr(&g, "_index", "_index");
    let order: Vec<VarLenUnicode> = cols.iter().map(|(k, _)| vlen(k)).collect();
    if order.is_empty() {
        let e: [f64; 0] = [];
        g.new_attr_builder()
            .with_data(&e[..])
            .create("column-order")
            .unwrap();
    } else {
        g.new_attr_builder()
            .with_data(&order[..])
            .create("column-order")
            .unwrap();
    }
    strings(&g, "_index", index);
    for (k, v) in cols {
        categorical(&g, k, v);
    }
}

/// Write the matrix (rows x cols, row-major `values`) at `path` inside `root`.
pub fn write_matrix(
    root: &Group,
    path: &str,
    rows: usize,
    cols: usize,
    values: &[f64],
    kind: XKind,
) {
    let nz = |i: usize, j: usize| values[i * cols + j];
    let shape = (rows, cols);
    match kind {
        XKind::DenseI64 => {
            let v: Vec<i64> = values.iter().map(|&x| x as i64).collect();
            dense(root, path, shape, &v);
        }
        XKind::DenseF64 => dense(root, path, shape, values),
        XKind::CsrF32I32 => {
            let (ip, ix, d) = compress(rows, cols, nz, |v| v as f32);
            compressed(
                root,
                path,
                "csr_matrix",
                shape,
                &d,
                &to_i32(&ix),
                &to_i32(&ip),
            );
        }
        XKind::CsrF64I64 => {
            let (ip, ix, d) = compress(rows, cols, nz, |v| v);
            compressed(root, path, "csr_matrix", shape, &d, &ix, &ip);
        }
        XKind::CscI32 => {
            let (ip, ix, d) = compress(cols, rows, |j, i| nz(i, j), |v| v as i32);
            compressed(root, path, "csc_matrix", shape, &d, &ix, &to_i32(&ip));
        }
    }
}

fn to_i32(v: &[i64]) -> Vec<i32> {
    v.iter().map(|&x| x as i32).collect()
}

/// The arrays of a compressed matrix (indptr, minor indices, values stored as `store(v)`):
/// for each of `n_major` rows (CSR) or columns (CSC), its `value(major, minor)` that are not 0.
fn compress<T>(
    n_major: usize,
    n_minor: usize,
    value: impl Fn(usize, usize) -> f64,
    store: impl Fn(f64) -> T,
) -> (Vec<i64>, Vec<i64>, Vec<T>) {
    let (mut indptr, mut indices, mut data) = (vec![0i64], Vec::new(), Vec::new());
    for a in 0..n_major {
        for b in 0..n_minor {
            let v = value(a, b);
            if v != 0.0 {
                indices.push(b as i64);
                data.push(store(v));
            }
        }
        indptr.push(indices.len() as i64);
    }
    (indptr, indices, data)
}

/// A dense 2-D dataset of `shape` at `path`.
fn dense<T: H5Type>(root: &Group, path: &str, shape: (usize, usize), v: &[T]) {
    let ds = root.new_dataset::<T>().shape(shape).create(path).unwrap();
    ds.write_raw(v).unwrap();
    encoding(&ds, "array", "0.2.0");
}

/// A compressed sparse matrix group (`enc` csr_matrix or csc_matrix) of `shape` at `path`.
fn compressed<V: H5Type, I: H5Type, P: H5Type>(
    root: &Group,
    path: &str,
    enc: &str,
    shape: (usize, usize),
    data: &[V],
    indices: &[I],
    indptr: &[P],
) {
    let g = root.create_group(path).unwrap();
    encoding(&g, enc, "0.1.0");
    g.new_attr_builder()
        .with_data(&[shape.0 as i64, shape.1 as i64][..])
        .create("shape")
        .unwrap();
    raw(&g, "data", data);
    raw(&g, "indices", indices);
    raw(&g, "indptr", indptr);
}

/// Write `fx` as an h5ad file with X (or, with `layer`, only `layers/<layer>`) as `kind`.
pub fn write_fixture(path: &Path, fx: &Fixture, kind: XKind, layer: Option<&str>) {
    let f = File::create(path).unwrap();
    encoding(&f, "anndata", "0.1.0");
    let layers = f.create_group("layers").unwrap();
    encoding(&layers, "dict", "0.1.0");
    match layer {
        Some(name) => write_matrix(&layers, name, fx.n(), fx.g(), &fx.values, kind),
        None => write_matrix(&f, "X", fx.n(), fx.g(), &fx.values, kind),
    }
    frame(
        &f,
        "obs",
        &fx.cells,
        &[("batch", &fx.batch), ("cell_type", &fx.cell_type)],
    );
    frame(&f, "var", &fx.genes, &[]);
    for g in ["obsm", "obsp", "uns", "varm", "varp"] {
        encoding(&f.create_group(g).unwrap(), "dict", "0.1.0");
    }
}
