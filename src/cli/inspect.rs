//! `scdreamer inspect`: a first look at an .h5ad file (shape, X storage, columns and a
//! batch x label table), using the same reader and checks as `integrate`.

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::Result;

use crate::cli::args::InspectArgs;
use crate::data::anndata::{AnnData, Column, Frame, XEncoding};
use crate::data::demo::{DEMO_NAME, demo_path};
use crate::data::h5ad::{ReadOptions, layer_names, open_h5, read_h5ad};
use crate::data::validate::column_levels;

/// Run `inspect`: print the report to stdout.
pub fn run(args: &InspectArgs) -> Result<()> {
    let path: PathBuf = match &args.file {
        Some(p) => p.clone(),
        None => {
            println!("no input given: using the bundled demo ({DEMO_NAME})");
            demo_path()?
        }
    };
    let opts = ReadOptions {
        layer: args.layer.clone(),
        // inspect reports non-integer values instead of refusing them
        allow_non_integer: true,
        progress: true,
    };
    let adata = read_h5ad(&path, &opts)?;
    let layers = layer_names(&open_h5(&path)?);
    let label = args.file.as_ref().map_or_else(
        || format!("{} (bundled demo {DEMO_NAME})", path.display()),
        |p| p.display().to_string(),
    );
    print!("{}", report(&label, &adata, args, &layers)?);
    Ok(())
}

