//! The streamed data set: per-cell vectors in memory, counts read a chunk at a time.

use anyhow::{Context, Result, bail};
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use super::scan::{Scan, pass_bar};
use crate::data::Csr;
use crate::data::h5ad::{CsrBlocks, GeneMap, RowReader};
use crate::data::labels::CellLabels;
use crate::model::config::{ModelConfig, Target, TrainConfig};
use crate::model::dataset::{
    DeviceData, PreparedData, TransformConstants, authors_value, library_logs, library_prior,
    norm_scale,
};
use crate::ops::Backend;
use crate::train::{TrainSource, Visit};

/// A data set read from disk chunk by chunk: what `pipeline::Setup` holds, minus the counts.
pub struct Backed {
    pub reader: RowReader,
    /// Row ranges of the chunks, in file order.
    pub chunks: Vec<(usize, usize)>,
    /// Selected genes (file indices, model order) and their names.
    pub genes: Vec<usize>,
    pub gene_names: Vec<String>,
    gene_map: GeneMap,
    pub batch: Vec<u32>,
    pub batch_names: Vec<String>,
    /// Per cell: total count over every gene (each chunk's selected genes give the library
    /// sizes when it is read).
    total: Vec<f32>,
    pub constants: TransformConstants,
    pub labels: Option<CellLabels>,
    /// Sup: per-cell weights of the label loss over the whole file ([`Backed::weigh_labels`]),
    /// each chunk's slice handed to its prepared data.
    pub label_weights: Option<Vec<f32>>,
    /// Stored values of the selected genes (the output's X).
    nnz: usize,
    /// Cells with counts in the selected genes, in all and per chunk.
    n_train: usize,
    train_per_chunk: Vec<usize>,
    cfg: ModelConfig,
}

impl Backed {
    /// One pass over the selected genes: library sizes, the transform constants (the same
    /// values `PreparedData::new` computes on the whole matrix) and the training cells.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        reader: RowReader,
        chunks: Vec<(usize, usize)>,
        scan: Scan,
        batch: Vec<u32>,
        batch_names: Vec<String>,
        labels: Option<CellLabels>,
        cfg: &ModelConfig,
        progress: bool,
    ) -> Result<Backed> {
        let Scan {
            total,
            genes,
            max_log_norm,
            max_authors,
            ..
        } = scan;
        let gene_map = GeneMap::new(&genes, reader.n_cols())?;
        let pick_max = |m: &[f32]| {
            let v = genes.iter().fold(0.0f32, |a, &j| a.max(m[j]));
            if v > 0.0 { v } else { 1.0 }
        };
        let log_norm_max = pick_max(&max_log_norm);
        let authors = cfg.target == Target::AuthorsScaled;
        let authors_max = match (&max_authors, authors) {
            (Some(m), true) => pick_max(m),
            (None, true) => bail!("internal: the authors' transform maxima were not scanned"),
            _ => 1.0,
        };
        let n = reader.n_rows();
        let mut logs = Vec::with_capacity(if authors { n } else { 0 });
        let mut nnz = 0usize;
        let mut train_per_chunk = Vec::with_capacity(chunks.len());
        let pb = pass_bar(
            progress,
            reader.stored_values(0, n),
            "reading the selected genes",
        );
        for &(r0, r1) in &chunks {
            let mut counts = reader.read_rows_genes(r0, r1, &gene_map)?;
            nnz += counts.nnz();
            let lib: Vec<f32> = counts.row_sums().iter().map(|&s| s as f32).collect();
            train_per_chunk.push(lib.iter().filter(|&&l| l > 0.0).count());
            if authors {
                // The authors' scaled values as `PreparedData::new` computes them, in place.
                for r in 0..counts.n_rows {
                    let scale = norm_scale(total[r0 + r]);
                    let (a, b) = (counts.indptr[r] as usize, counts.indptr[r + 1] as usize);
                    for v in &mut counts.data[a..b] {
                        *v = authors_value(*v, scale) / authors_max;
                    }
                }
                logs.extend(library_logs(&counts, cfg.library_prior_plus1));
            }
            pb.inc(reader.stored_values(r0, r1));
        }
        pb.finish_and_clear();
        let n_train: usize = train_per_chunk.iter().sum();
        if n_train < 2 {
            bail!(
                "only {n_train} cell(s) have counts in the {} selected genes: nothing to train on",
                genes.len()
            );
        }
        let gene_names = genes.iter().map(|&j| reader.var.index[j].clone()).collect();
        Ok(Backed {
            reader,
            chunks,
            genes,
            gene_names,
            gene_map,
            batch,
            batch_names,
            total,
            constants: TransformConstants {
                log_norm_max,
                authors_max,
                library_prior: if authors {
                    library_prior(&logs)
                } else {
                    (0.0, 1.0)
                },
            },
            labels,
            label_weights: None,
            nnz,
            n_train,
            train_per_chunk,
            cfg: cfg.clone(),
        })
    }

    pub fn n_cells(&self) -> usize {
        self.reader.n_rows()
    }

    /// Sup: weighs the label loss at `train.label_balance` from the types' shares of the whole
    /// file's labels (`TrainConfig::label_weights`), as `PreparedData::weigh_labels` does for
    /// data in memory; nothing without labels.
    pub fn weigh_labels(&mut self, train: &TrainConfig) {
        self.label_weights = self.labels.as_ref().map(|l| train.label_weights(l));
    }

    /// Chunk `c` as the model reads it: the selected genes' counts of its cells, prepared with
    /// the whole file's transform constants.
    pub fn prepare_chunk(&self, c: usize) -> Result<PreparedData> {
        let (r0, r1) = self.chunks[c];
        let counts = self.reader.read_rows_genes(r0, r1, &self.gene_map)?;
        let mut prep = PreparedData::new(
            counts,
            &self.total[r0..r1],
            self.batch[r0..r1].to_vec(),
            self.batch_names.clone(),
            &self.cfg,
            Some(self.constants),
        );
        prep.labels = self.labels.as_ref().map(|l| CellLabels {
            codes: l.codes[r0..r1].to_vec(),
            categories: l.categories.clone(),
        });
        prep.label_weights = self.label_weights.as_ref().map(|w| w[r0..r1].to_vec());
        Ok(prep)
    }

    /// Chunk `c` prepared and uploaded to `backend`.
    pub fn load_chunk<B: Backend>(
        &self,
        c: usize,
        backend: &B,
    ) -> Result<(PreparedData, DeviceData<B>)> {
        let mut prep = self.prepare_chunk(c)?;
        // The chunk's counts move to the backend (held once on the CPU, not twice).
        let data = DeviceData::upload_taking(backend, &mut prep)
            .context("cannot upload a chunk to the device")?;
        Ok((prep, data))
    }
}

