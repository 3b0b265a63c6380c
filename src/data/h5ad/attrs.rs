//! Small helpers for HDF5 attributes and string datasets as anndata writes them
//! (h5py: variable-length UTF-8 strings, numpy bools as an int8 enum).

use anyhow::{Context, Result, bail};
use hdf5::types::{FixedAscii, FixedUnicode, IntSize, TypeDescriptor, VarLenAscii, VarLenUnicode};
use hdf5::{Container, Location};

/// numpy-style name of an HDF5 element type ("float32", "int64", "bool", "str", ...).
pub fn dtype_name(td: &TypeDescriptor) -> String {
    let bits = |s: IntSize| s as usize * 8;
    match td {
        TypeDescriptor::Integer(s) => format!("int{}", bits(*s)),
        TypeDescriptor::Unsigned(s) => format!("uint{}", bits(*s)),
        TypeDescriptor::Float(s) => format!("float{}", *s as usize * 8),
        TypeDescriptor::Boolean => "bool".into(),
        TypeDescriptor::VarLenAscii
        | TypeDescriptor::VarLenUnicode
        | TypeDescriptor::FixedAscii(_)
        | TypeDescriptor::FixedUnicode(_) => "str".into(),
        other => format!("{other}"),
    }
}

/// Element type of a dataset or attribute.
pub fn type_of(c: &Container) -> Result<TypeDescriptor> {
    Ok(c.dtype()?.to_descriptor()?)
}

/// True for integer, unsigned, float and bool element types.
pub fn is_numeric(td: &TypeDescriptor) -> bool {
    matches!(
        td,
        TypeDescriptor::Integer(_)
            | TypeDescriptor::Unsigned(_)
            | TypeDescriptor::Float(_)
            | TypeDescriptor::Boolean
    )
}

/// True for any string element type.
pub fn is_string(td: &TypeDescriptor) -> bool {
    matches!(
        td,
        TypeDescriptor::VarLenAscii
            | TypeDescriptor::VarLenUnicode
            | TypeDescriptor::FixedAscii(_)
            | TypeDescriptor::FixedUnicode(_)
    )
}

/// Read fixed-length strings through a buffer type of `N` bytes (HDF5 converts between
/// fixed lengths), trimming the NUL/space padding.
fn read_fixed<const N: usize>(c: &Container, unicode: bool) -> Result<Vec<String>> {
    Ok(if unicode {
        c.read_raw::<FixedUnicode<N>>()?
            .iter()
            .map(|s| s.as_str().trim_end_matches(['\0', ' ']).to_string())
            .collect()
    } else {
        c.read_raw::<FixedAscii<N>>()?
            .iter()
            .map(|s| s.as_str().trim_end_matches(['\0', ' ']).to_string())
            .collect()
    })
}

/// All elements of a string dataset/attribute (any shape) as Rust strings.
pub fn read_strings(c: &Container) -> Result<Vec<String>> {
    let td = type_of(c)?;
    match td {
        TypeDescriptor::VarLenUnicode => Ok(c
            .read_raw::<VarLenUnicode>()?
            .iter()
            .map(|s| s.to_string())
            .collect()),
        TypeDescriptor::VarLenAscii => Ok(c
            .read_raw::<VarLenAscii>()?
            .iter()
            .map(|s| s.to_string())
            .collect()),
        TypeDescriptor::FixedAscii(n) | TypeDescriptor::FixedUnicode(n) => {
            let unicode = matches!(td, TypeDescriptor::FixedUnicode(_));
            // Widened fixed buffers: the element type must be known at compile time.
            match n {
                0..=16 => read_fixed::<16>(c, unicode),
                17..=64 => read_fixed::<64>(c, unicode),
                65..=256 => read_fixed::<256>(c, unicode),
                257..=4096 => read_fixed::<4096>(c, unicode),
                _ => bail!("fixed-length strings of {n} bytes are not supported"),
            }
        }
        other => bail!("expected strings, found {}", dtype_name(&other)),
    }
}

/// A string attribute (scalar), or None when absent.
pub fn str_attr(loc: &Location, name: &str) -> Result<Option<String>> {
    if !loc.attr_names()?.iter().any(|n| n == name) {
        return Ok(None);
    }
    let a = loc.attr(name)?;
    let v = read_strings(&a).with_context(|| format!("attribute '{name}'"))?;
    Ok(v.into_iter().next())
}

/// A string-array attribute such as `column-order`. h5py stores an empty list as an
/// empty float64 array, so any empty numeric attribute reads as no strings.
pub fn str_array_attr(loc: &Location, name: &str) -> Result<Option<Vec<String>>> {
    if !loc.attr_names()?.iter().any(|n| n == name) {
        return Ok(None);
    }
    let a = loc.attr(name)?;
    let td = type_of(&a)?;
    if is_numeric(&td) && a.size() == 0 {
        return Ok(Some(Vec::new()));
    }
    Ok(Some(
        read_strings(&a).with_context(|| format!("attribute '{name}'"))?,
    ))
}

/// A boolean-ish attribute (`ordered`): numpy bool, any int, or absent (false).
pub fn bool_attr(loc: &Location, name: &str) -> Result<bool> {
    if !loc.attr_names()?.iter().any(|n| n == name) {
        return Ok(false);
    }
    let a = loc.attr(name)?;
    match type_of(&a)? {
        TypeDescriptor::Boolean => Ok(a.read_raw::<bool>()?.first().copied().unwrap_or(false)),
        td if is_numeric(&td) => Ok(a.read_raw::<i64>()?.first().copied().unwrap_or(0) != 0),
        _ => Ok(false),
    }
}

/// An integer-array attribute such as the sparse `shape`.
pub fn int_array_attr(loc: &Location, name: &str) -> Result<Option<Vec<i64>>> {
    if !loc.attr_names()?.iter().any(|n| n == name) {
        return Ok(None);
    }
    Ok(Some(loc.attr(name)?.read_raw::<i64>()?))
}

/// Convert a Rust string to an HDF5 variable-length UTF-8 string.
pub fn vlen(s: &str) -> Result<VarLenUnicode> {
    s.parse::<VarLenUnicode>()
        .map_err(|e| anyhow::anyhow!("cannot store string {s:?} in HDF5: {e}"))
}

/// Write a scalar string attribute.
pub fn set_str_attr(loc: &Location, name: &str, value: &str) -> Result<()> {
    loc.new_attr::<VarLenUnicode>()
        .create(name)?
        .write_scalar(&vlen(value)?)?;
    Ok(())
}

/// Write a string-array attribute; an empty list is stored as an empty float64 array,
/// exactly as h5py does (HDF5 cannot infer a string type from an empty Python list).
pub fn set_str_array_attr(loc: &Location, name: &str, values: &[String]) -> Result<()> {
    if values.is_empty() {
        let empty: [f64; 0] = [];
        loc.new_attr_builder().with_data(&empty[..]).create(name)?;
        return Ok(());
    }
    let v: Vec<VarLenUnicode> = values.iter().map(|s| vlen(s)).collect::<Result<_>>()?;
    loc.new_attr_builder().with_data(&v[..]).create(name)?;
    Ok(())
}

/// Write the `encoding-type` / `encoding-version` pair anndata dispatches on.
pub fn set_encoding(loc: &Location, kind: &str, version: &str) -> Result<()> {
    set_str_attr(loc, "encoding-type", kind)?;
    set_str_attr(loc, "encoding-version", version)
}