/// 1234567 -> "1,234,567".
pub fn thousands(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

/// The whole report as text (separate from printing so tests can check it).
pub fn report(file: &str, a: &AnnData, args: &InspectArgs, layers: &[String]) -> Result<String> {
    let mut o = String::new();
    let (n, g, nnz) = (a.n_obs(), a.n_vars(), a.x.nnz());
    let density = if n * g == 0 {
        0.0
    } else {
        100.0 * nnz as f64 / (n as f64 * g as f64)
    };
    let source = args
        .layer
        .as_ref()
        .map_or("X".to_string(), |l| format!("layers/{l}"));
    let enc = match a.x_encoding {
        XEncoding::Csr => "csr_matrix",
        XEncoding::Csc => "csc_matrix",
        XEncoding::Dense => "dense array",
    };
    writeln!(o, "file:    {file}")?;
    writeln!(o, "cells:   {}", thousands(n))?;
    writeln!(o, "genes:   {}", thousands(g))?;
    writeln!(o, "nnz:     {} (density {density:.1}%)", thousands(nnz))?;
    writeln!(o, "{source:<8} {enc}, {}", a.x_dtype)?;
    writeln!(o, "values:  {}", value_summary(a))?;
    let layer_list = if layers.is_empty() {
        "(none)".to_string()
    } else {
        layers.join(", ")
    };
    writeln!(o, "layers:  {layer_list}")?;
    write_columns(&mut o, "obs", &a.obs)?;
    write_columns(&mut o, "var", &a.var)?;
    let batch_key = pick_key(&a.obs, args.batch_key.as_deref(), "batch")?;
    let labels_key = pick_key(&a.obs, args.labels_key.as_deref(), "cell_type")?;
    match (batch_key, labels_key) {
        (Some(b), Some(l)) => write_table(&mut o, &a.obs, b, Some(l))?,
        (Some(k), None) | (None, Some(k)) => write_table(&mut o, &a.obs, k, None)?,
        (None, None) => writeln!(
            o,
            "\nno 'batch' or 'cell_type' column: choose columns with --batch-key / --labels-key"
        )?,
    }
    Ok(o)
}

fn value_summary(a: &AnnData) -> String {
    let data = &a.x.data;
    if data.is_empty() {
        return "all zero".into();
    }
    let max = data.iter().copied().fold(f32::MIN, f32::max);
    let min = data.iter().copied().fold(f32::MAX, f32::min);
    let non_int = data.iter().filter(|v| v.fract() != 0.0).count();
    if non_int == 0 {
        format!("integer counts (stored values {min} to {max})")
    } else {
        format!(
            "NOT integer: {} of {} stored values have a fraction (min {min}, max {max}); \
             integrate needs raw counts (--layer) or --allow-non-integer",
            thousands(non_int),
            thousands(data.len())
        )
    }
}

/// The requested key (must exist: the error lists the keys), else the default if present.
fn pick_key<'a>(obs: &Frame, asked: Option<&'a str>, default: &'a str) -> Result<Option<&'a str>> {
    match asked {
        Some(k) => obs.require(k, "obs").map(|_| Some(k)),
        None => Ok(obs.get(default).map(|_| default)),
    }
}

fn kind(c: &Column) -> String {
    let unique = |c: &Column| column_levels(c).1.len();
    match c {
        Column::Categorical { categories, .. } => {
            let n = categories.len();
            format!(
                "categorical, {n} {}",
                if n == 1 { "category" } else { "categories" }
            )
        }
        Column::Str(_) => format!("string, {} unique", unique(c)),
        Column::F64(_) => "float64".into(),
        Column::F32(_) => "float32".into(),
        Column::I64(_) => "int64".into(),
        Column::I32(_) => "int32".into(),
        Column::Bool(_) => "bool".into(),
    }
}

fn write_columns(o: &mut String, name: &str, f: &Frame) -> Result<()> {
    writeln!(
        o,
        "\n{name} columns ({}), index '{}':",
        f.columns.len(),
        f.index_name
    )?;
    let width = f.columns.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    for (k, c) in &f.columns {
        let missing = (0..c.len()).filter(|&i| c.label(i).is_none()).count();
        let miss = if missing > 0 {
            format!(", {} missing", thousands(missing))
        } else {
            String::new()
        };
        writeln!(o, "  {k:<width$}  {}{miss}", kind(c))?;
    }
    Ok(())
}

/// Counts of `rows_key` (x `cols_key`) with totals.
fn write_table(o: &mut String, obs: &Frame, rows_key: &str, cols_key: Option<&str>) -> Result<()> {
    let missing = "(missing)".to_string();
    let levels_of = |key: &str| -> Result<(Vec<usize>, Vec<String>)> {
        let (lv, mut names) = column_levels(obs.require(key, "obs")?);
        let has_missing = lv.iter().any(Option::is_none);
        let m = names.len();
        if has_missing {
            names.push(missing.clone());
        }
        Ok((
            lv.into_iter()
                .map(|l| l.map_or(m, |x| x as usize))
                .collect(),
            names,
        ))
    };
    let (rl, rnames) = levels_of(rows_key)?;
    let (cl, cnames) = match cols_key {
        Some(k) => levels_of(k)?,
        None => (vec![0; rl.len()], vec!["cells".to_string()]),
    };
    let mut counts = vec![vec![0usize; cnames.len()]; rnames.len()];
    for (&r, &c) in rl.iter().zip(&cl) {
        counts[r][c] += 1;
    }
    match cols_key {
        Some(k) => writeln!(o, "\n{rows_key} x {k} (cells):")?,
        None => writeln!(o, "\n{rows_key} (cells):")?,
    }
    let w0 = rnames
        .iter()
        .map(String::len)
        .chain([rows_key.len(), 5])
        .max()
        .unwrap_or(5);
    let with_total = cols_key.is_some();
    let mut header: Vec<String> = cnames.clone();
    if with_total {
        header.push("total".into());
    }
    let mut col_totals = vec![0usize; cnames.len()];
    let mut rows: Vec<Vec<String>> = Vec::new();
    for (name, row) in rnames.iter().zip(&counts) {
        let mut cells: Vec<String> = row.iter().map(|&v| thousands(v)).collect();
        if with_total {
            cells.push(thousands(row.iter().sum()));
        }
        for (t, v) in col_totals.iter_mut().zip(row) {
            *t += v;
        }
        rows.push(std::iter::once(name.clone()).chain(cells).collect());
    }
    let mut total_row: Vec<String> = col_totals.iter().map(|&v| thousands(v)).collect();
    if with_total {
        total_row.push(thousands(col_totals.iter().sum()));
    }
    rows.push(
        std::iter::once("total".to_string())
            .chain(total_row)
            .collect(),
    );
    let widths: Vec<usize> = (0..header.len())
        .map(|j| {
            rows.iter()
                .map(|r| r[j + 1].len())
                .chain([header[j].len()])
                .max()
                .unwrap_or(1)
        })
        .collect();
    let mut line = format!("  {:<w0$}", rows_key);
    for (h, w) in header.iter().zip(&widths) {
        line += &format!("  {h:>w$}");
    }
    writeln!(o, "{}", line.trim_end())?;
    for r in &rows {
        let mut line = format!("  {:<w0$}", r[0]);
        for (v, w) in r[1..].iter().zip(&widths) {
            line += &format!("  {v:>w$}");
        }
        writeln!(o, "{}", line.trim_end())?;
    }
    Ok(())
}