/// The output's X (raw counts of the selected genes), re-read chunk by chunk while writing.
impl CsrBlocks for Backed {
    fn n_rows(&self) -> usize {
        self.n_cells()
    }
    fn n_cols(&self) -> usize {
        self.genes.len()
    }
    fn nnz(&self) -> usize {
        self.nnz
    }
    fn for_each_block(&self, f: &mut dyn FnMut(&Csr) -> Result<()>) -> Result<()> {
        for &(r0, r1) in &self.chunks {
            f(&self.reader.read_rows_genes(r0, r1, &self.gene_map)?)?;
        }
        Ok(())
    }
}

/// The trainer's cells read from disk: each epoch visits the chunks in a shuffled order
/// (the trainer's seeded stream), shuffles the cells of each chunk, and the trainer cuts
/// minibatches within the chunk (the last cells of a chunk that do not fill one are left out
/// of that epoch, like the last cells of the resident path's epoch).
pub struct ChunkSource<'a, B: Backend> {
    data: &'a Backed,
    backend: B,
    order: Vec<usize>,
    /// Each chunk's training rows, reshuffled in place at each visit as the resident path's
    /// permutation is (one chunk holding every cell trains exactly as without --backed).
    perms: Vec<Option<Vec<u32>>>,
}

impl<'a, B: Backend> ChunkSource<'a, B> {
    pub fn new(data: &'a Backed, backend: &B) -> Self {
        ChunkSource {
            data,
            backend: backend.clone(),
            order: (0..data.chunks.len()).collect(),
            perms: vec![None; data.chunks.len()],
        }
    }
}

impl<B: Backend> TrainSource<B> for ChunkSource<'_, B> {
    fn n_train(&self) -> usize {
        self.data.n_train
    }

    fn steps_per_epoch(&self, batch_size: usize) -> usize {
        self.data
            .train_per_chunk
            .iter()
            .map(|&k| k / batch_size)
            .sum()
    }

    fn epoch(&mut self, rng: &mut ChaCha8Rng, visit: &mut Visit<'_, B>) -> Result<()> {
        self.order.shuffle(rng);
        for &c in &self.order {
            let (prep, data) = self.data.load_chunk(c, &self.backend)?;
            let rows = self.perms[c].get_or_insert_with(|| {
                (0..prep.n_cells() as u32)
                    .filter(|&r| prep.library[r as usize] > 0.0)
                    .collect()
            });
            rows.shuffle(rng);
            visit(&data, &prep, rows, rng)?;
        }
        Ok(())
    }
}
