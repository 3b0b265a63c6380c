//! The pictures of `evaluate` / `integrate`: UMAP layouts, `--figures` PNGs and the HTML
//! report.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};

use crate::cli::embedding_input::Embedding;
use crate::cli::evaluate_args::PictureArgs;
use crate::cli::evaluate_scores::{Evaluation, Job, Progress, groups_of, write_atomic};
use crate::report::curves::read_log;
use crate::report::html::{EmbeddingView, ReportData, render, umap_pngs};
use crate::report::umap::{UmapParams, umap};

/// A file name made of the embedding's name (letters, digits, `-`, `_`, `.` kept).
fn file_stem(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The training log of a scdreamer output: `<file>.log.json` beside the .h5ad it came from.
fn training_log(e: &Embedding) -> Option<(String, Vec<crate::report::curves::Series>)> {
    let file = e.file.as_ref()?;
    if !e.source.contains("scdreamer") {
        return None;
    }
    let log = file.with_extension("log.json");
    let series = read_log(&log).ok()?;
    (!series.is_empty()).then(|| (log.display().to_string(), series))
}

/// A 2-D f32 array as .npy.
fn npy_bytes(x: &[f32], rows: usize, cols: usize) -> Vec<u8> {
    let mut header =
        format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({rows}, {cols}), }}");
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    for v in x {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

pub fn pictures(
    job: &Job,
    embeddings: &[Embedding],
    eval: Option<&Evaluation>,
    pictures: &PictureArgs,
    progress: &Progress,
) -> Result<()> {
    let groups = groups_of(job.adata, job.input, job.batch_key, job.label_key)?;
    if let Some(dir) = &pictures.figures {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let n = job.adata.n_obs();
    let mut views = Vec::new();
    for (k, e) in embeddings.iter().enumerate() {
        progress.say(&format!("UMAP of {} ({n} cells x {} dims)", e.name, e.d));
        let t = Instant::now();
        let params = UmapParams {
            seed: job.seed,
            ..Default::default()
        };
        let layout = umap(&e.x, n, e.d, &params);
        progress.say(&format!(
            "UMAP of {} took {:.2} s",
            e.name,
            t.elapsed().as_secs_f64()
        ));
        views.push(EmbeddingView {
            name: e.name.clone(),
            source: e.source.clone(),
            umap: layout,
            scores: eval.map(|ev| ev.scores[k].clone()),
            log: training_log(e),
        });
    }
    let data = ReportData {
        input: job.input.display().to_string(),
        batch_key: job.batch_key,
        label_key: job.label_key,
        batch_names: &groups.batch_names,
        batches: &groups.batches,
        label_names: &groups.label_names,
        labels: &groups.labels,
        views,
    };
    if let Some(dir) = &pictures.figures {
        for v in &data.views {
            let stem = file_stem(&v.name);
            let [pb, pl] = umap_pngs(&data, v)?;
            let files: [(PathBuf, Vec<u8>); 3] = [
                (
                    dir.join(format!("{stem}_umap_by_{}.png", file_stem(job.batch_key))),
                    pb,
                ),
                (
                    dir.join(format!("{stem}_umap_by_{}.png", file_stem(job.label_key))),
                    pl,
                ),
                (
                    dir.join(format!("{stem}_umap.npy")),
                    npy_bytes(&v.umap, n, 2),
                ),
            ];
            for (path, bytes) in files {
                std::fs::write(&path, bytes)
                    .with_context(|| format!("cannot write {}", path.display()))?;
            }
        }
        progress.say(&format!("wrote the UMAP figures into {}", dir.display()));
    }
    if let Some(path) = &pictures.report {
        write_atomic(path, &render(&data)?)?;
        progress.say(&format!("wrote the report {}", path.display()));
    }
    Ok(())
}
