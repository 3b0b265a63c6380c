//! Embeddings for `evaluate`: an obsm key of the input, `NAME=FILE.npy` (rows in the input's
//! cell order) or `NAME=OTHER.h5ad:KEY` (rows matched to the input's cells by obs name).

use std::collections::HashMap;
use std::path::Path;

use anyhow::{Context, Result, bail};
use hdf5::types::TypeDescriptor;

use crate::data::h5ad::attrs::{read_strings, str_attr, type_of};
use crate::data::h5ad::open_h5;

/// A named `n x d` embedding (row-major f32) in the input's cell order.
pub struct Embedding {
    pub name: String,
    pub source: String,
    /// The .h5ad file the embedding was read from (its training log may sit beside it).
    pub file: Option<std::path::PathBuf>,
    pub d: usize,
    pub x: Vec<f32>,
}

/// Parse one `--embedding` value and load it; `obs_names` are the input's cells.
pub fn load(spec: &str, input: &Path, obs_names: &[String]) -> Result<Embedding> {
    let (name, source) = match spec.split_once('=') {
        Some((n, s)) if !n.is_empty() && !s.is_empty() => (n.to_string(), s.to_string()),
        Some(_) => bail!("--embedding '{spec}': expected KEY, NAME=FILE.npy or NAME=FILE.h5ad:KEY"),
        None => (spec.to_string(), String::new()),
    };
    let n = obs_names.len();
    let mut file_used = None;
    let (d, x, shown) = if source.is_empty() {
        let (d, x) = read_obsm(input, &name)?;
        file_used = Some(input.to_path_buf());
        (d, x, format!("{}:obsm['{name}']", input.display()))
    } else if let Some((file, key)) = source.rsplit_once(".h5ad:") {
        let file = format!("{file}.h5ad");
        let (d, x) = read_obsm(Path::new(&file), key)?;
        let other = read_obs_names(Path::new(&file))?;
        let x = match_rows(&x, d, &other, obs_names, &file)?;
        file_used = Some(file.clone().into());
        (d, x, format!("{file}:obsm['{key}']"))
    } else if source.ends_with(".npy") {
        let (rows, d, x) = read_npy(Path::new(&source))?;
        if rows != n {
            bail!(
                "embedding '{name}' ({source}) has {rows} rows but {} has {n} cells; \
                 a .npy embedding must have one row per cell in the input's order",
                input.display()
            );
        }
        (d, x, source.clone())
    } else {
        bail!("--embedding '{spec}': the file must be a .npy or FILE.h5ad:OBSM_KEY");
    };
    if x.len() != n * d {
        bail!(
            "embedding '{name}' ({shown}) has {} rows but {} has {n} cells",
            x.len() / d.max(1),
            input.display()
        );
    }
    if d == 0 {
        bail!("embedding '{name}' ({shown}) has no columns");
    }
    if let Some(p) = x.iter().position(|v| !v.is_finite()) {
        bail!(
            "embedding '{name}' ({shown}) holds a non-finite value ({}) at cell {} ('{}'), \
             column {}; NaN/Inf embeddings cannot be scored",
            x[p],
            p / d,
            obs_names[p / d],
            p % d
        );
    }
    Ok(Embedding {
        name,
        source: shown,
        file: file_used,
        d,
        x,
    })
}

/// `obsm/KEY` of an h5ad as f32 (`n x d`).
pub fn read_obsm(path: &Path, key: &str) -> Result<(usize, Vec<f32>)> {
    let file = open_h5(path)?;
    let keys: Vec<String> = file
        .group("obsm")
        .and_then(|g| g.member_names())
        .unwrap_or_default();
    if !keys.iter().any(|k| k == key) {
        bail!(
            "{}: no obsm key '{key}'; available obsm keys: {}",
            path.display(),
            if keys.is_empty() {
                "(none)".into()
            } else {
                keys.join(", ")
            }
        );
    }
    let ds = file
        .dataset(&format!("obsm/{key}"))
        .with_context(|| format!("{}: obsm['{key}'] is not a dense array", path.display()))?;
    let shape = ds.shape();
    if shape.len() != 2 {
        bail!(
            "{}: obsm['{key}'] has shape {shape:?}, expected cells x dims",
            path.display()
        );
    }
    let x: Vec<f32> = match type_of(&ds)? {
        TypeDescriptor::Float(hdf5::types::FloatSize::U4) => ds.read_raw::<f32>()?,
        TypeDescriptor::Float(_) => ds
            .read_raw::<f64>()?
            .into_iter()
            .map(|v| v as f32)
            .collect(),
        TypeDescriptor::Integer(_) | TypeDescriptor::Unsigned(_) => ds
            .read_raw::<i64>()?
            .into_iter()
            .map(|v| v as f32)
            .collect(),
        other => bail!(
            "{}: obsm['{key}'] holds {other:?}, not numbers",
            path.display()
        ),
    };
    Ok((shape[1], x))
}

