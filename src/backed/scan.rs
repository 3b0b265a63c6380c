//! The setup passes over every gene of the file: value checks, per-cell totals, per-gene maxima
//! of the input transforms, and the gene selection.

use anyhow::{Result, bail};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::data::Csr;
use crate::data::h5ad::RowReader;
use crate::data::hvg::GeneSelection;
use crate::data::hvg::streamed::{StreamedFlavor, StreamedHvg};
use crate::data::validate::DropReport;
use crate::model::dataset::{authors_value, log_norm_value, norm_scale};

/// What the setup passes learn about the file.
pub struct Scan {
    /// Each cell's total count over every gene (normalize_total's denominator).
    pub total: Vec<f32>,
    /// The genes chosen (file indices, in model order).
    pub genes: Vec<usize>,
    /// Cells and genes without counts.
    pub report: DropReport,
    /// Per file gene: max over cells of `log_norm_value` (the encoder's input scale).
    pub max_log_norm: Vec<f32>,
    /// Per file gene: max over cells of `authors_value` (the authors' preset only).
    pub max_authors: Option<Vec<f32>>,
}

/// A progress bar over the stored values of one pass (hidden when `show` is false).
pub(super) fn pass_bar(show: bool, values: u64, label: &str) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::with_draw_target(Some(values), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template(
        "{msg} [{bar:40}] {percent}% ({human_pos}/{human_len} values, {eta} left)",
    ) {
        pb.set_style(style.progress_chars("=> "));
    }
    pb.set_message(label.to_string());
    pb
}

/// Streams the file's chunks (every gene) and chooses the genes like
/// `data::hvg::select_genes` on the whole matrix, with the same result. `authors`: also keep
/// the maxima of the authors' transform. Passes: one for the checks, totals and the first
/// HVG sums; a second for seurat_v3's clipped sums; one more only when some cells have
/// stored values but no counts (the HVG sums need the number of cells with counts up front).
pub fn scan(
    reader: &RowReader,
    chunks: &[(usize, usize)],
    batch: &[u32],
    n_batches: usize,
    how: &GeneSelection,
    authors: bool,
    progress: bool,
) -> Result<Scan> {
    let (n, g) = (reader.n_rows(), reader.n_cols());
    let stored = reader.stored_values(0, n);
    let flavor = match how {
        GeneSelection::SeuratV3(_) => Some(StreamedFlavor::SeuratV3),
        GeneSelection::Seurat(_) => Some(StreamedFlavor::Seurat),
        _ => None,
    };
    let n_top = match how {
        GeneSelection::SeuratV3(k) | GeneSelection::Seurat(k) => *k,
        _ => 0,
    };
    // Cells with counts are (almost always) the cells with stored values: guess their number
    // so the first HVG sums can ride along the checking pass.
    let guess = (0..n).filter(|&r| reader.has_stored_values(r)).count();
    let mut hvg = flavor.map(|f| StreamedHvg::new(f, n_top, n_batches, g, guess));

    let mut total = Vec::with_capacity(n);
    let mut col_sum = vec![0.0f64; g];
    let mut max_log_norm = vec![0.0f32; g];
    let mut max_authors = authors.then(|| vec![0.0f32; g]);
    let passes = if flavor == Some(StreamedFlavor::SeuratV3) {
        2
    } else {
        1
    };
    let pb = pass_bar(progress, stored, &format!("reading X (pass 1/{passes})"));
    for &(r0, r1) in chunks {
        let x = reader.read_rows(r0, r1)?;
        let mut with_counts = Vec::with_capacity(r1 - r0);
        for i in 0..x.n_rows {
            let (idx, val) = x.row(i);
            let t: f64 = val.iter().map(|&v| v as f64).sum();
            if t > 0.0 {
                with_counts.push(i);
            }
            let t = t as f32;
            total.push(t);
            let scale = norm_scale(t);
            for (&j, &v) in idx.iter().zip(val) {
                let j = j as usize;
                col_sum[j] += v as f64;
                max_log_norm[j] = max_log_norm[j].max(log_norm_value(v, scale));
                if let Some(m) = max_authors.as_mut() {
                    m[j] = m[j].max(authors_value(v, scale));
                }
            }
        }
        if let Some(h) = hvg.as_mut() {
            h.add_first(&x, &with_counts, &batch[r0..r1], &total[r0..r1]);
        }
        pb.inc(reader.stored_values(r0, r1));
    }
    pb.finish_and_clear();

    let report = DropReport {
        cells_dropped: total.iter().filter(|&&t| t == 0.0).count(),
        genes_dropped: col_sum.iter().filter(|&&s| s == 0.0).count(),
    };
    if report.cells_dropped == n || report.genes_dropped == g {
        bail!(
            "{} has no non-zero counts: nothing to integrate",
            reader.path()
        );
    }
    let nonzero_genes: Vec<usize> = (0..g).filter(|&j| col_sum[j] > 0.0).collect();
    let genes = match (how, hvg) {
        (GeneSelection::Given(genes), _) => genes.clone(),
        (_, Some(_)) if n_top >= nonzero_genes.len() => nonzero_genes,
        (_, Some(mut h)) => {
            let cells: Vec<bool> = total.iter().map(|&t| t > 0.0).collect();
            let n_cells = cells.iter().filter(|&&c| c).count();
            let mut per_batch = vec![0usize; n_batches];
            for (&b, _) in batch.iter().zip(&cells).filter(|(_, c)| **c) {
                per_batch[b as usize] += 1;
            }
            if n_cells != guess {
                // Some cells store only zeros: redo the first sums with the right partition.
                h = StreamedHvg::new(h.flavor(), n_top, n_batches, g, n_cells);
                stream(
                    reader,
                    chunks,
                    &cells,
                    progress,
                    "reading X again",
                    |x, rows, r0| {
                        h.add_first(
                            x,
                            rows,
                            &batch[r0..r0 + x.n_rows],
                            &total[r0..r0 + x.n_rows],
                        )
                    },
                )?;
            }
            let res = match h.end_first(&nonzero_genes, &per_batch)? {
                Some(res) => res,
                None => {
                    stream(
                        reader,
                        chunks,
                        &cells,
                        progress,
                        "reading X (pass 2/2)",
                        |x, rows, r0| h.add_second(x, rows, &batch[r0..r0 + x.n_rows]),
                    )?;
                    h.finish()?
                }
            };
            res.selected.iter().map(|&k| nonzero_genes[k]).collect()
        }
        _ => nonzero_genes,
    };
    Ok(Scan {
        total,
        genes,
        report,
        max_log_norm,
        max_authors,
    })
}

