//! `setup` for a file read chunk by chunk (`integrate --backed`): the registry, genes and
//! transform constants that [`super::prepare`] computes on the whole matrix, from streaming
//! passes over the file (`crate::backed`), and its cells as [`Cells`] on any backend, each chunk
//! read and uploaded when visited.

use anyhow::bail;

use super::cells::{Cells, ChunkVisit};
use super::prepare::{Prepared, Request, labels_of, transform_batch_code};
use super::saved::SavedData;
use crate::backed::{self, Backed, ChunkSource};
use crate::data::h5ad::RowReader;
use crate::data::validate;
use crate::model::config::{ModelConfig, Target, TrainConfig};
use crate::model::hyper::Preset;
use crate::ops::Backend;
use crate::train::TrainSource;

/// A file set up to be read chunk by chunk.
pub struct Streamed {
    pub backed: Backed,
    pub batch_key: String,
    /// Sup: the obs key of the labels (their codes are in `backed.labels`).
    pub labels_key: Option<String>,
}

/// Everything decided before training on a streamed file (as for one in memory).
pub type PreparedStreamed = Prepared<Streamed>;

/// How the file is streamed.
pub struct StreamOptions<'a> {
    /// Cells per chunk; None: about `backed::DEFAULT_CHUNK_BYTES` of CSR per chunk.
    pub chunk_cells: Option<usize>,
    pub progress: bool,
    /// Refuses a configuration too large for memory, before the pass over the selected genes.
    pub check_fits: &'a dyn Fn(&ModelConfig, &TrainConfig) -> anyhow::Result<()>,
}

/// Validates the registry, selects the genes (the same genes as in memory, bit for bit) and
/// computes the library sizes and transform constants, streaming `reader`'s chunks.
pub fn prepare_streamed(
    reader: RowReader,
    req: &Request,
    opts: &StreamOptions,
) -> anyhow::Result<PreparedStreamed> {
    let n = reader.n_rows();
    let (batch, batch_names) =
        validate::batch_codes(&reader.obs, req.batch_key, req.allow_single_batch)?;
    let (labels, label_warnings) = labels_of(&reader.obs, req.labels_key, req.unlabeled_category)?;
    let as_batch = transform_batch_code(req.transform_batch, req.batch_key, &batch_names)?;
    let chunk_cells = match opts.chunk_cells {
        Some(0) => bail!("--chunk-cells must be at least 1"),
        Some(c) => c,
        None => backed::default_chunk_cells(&reader),
    }
    .min(n.max(1));
    let chunks = backed::chunk_ranges(n, chunk_cells);
    // The authors' preset needs the maxima of its transform from the first pass.
    let authors = match req.hyper.preset {
        Preset::Authors => ModelConfig::authors_preset(1, 1, 0).target,
        Preset::Default => ModelConfig::default_preset(1, 1, 0).target,
    } == Target::AuthorsScaled;
    let scan = backed::scan(
        &reader,
        &chunks,
        &batch,
        batch_names.len(),
        &req.genes,
        authors,
        opts.progress,
    )?;
    let report = scan.report;
    let n_labels = labels.as_ref().map_or(0, |(_, l)| l.categories.len());
    let (model_cfg, train_cfg) = req.hyper.clone().on_device(req.gpu, n).configs(
        scan.genes.len(),
        batch_names.len(),
        n_labels,
        n,
    )?;
    (opts.check_fits)(&model_cfg, &train_cfg)?;
    if chunk_cells < train_cfg.batch_size.min(n) {
        bail!(
            "--chunk-cells {chunk_cells} is smaller than a minibatch ({} cells): minibatches are \
             drawn within a chunk; use at least a few minibatches' worth of cells per chunk",
            train_cfg.batch_size
        );
    }
    let (labels_key, labels) = match labels {
        Some((key, l)) => (Some(key), Some(l)),
        None => (None, None),
    };
    let mut backed = Backed::new(
        reader,
        chunks,
        scan,
        batch,
        batch_names,
        labels,
        &model_cfg,
        opts.progress,
    )?;
    // Sup: the label loss's weights over the whole file, each chunk uploading its slice (in
    // memory, `upload_for_training` weighs them).
    backed.weigh_labels(&train_cfg);
    let data = Streamed {
        backed,
        batch_key: req.batch_key.to_string(),
        labels_key,
    };
    let configs = (model_cfg, train_cfg);
    Ok(Prepared::new(
        data,
        configs,
        as_batch,
        report,
        label_warnings,
    ))
}

impl Streamed {
    /// The cells on `backend`.
    pub fn on<B: Backend>(&self, backend: &B) -> StreamedCells<'_, B> {
        StreamedCells {
            data: &self.backed,
            backend: backend.clone(),
        }
    }

    /// Cells per chunk (the last chunk may hold fewer).
    pub fn chunk_cells(&self) -> usize {
        self.backed.chunks.first().map_or(0, |c| c.1 - c.0)
    }

    /// What a model trained on this file records about it.
    pub fn saved_data(&self) -> SavedData<'_> {
        let b = &self.backed;
        SavedData {
            gene_names: &b.gene_names,
            repeated_genes: &b.reader.var.repeated_names,
            batch_key: &self.batch_key,
            batch_names: &b.batch_names,
            labels_key: self.labels_key.as_deref(),
            labels: b.labels.as_ref(),
            constants: b.constants,
        }
    }
}

/// A streamed file's cells on a backend: each chunk read, prepared with the whole file's
/// constants and uploaded when visited.
pub struct StreamedCells<'a, B: Backend> {
    data: &'a Backed,
    backend: B,
}

impl<B: Backend> Cells<B> for StreamedCells<'_, B> {
    fn n_cells(&self) -> usize {
        self.data.n_cells()
    }

    fn for_each_chunk(&self, visit: &mut ChunkVisit<'_, B>) -> anyhow::Result<()> {
        for c in 0..self.data.chunks.len() {
            let (prep, data) = self.data.load_chunk(c, &self.backend)?;
            visit(&prep, &data)?;
        }
        Ok(())
    }

    fn train_source(&self) -> Box<dyn TrainSource<B> + '_> {
        Box::new(ChunkSource::new(self.data, &self.backend))
    }
}