fn read_obs_names(path: &Path) -> Result<Vec<String>> {
    let file = open_h5(path)?;
    let g = file
        .group("obs")
        .with_context(|| format!("{}: no obs group", path.display()))?;
    let index = str_attr(&g, "_index")?.unwrap_or_else(|| "_index".into());
    read_strings(&*g.dataset(&index)?).with_context(|| format!("{}: obs names", path.display()))
}

fn match_rows(
    x: &[f32],
    d: usize,
    other: &[String],
    want: &[String],
    file: &str,
) -> Result<Vec<f32>> {
    if other.len() * d != x.len() {
        bail!(
            "{file}: obsm has {} rows but obs has {} cells",
            x.len() / d.max(1),
            other.len()
        );
    }
    let pos: HashMap<&str, usize> = other
        .iter()
        .enumerate()
        .map(|(i, s)| (s.as_str(), i))
        .collect();
    let mut out = Vec::with_capacity(want.len() * d);
    let missing: Vec<&String> = want
        .iter()
        .filter(|c| !pos.contains_key(c.as_str()))
        .collect();
    if let Some(first) = missing.first() {
        bail!(
            "{file}: {} of the input's cells are missing (first: '{first}'); \
             the embedding must cover every cell",
            missing.len()
        );
    }
    for c in want {
        let i = pos[c.as_str()];
        out.extend_from_slice(&x[i * d..(i + 1) * d]);
    }
    Ok(out)
}

/// A 2-D little-endian float32/float64 .npy file in C order: (rows, cols, values).
pub fn read_npy(path: &Path) -> Result<(usize, usize, Vec<f32>)> {
    let shown = path.display();
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {shown}"))?;
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        bail!("{shown}: not a .npy file");
    }
    let (hlen, start) = if bytes[6] == 1 {
        (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10)
    } else {
        if bytes.len() < 12 {
            bail!("{shown}: truncated .npy header");
        }
        (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        )
    };
    let header = std::str::from_utf8(bytes.get(start..start + hlen).context("truncated header")?)
        .with_context(|| format!("{shown}: header is not text"))?;
    let field = |k: &str| -> Option<&str> {
        let at = header.find(&format!("'{k}'"))?;
        Some(header[at + k.len() + 2..].trim_start_matches([':', ' ']))
    };
    let descr = field("descr").unwrap_or("");
    let width = if descr.starts_with("'<f4'") {
        4
    } else if descr.starts_with("'<f8'") {
        8
    } else {
        bail!(
            "{shown}: dtype {} not supported (save float32 or float64)",
            descr.split(',').next().unwrap_or("?")
        );
    };
    let fortran = field("fortran_order").is_some_and(|v| v.starts_with("True"));
    let shape_text = field("shape").unwrap_or("");
    let inside = shape_text
        .trim_start_matches('(')
        .split(')')
        .next()
        .unwrap_or("");
    let dims: Vec<usize> = inside
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<usize>())
        .collect::<std::result::Result<_, _>>()
        .with_context(|| format!("{shown}: bad shape '{inside}'"))?;
    if dims.len() != 2 {
        bail!("{shown}: shape {dims:?}, expected (cells, dims)");
    }
    let data = &bytes[start + hlen..];
    let count = dims[0] * dims[1];
    if data.len() < count * width {
        bail!(
            "{shown}: truncated data ({} bytes for {count} values)",
            data.len()
        );
    }
    let values = if width == 4 {
        data.chunks_exact(4)
            .take(count)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    } else {
        data.chunks_exact(8)
            .take(count)
            .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")) as f32)
            .collect()
    };
    if fortran {
        // Column-major on disk (numpy keeps a transposed or PCA result that way).
        let (r, c) = (dims[0], dims[1]);
        let col: Vec<f32> = values;
        let values = (0..r * c).map(|p| col[(p % c) * r + p / c]).collect();
        return Ok((r, c, values));
    }
    Ok((dims[0], dims[1], values))
}
