//! `integrate`'s data from its flags: the input read whole ([`pipeline::prepare()`]) or, with
//! `--backed`, streamed ([`pipeline::prepare_streamed`]), and the lines that describe it.

use std::path::Path;

use crate::cli::args::IntegrateArgs;
use crate::cli::integrate_checks::check_not_empty;
use crate::cli::integrate_config::{check_fits, gene_selection, hyper_params};
use crate::data::AnnData;
use crate::data::h5ad::{self, ReadOptions, RowReader};
use crate::data::labels::CellLabels;
use crate::data::validate::DropReport;
use crate::model::config::TrainConfig;
use crate::pipeline::{self, Prepared, Request, Setup, StreamOptions, Streamed};

/// The data set of a run.
pub(crate) enum Data {
    /// X read whole (and moved into the setup); obs and var stay in `adata`.
    Resident { adata: AnnData, setup: Setup },
    /// X read chunk by chunk (`--backed`).
    Streamed(Streamed),
}

/// The data set and what was decided from it.
pub(crate) type Loaded = Prepared<Data>;

/// Reads and sets up the input of `a` (whole, or streamed with `--backed`), then prints what
/// will run on `device`.
pub(crate) fn load(a: &IntegrateArgs, input: &Path, device: &str) -> anyhow::Result<Loaded> {
    let opts = ReadOptions {
        layer: a.input.layer.clone(),
        allow_non_integer: a.input.allow_non_integer,
        progress: !a.quiet,
    };
    let hyper = hyper_params(a);
    let source = input.display().to_string();
    let request = |genes| Request {
        source: &source,
        batch_key: &a.input.batch_key,
        allow_single_batch: a.input.allow_single_batch,
        labels_key: a.labels_key.as_deref(),
        unlabeled_category: &a.unlabeled_category,
        transform_batch: &a.transform_batch,
        genes,
        hyper: &hyper,
        gpu: device == "cuda",
    };
    let (loaded, n_cells) = if a.backed {
        let reader = RowReader::open(input, &opts)?;
        let n = reader.n_rows();
        check_not_empty(input, n, reader.n_cols())?;
        let genes = gene_selection(a, &reader.var)?;
        let stream = StreamOptions {
            chunk_cells: a.chunk_cells,
            progress: !a.quiet,
            check_fits: &|m, t| check_fits(m, t, n),
        };
        let prepared = pipeline::prepare_streamed(reader, &request(genes), &stream)?;
        eprintln!(
            "--backed: {n} cells read in {} chunk(s) of {} cells",
            prepared.data.backed.chunks.len(),
            prepared.data.chunk_cells()
        );
        (prepared.map_data(Data::Streamed), n)
    } else {
        if a.chunk_cells.is_some() {
            anyhow::bail!("--chunk-cells needs --backed");
        }
        let mut adata = h5ad::read_h5ad(input, &opts)?;
        check_not_empty(input, adata.n_obs(), adata.n_vars())?;
        let genes = gene_selection(a, &adata.var)?;
        let prepared = pipeline::prepare(&mut adata, &request(genes))?;
        let n = adata.obs.len();
        check_fits(&prepared.model_cfg, &prepared.train_cfg, n)?;
        (
            prepared.map_data(|setup| Data::Resident { adata, setup }),
            n,
        )
    };
    for w in &loaded.label_warnings {
        eprintln!("warning: {w}");
    }
    print_dropped(&loaded.report);
    let (n_genes, batch_names, labels) = loaded.data.described();
    if let (Some(key), Some(l)) = (&a.labels_key, labels) {
        print_labels(key, l);
    }
    print_plan(
        a,
        n_cells,
        n_genes,
        batch_names.len(),
        &loaded.train_cfg,
        device,
    );
    Ok(loaded)
}

impl Data {
    /// The genes used, the batch names and Sup's labels.
    pub(crate) fn described(&self) -> (usize, &[String], Option<&CellLabels>) {
        match self {
            Data::Resident { setup, .. } => (
                setup.genes.len(),
                &setup.prep.batch_names,
                setup.prep.labels.as_ref(),
            ),
            Data::Streamed(s) => (
                s.backed.genes.len(),
                &s.backed.batch_names,
                s.backed.labels.as_ref(),
            ),
        }
    }
}

fn print_dropped(report: &DropReport) {
    if report.cells_dropped + report.genes_dropped > 0 {
        eprintln!(
            "{report} (they stay in the output; empty cells are embedded but not trained on)"
        );
    }
}

fn print_labels(key: &str, l: &CellLabels) {
    eprintln!(
        "scDREAMER-Sup: {} of {} cells labelled in obs['{key}'], {} types",
        l.n_labelled(),
        l.codes.len(),
        l.categories.len()
    );
}

fn print_plan(
    a: &IntegrateArgs,
    n_cells: usize,
    n_genes: usize,
    n_batches: usize,
    t: &TrainConfig,
    device: &str,
) {
    eprintln!(
        "scdreamer {}: {} cells x {} genes, {} batches ({}); preset {}, {} epochs, batch size {}, device {device}",
        crate::VERSION,
        n_cells,
        n_genes,
        n_batches,
        a.input.batch_key,
        format!("{:?}", a.preset).to_lowercase(),
        t.epochs,
        t.batch_size
    );
}
