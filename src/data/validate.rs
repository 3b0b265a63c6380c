//! Checks and clean-up between reading a file and training: empty cells/genes and the
//! batch column.

use std::cmp::Ordering;
use std::fmt;

use anyhow::{Result, bail};

use crate::data::anndata::{AnnData, Column, Frame};

/// What `drop_empty` removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DropReport {
    pub cells_dropped: usize,
    pub genes_dropped: usize,
}

impl DropReport {
    /// True when nothing was dropped.
    pub fn is_empty(&self) -> bool {
        self.cells_dropped == 0 && self.genes_dropped == 0
    }
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

impl fmt::Display for DropReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "dropped {} and {} with zero counts",
            plural(self.cells_dropped, "cell", "cells"),
            plural(self.genes_dropped, "gene", "genes")
        )
    }
}

/// Drop cells and genes whose total count is zero (they carry no signal and break the
/// library-size prior). Genes are judged on the kept cells. Errors when nothing is left.
pub fn drop_empty(adata: &AnnData) -> Result<(AnnData, DropReport)> {
    let x = &adata.x;
    if x.n_rows == 0 || x.n_cols == 0 {
        bail!(
            "the data is empty ({} cells x {} genes)",
            x.n_rows,
            x.n_cols
        );
    }
    let rows = positive(&x.row_sums());
    if rows.is_empty() {
        bail!(
            "no cells with non-zero counts: all {} cells have zero total counts",
            x.n_rows
        );
    }
    // Column sums over all cells equal those over the kept cells: dropped cells are all zero.
    let cols = positive(&x.col_sums());
    let report = DropReport {
        cells_dropped: x.n_rows - rows.len(),
        genes_dropped: x.n_cols - cols.len(),
    };
    let out = AnnData {
        x: if report.is_empty() {
            x.clone()
        } else {
            x.select(&rows, &cols)
        },
        obs: adata.obs.select(&rows),
        var: adata.var.select(&cols),
        x_encoding: adata.x_encoding.clone(),
        x_dtype: adata.x_dtype.clone(),
    };
    Ok((out, report))
}

/// Indices of the positive sums.
fn positive(sums: &[f64]) -> Vec<usize> {
    (0..sums.len()).filter(|&i| sums[i] > 0.0).collect()
}

/// Distinct values of a column in display order: a categorical's category order (only the
/// categories that occur), numeric order for numbers, sorted text for strings.
/// Returns the level of each row (None = missing) and the level names.
pub fn column_levels(col: &Column) -> (Vec<Option<u32>>, Vec<String>) {
    if let Column::Categorical {
        codes, categories, ..
    } = col
    {
        let mut new_code = vec![u32::MAX; categories.len()];
        for &c in codes.iter().filter(|&&c| c >= 0) {
            new_code[c as usize] = 0;
        }
        let mut names = Vec::new();
        for (old, slot) in new_code.iter_mut().enumerate() {
            if *slot == 0 {
                *slot = names.len() as u32;
                names.push(categories[old].clone());
            }
        }
        let levels = codes
            .iter()
            .map(|&c| (c >= 0).then(|| new_code[c as usize]))
            .collect();
        return (levels, names);
    }
    let n = col.len();
    // First row holding each distinct label; the row gives the value to sort by.
    let mut first: std::collections::HashMap<String, usize> = Default::default();
    let labels: Vec<Option<String>> = (0..n).map(|i| col.label(i)).collect();
    for (i, l) in labels.iter().enumerate() {
        if let Some(l) = l {
            first.entry(l.clone()).or_insert(i);
        }
    }
    let mut distinct: Vec<(String, usize)> = first.into_iter().collect();
    distinct.sort_by(|a, b| compare_rows(col, a.1, b.1).then_with(|| a.0.cmp(&b.0)));
    let index: std::collections::HashMap<&str, u32> = distinct
        .iter()
        .enumerate()
        .map(|(k, (l, _))| (l.as_str(), k as u32))
        .collect();
    let levels = labels
        .iter()
        .map(|l| l.as_deref().map(|s| index[s]))
        .collect();
    (levels, distinct.into_iter().map(|(l, _)| l).collect())
}

fn compare_rows(col: &Column, a: usize, b: usize) -> Ordering {
    match col {
        Column::F64(v) => v[a].total_cmp(&v[b]),
        Column::F32(v) => v[a].total_cmp(&v[b]),
        Column::I64(v) => v[a].cmp(&v[b]),
        Column::I32(v) => v[a].cmp(&v[b]),
        Column::Bool(v) => v[a].cmp(&v[b]),
        Column::Str(v) => v[a].cmp(&v[b]),
        Column::Categorical { .. } => Ordering::Equal,
    }
}

/// Below this mean number of cells per batch, `batch_codes` warns.
const MIN_MEAN_CELLS_PER_BATCH: usize = 5;

