//! `uns` from JSON: objects become `dict` groups, scalars and arrays become datasets with
//! the encodings anndata reads back as Python str / int / float / bool / numpy arrays.

use anyhow::{Context, Result, bail};
use hdf5::Group;
use hdf5::types::VarLenUnicode;
use serde_json::Value;

use super::attrs::{set_encoding, vlen};
use super::frame::{write_array, write_string_array};

/// Write a JSON object's entries into the `dict` group `g` (nulls are skipped).
pub fn write_dict(g: &Group, entries: &[(String, &Value)]) -> Result<()> {
    for (key, value) in entries {
        check_key(key)?;
        write_value(g, key, value).with_context(|| format!("uns entry '{key}'"))?;
    }
    Ok(())
}

fn check_key(key: &str) -> Result<()> {
    if key.is_empty() || key.contains('/') || key == "." {
        bail!("invalid uns key {key:?}: keys must be non-empty and contain no '/'");
    }
    Ok(())
}

fn write_value(g: &Group, key: &str, value: &Value) -> Result<()> {
    match value {
        Value::Null => Ok(()),
        Value::Object(map) => {
            let sub = g.create_group(key)?;
            set_encoding(&sub, "dict", "0.1.0")?;
            let entries: Vec<(String, &Value)> = map.iter().map(|(k, v)| (k.clone(), v)).collect();
            write_dict(&sub, &entries)
        }
        Value::String(s) => {
            let ds = g.new_dataset::<VarLenUnicode>().create(key)?;
            ds.write_scalar(&vlen(s)?)?;
            set_encoding(&ds, "string", "0.2.0")
        }
        Value::Bool(b) => scalar(g, key, b),
        Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => scalar(g, key, &i),
            (None, Some(u)) => scalar(g, key, &u),
            _ => scalar(g, key, &n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::Array(items) => write_json_array(g, key, items),
    }
}

fn scalar<T: hdf5::H5Type>(g: &Group, key: &str, v: &T) -> Result<()> {
    let ds = g.new_dataset::<T>().create(key)?;
    ds.write_scalar(v)?;
    set_encoding(&ds, "numeric-scalar", "0.2.0")
}

/// Homogeneous arrays become typed arrays (numbers, strings, bools, rectangular 2-D numbers);
/// anything else is kept as an array of JSON texts so nothing is silently lost.
fn write_json_array(g: &Group, key: &str, items: &[Value]) -> Result<()> {
    if items.iter().all(Value::is_i64) {
        let v: Vec<i64> = items.iter().filter_map(Value::as_i64).collect();
        return write_array(g, key, &v);
    }
    if items.iter().all(Value::is_number) {
        let v: Vec<f64> = items.iter().filter_map(Value::as_f64).collect();
        return write_array(g, key, &v);
    }
    if items.iter().all(Value::is_string) {
        let v: Vec<String> = items
            .iter()
            .filter_map(|s| s.as_str().map(String::from))
            .collect();
        return write_string_array(g, key, &v);
    }
    if items.iter().all(Value::is_boolean) {
        let v: Vec<bool> = items.iter().filter_map(Value::as_bool).collect();
        return write_array(g, key, &v);
    }
    if let Some((rows, cols, data)) = numeric_matrix(items) {
        let ds = g.new_dataset::<f64>().shape((rows, cols)).create(key)?;
        if !data.is_empty() {
            ds.write_raw(&data)?;
        }
        return set_encoding(&ds, "array", "0.2.0");
    }
    let v: Vec<String> = items.iter().map(|x| x.to_string()).collect();
    write_string_array(g, key, &v)
}

/// `[[1,2],[3,4]]` -> (2, 2, row-major values) when every row has the same length.
fn numeric_matrix(items: &[Value]) -> Option<(usize, usize, Vec<f64>)> {
    let rows: Vec<&Vec<Value>> = items.iter().map(Value::as_array).collect::<Option<_>>()?;
    let cols = rows.first()?.len();
    let mut data = Vec::with_capacity(rows.len() * cols);
    for r in &rows {
        if r.len() != cols {
            return None;
        }
        for x in r.iter() {
            data.push(x.as_f64()?);
        }
    }
    Some((rows.len(), cols, data))
}