/// One more pass over every gene: `f(block, its rows with counts, first row)` per chunk.
fn stream(
    reader: &RowReader,
    chunks: &[(usize, usize)],
    with_counts: &[bool],
    progress: bool,
    label: &str,
    mut f: impl FnMut(&Csr, &[usize], usize),
) -> Result<()> {
    let pb = pass_bar(progress, reader.stored_values(0, reader.n_rows()), label);
    for &(r0, r1) in chunks {
        let x = reader.read_rows(r0, r1)?;
        let rows: Vec<usize> = (0..r1 - r0).filter(|&i| with_counts[r0 + i]).collect();
        f(&x, &rows, r0);
        pb.inc(reader.stored_values(r0, r1));
    }
    pb.finish_and_clear();
    Ok(())
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use super::*;
    use crate::backed::chunk_ranges;
    use crate::data::h5ad::{ReadOptions, Results, write_h5ad};
    use crate::data::hvg::select_genes;
    use crate::data::{AnnData, Column, Frame};

    /// Overdispersed counts of `n` cells x `g` genes in 3 batches, with an empty cell, cells that
    /// store only zeros (they have stored values but no counts), and a gene without counts.
    fn counts(n: usize, g: usize, seed: u64) -> (Csr, Vec<u32>) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut x = Csr {
            n_rows: n,
            n_cols: g,
            indptr: vec![0],
            ..Default::default()
        };
        let batch: Vec<u32> = (0..n).map(|i| (i % 3) as u32).collect();
        for (i, &b) in batch.iter().enumerate() {
            for j in 0..g {
                let rate = (1 + j % 7) as f64 * (1.0 + b as f64) / 8.0;
                let stored_zero = i % 41 == 5;
                if j == 4 || i == 2 {
                    continue;
                }
                if stored_zero {
                    if j % 5 == 0 {
                        x.indices.push(j as u32);
                        x.data.push(0.0);
                    }
                    continue;
                }
                if rng.r#gen::<f64>() < 0.3 {
                    let v = (rng.r#gen::<f64>() * rate * 6.0).floor() + 1.0;
                    x.indices.push(j as u32);
                    x.data.push(v as f32);
                }
            }
            x.indptr.push(x.indices.len() as u64);
        }
        (x, batch)
    }

    fn anndata(x: Csr, batch: &[u32]) -> AnnData {
        let obs = Frame {
            repeated_names: Vec::new(),
            index: (0..x.n_rows).map(|i| format!("c{i}")).collect(),
            index_name: "_index".into(),
            columns: vec![(
                "batch".into(),
                Column::Categorical {
                    codes: batch.iter().map(|&b| b as i32).collect(),
                    categories: vec!["a".into(), "b".into(), "c".into()],
                    ordered: false,
                },
            )],
        };
        let var = Frame {
            repeated_names: Vec::new(),
            index: (0..x.n_cols).map(|j| format!("g{j}")).collect(),
            index_name: "_index".into(),
            columns: vec![],
        };
        AnnData {
            x,
            obs,
            var,
            x_encoding: crate::data::anndata::XEncoding::Csr,
            x_dtype: "float32".into(),
        }
    }

    #[test]
    fn streamed_selection_equals_the_resident_one() {
        let dir = tempfile::tempdir().unwrap();
        let (x, batch) = counts(400, 90, 7);
        let adata = anndata(x, &batch);
        let path = dir.path().join("x.h5ad");
        write_h5ad(&path, &adata, &Results::default()).unwrap();
        let reader = RowReader::open(&path, &ReadOptions::default()).unwrap();
        let mut checked = 0;
        for how in [
            GeneSelection::SeuratV3(25),
            GeneSelection::Seurat(25),
            GeneSelection::SeuratV3(1000),
            GeneSelection::All,
            GeneSelection::Given(vec![7, 3, 60]),
        ] {
            let expected = select_genes(&adata, &batch, 3, &how).unwrap();
            for chunk in [37, 400] {
                let chunks = chunk_ranges(400, chunk);
                let s = scan(&reader, &chunks, &batch, 3, &how, true, false).unwrap();
                assert_eq!(s.genes, expected, "{how:?}, chunks of {chunk}");
                assert_eq!(s.report.genes_dropped, 1);
                // The empty cell and the cells storing zeros only.
                assert_eq!(s.report.cells_dropped, 1 + 10);
                let totals: Vec<f32> = adata.x.row_sums().iter().map(|&t| t as f32).collect();
                assert_eq!(s.total, totals);
                checked += 1;
            }
        }
        assert_eq!(checked, 10);
    }
}
