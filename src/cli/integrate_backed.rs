//! `scdreamer integrate --backed`: the same command on a file read chunk by chunk (see
//! `crate::backed`). Outputs, log and uns are those of the resident path.

use std::path::Path;
use std::time::Instant;

use crate::backed::{self, Backed, ChunkSource};
use crate::backend::cpu::Cpu;
use crate::cli::args::{IntegrateArgs, NormalizedArg, Preset};
use crate::cli::integrate::{
    Outcome, configs, finish, gene_selection, labels_of, print_dropped, print_labels, print_plan,
    transform_batch,
};
use crate::data::h5ad::{ReadOptions, RowReader};
use crate::data::validate;
use crate::model::config::{ModelConfig, Target};
use crate::pipeline::{self, SavedData};

/// With --backed, `--normalized auto` writes the dense layer only up to this many values
/// (256 MB, about two default chunks), since it is held in memory whole.
const BACKED_NORMALIZED_AUTO_MAX: usize = 64_000_000;

pub fn run(a: &IntegrateArgs, input: &Path, output: &Path, t_start: Instant) -> anyhow::Result<()> {
    let opts = ReadOptions {
        layer: a.input.layer.clone(),
        allow_non_integer: a.input.allow_non_integer,
        progress: !a.quiet,
    };
    let reader = RowReader::open(input, &opts)?;
    crate::cli::integrate::check_not_empty(input, reader.n_rows(), reader.n_cols())?;
    let n = reader.n_rows();
    let (batch, batch_names) =
        validate::batch_codes(&reader.obs, &a.input.batch_key, a.input.allow_single_batch)?;
    let labels = labels_of(a, &reader.obs)?;
    let as_batch = transform_batch(a, &batch_names)?;
    let chunk_cells = match a.chunk_cells {
        Some(0) => anyhow::bail!("--chunk-cells must be at least 1"),
        Some(c) => c,
        None => backed::default_chunk_cells(&reader),
    }
    .min(n.max(1));
    let chunks = backed::chunk_ranges(n, chunk_cells);
    eprintln!(
        "--backed: {n} cells read in {} chunk(s) of {chunk_cells} cells",
        chunks.len()
    );
    let how = gene_selection(a, &reader.var)?;
    // The authors' preset needs the maxima of its transform from the first pass.
    let authors = match a.preset {
        Preset::Authors => ModelConfig::authors_preset(1, 1, 0).target == Target::AuthorsScaled,
        Preset::Default => ModelConfig::default_preset(1, 1, 0).target == Target::AuthorsScaled,
    };
    let scan = backed::scan(
        &reader,
        &chunks,
        &batch,
        batch_names.len(),
        &how,
        authors,
        !a.quiet,
    )?;
    print_dropped(&scan.report);
    let n_labels = labels.as_ref().map_or(0, |(_, l)| l.categories.len());
    let (model_cfg, train_cfg) = configs(a, scan.genes.len(), batch_names.len(), n_labels, n)?;
    if chunk_cells < train_cfg.batch_size.min(n) {
        anyhow::bail!(
            "--chunk-cells {chunk_cells} is smaller than a minibatch ({} cells): minibatches are \
             drawn within a chunk; use at least a few minibatches' worth of cells per chunk",
            train_cfg.batch_size
        );
    }
    let (labels_key, labels) = match labels {
        Some((key, l)) => {
            print_labels(&key, &l);
            (Some(key), Some(l))
        }
        None => (None, None),
    };
    let data = Backed::new(
        reader,
        chunks,
        scan,
        batch,
        batch_names,
        labels,
        &model_cfg,
        !a.quiet,
    )?;
    print_plan(
        a,
        n,
        data.genes.len(),
        data.batch_names.len(),
        &train_cfg,
        "cpu",
    );

    let backend = Cpu::new();
    let preset = format!("{:?}", a.preset).to_lowercase();
    let mut source = ChunkSource::new(&data, &backend);
    let fitted = pipeline::fit_from(
        &backend,
        &mut source,
        model_cfg,
        train_cfg,
        &preset,
        !a.quiet,
    )?;
    let n_genes = data.genes.len();
    let normalized = match a.normalized {
        NormalizedArg::Yes => Some(as_batch),
        NormalizedArg::No => None,
        NormalizedArg::Auto if n * n_genes <= BACKED_NORMALIZED_AUTO_MAX => Some(as_batch),
        NormalizedArg::Auto => {
            eprintln!(
                "--backed: not writing layers['scdreamer_normalized'] ({n} cells x {n_genes} \
                 genes would take {:.2} GB dense in memory; use --normalized yes to write it anyway)",
                (n * n_genes * 4) as f64 / 1e9
            );
            None
        }
    };
    let inferred = data.infer(&fitted.model, a.seed, normalized, !a.quiet)?;
    let var = data.reader.var.select(&data.genes);
    let outcome = Outcome {
        input,
        output,
        t_start,
        preset,
        n_cells: n,
        n_genes,
        batch_names: &data.batch_names,
        labels: data.labels.as_ref(),
        latent: inferred.latent,
        normalized: inferred.normalized,
        predicted: inferred.predicted,
        model: &fitted.model.cfg,
        run: &fitted.run,
        log: &fitted.log,
        train_seconds: fitted.train_seconds,
        device: "cpu",
        backed_chunk_cells: Some(data.chunks.first().map_or(0, |c| c.1 - c.0)),
        save: Box::new(|dir| {
            pipeline::save_model(
                dir,
                &fitted.model,
                &fitted.run,
                &SavedData {
                    gene_names: &data.gene_names,
                    repeated_genes: &data.reader.var.repeated_names,
                    batch_key: &a.input.batch_key,
                    batch_names: &data.batch_names,
                    labels_key: labels_key.as_deref(),
                    labels: data.labels.as_ref(),
                    constants: data.constants,
                },
            )
        }),
    };
    finish(a, outcome, &data, &data.reader.obs, &var)
}
