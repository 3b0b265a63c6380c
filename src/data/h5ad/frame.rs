//! obs / var data frames: anndata >= 0.8 `dataframe` groups.

use anyhow::{Context, Result, bail};
use hdf5::types::{FloatSize, IntSize, TypeDescriptor, VarLenUnicode};
use hdf5::{Dataset, Group};

use super::attrs::{
    bool_attr, dtype_name, is_string, read_strings, set_encoding, set_str_array_attr, set_str_attr,
    str_array_attr, str_attr, type_of, vlen,
};
use crate::data::anndata::{Column, Frame};

/// Read the dataframe group `name` ("obs" or "var") of an h5ad file.
pub fn read_frame(root: &Group, name: &str) -> Result<Frame> {
    if !root.link_exists(name) {
        bail!("no '{name}' group (not an h5ad file written by anndata?)");
    }
    let g = root.group(name).with_context(|| {
        format!("'{name}' is not a group: h5ad files from anndata < 0.7 are not supported")
    })?;
    let index_name = str_attr(&g, "_index")?.unwrap_or_else(|| "_index".to_string());
    if !g.link_exists(&index_name) {
        bail!("{name}: index dataset '{index_name}' is missing");
    }
    let index = read_strings(&*g.dataset(&index_name)?)
        .with_context(|| format!("{name}/{index_name} (the index)"))?;
    let order = match str_array_attr(&g, "column-order")? {
        Some(o) => o,
        None => {
            let mut m = g.member_names()?;
            m.retain(|k| k != &index_name);
            m
        }
    };
    let mut columns = Vec::with_capacity(order.len());
    for key in order {
        if !g.link_exists(&key) {
            bail!("{name}: column '{key}' is listed in column-order but missing");
        }
        let col = read_column(&g, &key).with_context(|| format!("{name}/{key}"))?;
        let Some(col) = col else { continue };
        if col.len() != index.len() {
            bail!(
                "{name}/{key} has {} values but {name} has {} rows",
                col.len(),
                index.len()
            );
        }
        columns.push((key, col));
    }
    Ok(Frame {
        repeated_names: Vec::new(),
        index,
        index_name,
        columns,
    })
}

/// One column; `None` (with a warning) for encodings scdreamer does not need.
fn read_column(g: &Group, key: &str) -> Result<Option<Column>> {
    if let Ok(ds) = g.dataset(key) {
        return read_array_column(&ds).map(Some);
    }
    let sub = g.group(key)?;
    let enc = str_attr(&sub, "encoding-type")?.unwrap_or_default();
    match enc.as_str() {
        "categorical" => {
            let codes = sub.dataset("codes")?.read_raw::<i64>()?;
            let categories = read_categories(&sub.dataset("categories")?)?;
            let n = categories.len() as i64;
            let codes = codes
                .into_iter()
                .map(|c| {
                    if c < 0 {
                        Ok(-1)
                    } else if c >= n {
                        bail!("category code {c} out of range ({n} categories)")
                    } else {
                        Ok(c as i32)
                    }
                })
                .collect::<Result<Vec<i32>>>()?;
            Ok(Some(Column::Categorical {
                codes,
                categories,
                ordered: bool_attr(&sub, "ordered")?,
            }))
        }
        "nullable-integer" | "nullable-boolean" | "nullable-string-array" => {
            read_nullable(&sub, &enc).map(Some)
        }
        other => {
            eprintln!(
                "warning: skipping column '{}' with unsupported encoding '{}'",
                key,
                if other.is_empty() { "(none)" } else { other }
            );
            Ok(None)
        }
    }
}

/// Category labels; numeric categories become their decimal text.
fn read_categories(ds: &Dataset) -> Result<Vec<String>> {
    let td = type_of(ds)?;
    if is_string(&td) {
        return read_strings(ds);
    }
    Ok(match td {
        TypeDescriptor::Float(_) => ds
            .read_raw::<f64>()?
            .iter()
            .map(|v| v.to_string())
            .collect(),
        TypeDescriptor::Boolean => ds
            .read_raw::<bool>()?
            .iter()
            .map(|&b| if b { "True" } else { "False" }.to_string())
            .collect(),
        TypeDescriptor::Integer(_) | TypeDescriptor::Unsigned(_) => ds
            .read_raw::<i64>()?
            .iter()
            .map(|v| v.to_string())
            .collect(),
        other => bail!(
            "categories of type {} are not supported",
            dtype_name(&other)
        ),
    })
}

/// A plain 1-D dataset column: strings, numbers or bools.
fn read_array_column(ds: &Dataset) -> Result<Column> {
    if ds.ndim() > 1 {
        bail!("expected a 1-D column, found shape {:?}", ds.shape());
    }
    let td = type_of(ds)?;
    if is_string(&td) {
        return Ok(Column::Str(read_strings(ds)?));
    }
    Ok(match td {
        TypeDescriptor::Float(FloatSize::U8) => Column::F64(ds.read_raw::<f64>()?),
        TypeDescriptor::Float(_) => Column::F32(ds.read_raw::<f32>()?),
        TypeDescriptor::Integer(IntSize::U8)
        | TypeDescriptor::Unsigned(IntSize::U4 | IntSize::U8) => Column::I64(ds.read_raw::<i64>()?),
        TypeDescriptor::Integer(_) | TypeDescriptor::Unsigned(_) => {
            Column::I32(ds.read_raw::<i32>()?)
        }
        TypeDescriptor::Boolean => Column::Bool(ds.read_raw::<bool>()?),
        other => bail!("columns of type {} are not supported", dtype_name(&other)),
    })
}