/// Batch of every cell as a code into the batches that occur, plus their names.
///
/// Errors: the key is missing (the message lists the obs keys), a cell has no batch, or
/// there is a single batch and `allow_single` is false.
pub fn batch_codes(obs: &Frame, key: &str, allow_single: bool) -> Result<(Vec<u32>, Vec<String>)> {
    let col = obs
        .require(key, "obs")
        .map_err(|e| anyhow::anyhow!("batch {e} (choose one with --batch-key)"))?;
    if col.is_empty() {
        bail!("there are no cells (obs has 0 rows): nothing to integrate");
    }
    let (levels, names) = column_levels(col);
    let missing: Vec<usize> = (0..levels.len()).filter(|&i| levels[i].is_none()).collect();
    if let Some(&first) = missing.first() {
        bail!(
            "obs['{key}'] has no batch for {} of {} cells (first: '{}', row {first}); \
             fill in or drop those cells",
            missing.len(),
            levels.len(),
            obs.index.get(first).map_or("?", |s| s.as_str())
        );
    }
    if names.len() == 1 && !allow_single {
        bail!(
            "obs['{key}'] has a single batch ('{}'): there is nothing to integrate; \
             use --allow-single-batch to train anyway, or choose another --batch-key",
            names[0]
        );
    }
    if names.is_empty() {
        bail!("obs['{key}'] has no cells");
    }
    let n = levels.len();
    let mut sizes = vec![0usize; names.len()];
    for l in levels.iter().flatten() {
        sizes[*l as usize] += 1;
    }
    let alone = sizes.iter().filter(|&&s| s == 1).count();
    if 2 * alone > n && n > 2 {
        bail!(
            "obs['{key}'] has {} distinct values for {n} cells, and {alone} cells are alone in \
             theirs (e.g. '{}'): that is a per-cell annotation, not a batch; choose the batch \
             column with --batch-key",
            names.len(),
            names[sizes.iter().position(|&s| s == 1).unwrap_or(0)]
        );
    }
    if names.len() * MIN_MEAN_CELLS_PER_BATCH > n {
        eprintln!(
            "warning: obs['{key}'] has {} batches for {n} cells ({:.1} cells per batch): few \
             cells per batch leave the model little to learn each batch from, and \
             --transform-batch all decodes every cell once per batch; check --batch-key",
            names.len(),
            n as f64 / names.len() as f64
        );
    }
    Ok((levels.into_iter().map(|l| l.unwrap_or(0)).collect(), names))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::anndata::XEncoding;
    use crate::data::checked::assemble;

    fn frame(col: Column) -> Frame {
        Frame::one_column("batch", col)
    }

    #[test]
    fn categorical_keeps_category_order_of_used_levels() {
        let col = Column::Categorical {
            codes: vec![2, 0, 2, 0],
            categories: vec!["z".into(), "unused".into(), "a".into()],
            ordered: false,
        };
        let (codes, names) = batch_codes(&frame(col), "batch", false).unwrap();
        assert_eq!(names, vec!["z", "a"]);
        assert_eq!(codes, vec![1, 0, 1, 0]);
    }

    #[test]
    fn numeric_batches_sort_by_value() {
        let col = Column::I64(vec![10, 9, 10, 100]);
        let (codes, names) = batch_codes(&frame(col), "batch", false).unwrap();
        assert_eq!(names, vec!["9", "10", "100"]);
        assert_eq!(codes, vec![1, 0, 1, 2]);
    }

    #[test]
    fn missing_and_single_batches_are_errors() {
        let col = Column::F64(vec![1.0, f64::NAN, f64::NAN]);
        let e = batch_codes(&frame(col), "batch", true)
            .unwrap_err()
            .to_string();
        assert!(e.contains("2 of 3 cells") && e.contains("'c1'"), "{e}");
        let col = Column::Str(vec!["a".into(), "a".into()]);
        let e = batch_codes(&frame(col.clone()), "batch", false)
            .unwrap_err()
            .to_string();
        assert!(e.contains("--allow-single-batch"), "{e}");
        assert!(batch_codes(&frame(col), "batch", true).is_ok());
        let e = batch_codes(&frame(Column::I32(vec![1])), "donor", false).unwrap_err();
        assert!(e.to_string().contains("available obs keys: batch"), "{e}");
    }

    #[test]
    fn drop_empty_removes_zero_rows_and_columns() {
        // [[1,0,0],[0,0,0],[2,0,3]]
        let x = assemble((3, 3), vec![0, 1, 1, 3], vec![0, 0, 2], vec![1.0, 2.0, 3.0]);
        let a = AnnData {
            x,
            obs: frame(Column::I32(vec![0, 1, 2])),
            var: Frame {
                repeated_names: Vec::new(),
                index: vec!["g0".into(), "g1".into(), "g2".into()],
                ..Default::default()
            },
            x_encoding: XEncoding::Csr,
            x_dtype: "float32".into(),
        };
        let (b, r) = drop_empty(&a).unwrap();
        assert_eq!(r.to_string(), "dropped 1 cell and 1 gene with zero counts");
        assert_eq!(b.obs.index, vec!["c0", "c2"]);
        assert_eq!(b.var.index, vec!["g0", "g2"]);
        assert_eq!(b.x.row_sums(), vec![1.0, 5.0]);
    }
}