/// pandas nullable arrays: `values` + `mask` (true = missing). Without missing values they
/// read as plain columns; with missing values integers become F64 with NaN and bools or
/// strings become categoricals with code -1, so that "missing" survives.
fn read_nullable(g: &Group, enc: &str) -> Result<Column> {
    let values = read_array_column(&g.dataset("values")?)?;
    let mask = if g.link_exists("mask") {
        g.dataset("mask")?.read_raw::<bool>()?
    } else {
        vec![false; values.len()]
    };
    if mask.len() != values.len() {
        bail!(
            "{enc}: mask has {} values for {} values",
            mask.len(),
            values.len()
        );
    }
    if !mask.iter().any(|&m| m) {
        return Ok(values);
    }
    if enc == "nullable-integer" {
        let v = match values {
            Column::I32(v) => v.into_iter().map(f64::from).collect::<Vec<_>>(),
            Column::I64(v) => v.into_iter().map(|x| x as f64).collect(),
            Column::F64(v) => v,
            Column::F32(v) => v.into_iter().map(f64::from).collect(),
            _ => bail!("nullable-integer with non-integer values"),
        };
        let v = v
            .into_iter()
            .zip(&mask)
            .map(|(x, &m)| if m { f64::NAN } else { x })
            .collect();
        return Ok(Column::F64(v));
    }
    let labels: Vec<Option<String>> = (0..values.len())
        .map(|i| if mask[i] { None } else { values.label(i) })
        .collect();
    let mut categories: Vec<String> = labels.iter().flatten().cloned().collect();
    categories.sort();
    categories.dedup();
    let codes = labels
        .iter()
        .map(|l| match l {
            Some(s) => categories.binary_search(s).map(|p| p as i32).unwrap_or(-1),
            None => -1,
        })
        .collect();
    Ok(Column::Categorical {
        codes,
        categories,
        ordered: false,
    })
}

/// Write `frame` as the dataframe group `name`, appending `extra` columns (an extra column
/// with an existing name replaces it in place).
pub fn write_frame(
    root: &Group,
    name: &str,
    frame: &Frame,
    extra: &[(String, Column)],
) -> Result<()> {
    let g = root.create_group(name)?;
    let index_name = if frame.index_name.is_empty() {
        "_index"
    } else {
        &frame.index_name
    };
    let mut columns: Vec<(&str, &Column)> =
        frame.columns.iter().map(|(k, c)| (k.as_str(), c)).collect();
    for (k, c) in extra {
        if c.len() != frame.len() {
            bail!(
                "{name} column '{k}' has {} values for {} rows",
                c.len(),
                frame.len()
            );
        }
        match columns.iter_mut().find(|(ek, _)| *ek == k) {
            Some(slot) => slot.1 = c,
            None => columns.push((k.as_str(), c)),
        }
    }
    if columns.iter().any(|(k, _)| *k == index_name) {
        bail!("{name} has a column named like its index '{index_name}'");
    }
    set_encoding(&g, "dataframe", "0.2.0")?;
    set_str_attr(&g, "_index", index_name)?;
    let order: Vec<String> = columns.iter().map(|(k, _)| k.to_string()).collect();
    set_str_array_attr(&g, "column-order", &order)?;
    write_string_array(&g, index_name, &frame.index)?;
    for (k, c) in columns {
        write_column(&g, k, c).with_context(|| format!("writing {name}/{k}"))?;
    }
    Ok(())
}

/// A `string-array` dataset.
pub fn write_string_array(g: &Group, name: &str, values: &[String]) -> Result<()> {
    let v: Vec<VarLenUnicode> = values.iter().map(|s| vlen(s)).collect::<Result<_>>()?;
    let ds = if v.is_empty() {
        g.new_dataset::<VarLenUnicode>().shape(0).create(name)?
    } else {
        g.new_dataset_builder().with_data(&v[..]).create(name)?
    };
    set_encoding(&ds, "string-array", "0.2.0")
}

/// A numeric `array` dataset (1-D).
pub fn write_array<T: hdf5::H5Type>(g: &Group, name: &str, values: &[T]) -> Result<()> {
    let ds = if values.is_empty() {
        g.new_dataset::<T>().shape(0).create(name)?
    } else {
        g.new_dataset_builder().with_data(values).create(name)?
    };
    set_encoding(&ds, "array", "0.2.0")
}

fn write_column(g: &Group, key: &str, c: &Column) -> Result<()> {
    match c {
        Column::Categorical {
            codes,
            categories,
            ordered,
        } => {
            let sub = g.create_group(key)?;
            set_encoding(&sub, "categorical", "0.2.0")?;
            sub.new_attr::<bool>()
                .create("ordered")?
                .write_scalar(ordered)?;
            // pandas picks the smallest signed code type that holds every category.
            let n = categories.len();
            if n < i8::MAX as usize {
                let v: Vec<i8> = codes.iter().map(|&x| x as i8).collect();
                write_array(&sub, "codes", &v)?;
            } else if n < i16::MAX as usize {
                let v: Vec<i16> = codes.iter().map(|&x| x as i16).collect();
                write_array(&sub, "codes", &v)?;
            } else {
                write_array(&sub, "codes", codes)?;
            }
            write_string_array(&sub, "categories", categories)
        }
        Column::Str(v) => write_string_array(g, key, v),
        Column::F64(v) => write_array(g, key, v),
        Column::F32(v) => write_array(g, key, v),
        Column::I64(v) => write_array(g, key, v),
        Column::I32(v) => write_array(g, key, v),
        Column::Bool(v) => write_array(g, key, v),
    }
}
