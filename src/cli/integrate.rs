//! `scdreamer integrate`: read, validate, choose genes, train, write the results.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use serde_json::json;

use crate::backend::Backend;
use crate::backend::cpu::Cpu;
use crate::backend::device::Device;
use crate::cli::args::{
    HvgFlavor, IntegrateArgs, Likelihood as LikelihoodArg, NormalizedArg, Preset,
};
use crate::data::dense::Dense;
use crate::data::h5ad::{self, ReadOptions, Results};
use crate::data::{AnnData, validate};
use crate::model::config::{Likelihood, ModelConfig, TrainConfig};
use crate::pipeline::{self, GeneSelection, Setup};

/// Above this many cells x genes values, `--normalized auto` skips the dense layer (800 MB).
const NORMALIZED_AUTO_MAX: usize = 200_000_000;

/// Resolves `--input`, falling back to the bundled demo (and saying so).
pub fn resolve_input(input: &Option<PathBuf>) -> anyhow::Result<(PathBuf, bool)> {
    match input {
        Some(p) => Ok((p.clone(), false)),
        None => {
            eprintln!(
                "no --input given: running on the bundled demo (cellbench_3cl_10xsub, 1,345 cells, 3 batches)"
            );
            Ok((crate::data::demo::demo_path()?, true))
        }
    }
}

fn default_output(input: &Path, demo: bool) -> PathBuf {
    if demo {
        return PathBuf::from("demo_scdreamer.h5ad");
    }
    let stem = input.file_stem().and_then(|s| s.to_str()).unwrap_or("out");
    input.with_file_name(format!("{stem}_scdreamer.h5ad"))
}

fn gene_selection(a: &IntegrateArgs, adata: &AnnData) -> anyhow::Result<GeneSelection> {
    if a.genes.all_genes {
        return Ok(GeneSelection::All);
    }
    if let Some(f) = &a.genes.genes {
        return Ok(GeneSelection::Given(
            crate::data::preprocess::genes_from_file(f, &adata.var.index)?,
        ));
    }
    let flavor = a.genes.hvg_flavor.unwrap_or(match a.preset {
        Preset::Authors => HvgFlavor::Seurat,
        Preset::Default => HvgFlavor::SeuratV3,
    });
    Ok(match flavor {
        HvgFlavor::SeuratV3 => GeneSelection::SeuratV3(a.genes.n_top_genes),
        HvgFlavor::Seurat => GeneSelection::Seurat(a.genes.n_top_genes),
    })
}

/// Model and training configuration from the preset and the flags.
pub fn configs(
    a: &IntegrateArgs,
    n_genes: usize,
    n_batches: usize,
    n_cells: usize,
) -> anyhow::Result<(ModelConfig, TrainConfig)> {
    let (mut m, mut t) = match a.preset {
        Preset::Default => (
            ModelConfig::default_preset(n_genes, n_batches, 0),
            TrainConfig::default_preset(n_cells, a.seed),
        ),
        Preset::Authors => (
            ModelConfig::authors_preset(n_genes, n_batches, 0),
            TrainConfig::authors_preset(a.seed),
        ),
    };
    if let Some(l) = a.latent {
        m.latent = l;
    }
    if let Some(h) = &a.hidden {
        if h.is_empty() || h.contains(&0) {
            anyhow::bail!("--hidden needs one or more positive widths, e.g. 512 or 512,256");
        }
        m.hidden = h.clone();
    }
    if let Some(w) = a.batch_adv_weight {
        m.batch_adv_weight = w;
    }
    if let Some(w) = a.disc_weight {
        m.disc_weight = w;
    }
    if let Some(w) = a.kl_weight {
        m.kl_weight = w;
    }
    m.likelihood = match a.likelihood {
        LikelihoodArg::Zinb => Likelihood::Zinb,
        LikelihoodArg::Nb => Likelihood::Nb,
    };
    if let Some(e) = a.epochs {
        t.epochs = e;
    }
    if let Some(b) = a.batch_size {
        t.batch_size = b;
        // The default epoch budget is in steps: follow the batch size the user chose.
        if a.epochs.is_none() && a.preset == Preset::Default {
            t.epochs = crate::model::config::default_epochs(n_cells, b);
        }
    }
    if let Some(lr) = a.lr {
        // Keep the adversaries' learning rates in the preset's ratio to the AE's.
        let r = lr / t.lr_ae;
        t.lr_ae = lr;
        t.lr_dis *= r;
        t.lr_bc *= r;
    }
    if m.latent == 0 || t.epochs == 0 || t.batch_size < 2 {
        anyhow::bail!(
            "--latent and --epochs must be at least 1 and --batch-size at least 2 (got {}, {}, {})",
            m.latent,
            t.epochs,
            t.batch_size
        );
    }
    if !(t.lr_ae > 0.0 && t.lr_ae.is_finite()) {
        anyhow::bail!("--lr must be a positive number (got {})", t.lr_ae);
    }
    Ok((m, t))
}

pub fn run(a: &IntegrateArgs) -> anyhow::Result<()> {
    let t_start = Instant::now();
    if let Some(n) = a.threads {
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build_global()
            .context("cannot set the number of threads")?;
    }
    let (input, demo) = resolve_input(&a.input.input)?;
    let output = a
        .output
        .clone()
        .unwrap_or_else(|| default_output(&input, demo));
    h5ad::check_output_path(&output, &input)?;
    h5ad::install_ctrlc_cleanup();
    let device = crate::backend::device::resolve(a.device.into())?;
    eprintln!("{}", device.describe());
    let device_name = if device.is_cuda() { "cuda" } else { "cpu" };

    let opts = ReadOptions {
        layer: a.input.layer.clone(),
        allow_non_integer: a.input.allow_non_integer,
        progress: !a.quiet,
    };
    let mut adata = h5ad::read_h5ad(&input, &opts)?;
    let (batch, batch_names) =
        validate::batch_codes(&adata.obs, &a.input.batch_key, a.input.allow_single_batch)?;
    // scDREAMER-Sup when a labels column is given.
    let labels = match &a.labels_key {
        Some(key) => {
            let (labels, warnings) =
                crate::model::sup::cell_labels(&adata.obs, key, &a.unlabeled_category)?;
            for w in &warnings {
                eprintln!("warning: {w}");
            }
            Some((key.clone(), labels))
        }
        None => None,
    };
    // Fail before training on a batch name that does not exist.
    let as_batch = match a.transform_batch.as_str() {
        "all" => None,
        b => Some(
            batch_names
                .iter()
                .position(|n| n == b)
                .map(|i| i as u32)
                .with_context(|| {
                    format!(
                        "--transform-batch '{b}' is not a batch of '{}'; batches: {}",
                        a.input.batch_key,
                        batch_names.join(", ")
                    )
                })?,
        ),
    };
    let report = validate::DropReport {
        cells_dropped: adata.x.row_sums().iter().filter(|&&s| s == 0.0).count(),
        genes_dropped: adata.x.col_sums().iter().filter(|&&s| s == 0.0).count(),
    };
    if report.cells_dropped == adata.n_obs() || report.genes_dropped == adata.n_vars() {
        anyhow::bail!(
            "{} has no non-zero counts: nothing to integrate",
            input.display()
        );
    }
    if report.cells_dropped + report.genes_dropped > 0 {
        eprintln!(
            "{report} (they stay in the output; empty cells are embedded but not trained on)"
        );
    }
    let how = gene_selection(a, &adata)?;
    let genes = pipeline::select_genes(&adata, &batch, batch_names.len(), &how)?;
    let (mut model_cfg, train_cfg) = configs(a, genes.len(), batch_names.len(), adata.n_obs())?;
    if let Some((_, l)) = &labels {
        model_cfg.n_labels = l.categories.len();
    }
    let mut setup = Setup::new(
        &adata,
        &a.input.batch_key,
        batch,
        batch_names,
        genes,
        &model_cfg,
        None,
    )?;
    if let Some((key, l)) = labels {
        eprintln!(
            "scDREAMER-Sup: {} of {} cells labelled in obs['{key}'], {} types",
            l.n_labelled(),
            l.codes.len(),
            l.categories.len()
        );
        setup = setup.with_labels(&key, l);
    }
    // The full-gene matrix is no longer needed: free it before training (atlas-scale memory).
    adata.x = crate::data::Csr::default();
    eprintln!(
        "scdreamer {}: {} cells x {} genes, {} batches ({}); preset {}, {} epochs, batch size {}, device {}",
        crate::VERSION,
        adata.obs.len(),
        setup.genes.len(),
        setup.prep.batch_names.len(),
        a.input.batch_key,
        format!("{:?}", a.preset).to_lowercase(),
        train_cfg.epochs,
        train_cfg.batch_size,
        device_name
    );

    let job = Job {
        a,
        t_start,
        input,
        output,
        adata,
        setup,
        model_cfg,
        train_cfg,
        as_batch,
    };
    match device {
        Device::Cpu { .. } => train_and_write(&Cpu::new(), job),
        #[cfg(feature = "cuda")]
        Device::Cuda(rt) => train_and_write(&crate::backend::device::cuda_backend(rt)?, job),
    }
}

/// Everything `run` prepared for training, handed to the backend-generic second half.
struct Job<'a> {
    a: &'a IntegrateArgs,
    t_start: Instant,
    input: PathBuf,
    output: PathBuf,
    adata: AnnData,
    setup: Setup,
    model_cfg: ModelConfig,
    train_cfg: TrainConfig,
    as_batch: Option<u32>,
}

/// Trains on `backend`, then writes the embedding, the normalized layer, the log and the model.
fn train_and_write<B: Backend>(backend: &B, job: Job) -> anyhow::Result<()> {
    let Job {
        a,
        t_start,
        input,
        output,
        adata,
        mut setup,
        model_cfg,
        train_cfg,
        as_batch,
    } = job;
    let preset = format!("{:?}", a.preset).to_lowercase();
    let trained = pipeline::fit(backend, &setup, model_cfg, train_cfg, &preset, !a.quiet)?;
    let latent = trained.latent(&setup.prep, a.seed);
    let n = adata.obs.len();
    let write_normalized = match a.normalized {
        NormalizedArg::Yes => true,
        NormalizedArg::No => false,
        NormalizedArg::Auto => n * setup.genes.len() <= NORMALIZED_AUTO_MAX,
    };
    if !write_normalized && a.normalized == NormalizedArg::Auto {
        eprintln!(
            "not writing layers['scdreamer_normalized']: {n} cells x {} genes would take {:.1} GB dense (use --normalized yes)",
            setup.genes.len(),
            (n * setup.genes.len() * 4) as f64 / 1e9
        );
    }
    let normalized = write_normalized.then(|| trained.normalized(&setup.prep, as_batch));
    let label_categories = setup.prep.labels.as_ref().map(|l| l.categories.clone());
    let predicted = trained.predict_labels(&setup.prep);
    if latent.iter().any(|v| !v.is_finite()) {
        anyhow::bail!("the embedding has non-finite values; nothing was written");
    }

    // Output: all input cells, the genes used, raw counts in X (the training counts themselves:
    // no second copy).
    let out_data = AnnData {
        x: std::mem::take(&mut setup.prep.counts),
        obs: adata.obs.clone(),
        var: adata.var.select(&setup.genes),
        x_encoding: adata.x_encoding.clone(),
        x_dtype: adata.x_dtype.clone(),
    };
    let latent_dim = trained.model.cfg.latent;
    let log_path = output.with_extension("log.csv");
    let uns = json!({
        "version": crate::VERSION,
        "preset": preset,
        "input": input.display().to_string(),
        "batch_key": a.input.batch_key,
        "batch_categories": setup.prep.batch_names,
        "transform_batch": a.transform_batch,
        "normalized_layer": "decoder rho of the posterior mean, scaled to 10,000 counts per cell; averaged over batches when transform_batch is 'all'",
        "embedding": format!("{:?}", trained.model.cfg.embed).to_lowercase(),
        "device": backend.name(),
        "threads": rayon::current_num_threads(),
        "seed": a.seed,
        "train_seconds": trained.train_seconds,
        "total_seconds": t_start.elapsed().as_secs_f64(),
        "model": serde_json::to_value(&trained.run.model)?,
        "train": serde_json::to_value(&trained.run.train)?,
        "training_log": log_path.display().to_string(),
        "labels_key": a.labels_key,
        "unlabeled_category": a.labels_key.as_ref().map(|_| &a.unlabeled_category),
        "label_categories": label_categories,
    });
    let results = Results {
        obsm: vec![("X_scdreamer".into(), Dense::new(n, latent_dim, latent)?)],
        layers: match normalized {
            Some(v) => vec![(
                "scdreamer_normalized".into(),
                Dense::new(n, setup.genes.len(), v)?,
            )],
            None => Vec::new(),
        },
        obs: match (&predicted, &label_categories) {
            (Some(p), Some(c)) => p.obs_columns(c),
            _ => Vec::new(),
        },
        uns: vec![("scdreamer".into(), uns)],
    };
    h5ad::write_h5ad(&output, &out_data, &results)?;
    crate::train::write_log(&trained.log, &log_path)?;
    if let Some(dir) = &a.save_model {
        trained.save(dir, &setup)?;
        eprintln!("saved the model to {}", dir.display());
    }
    if let (Some(p), Some(l)) = (&predicted, &setup.prep.labels) {
        let labelled: Vec<(u32, u32)> = (l.codes.iter().zip(&p.codes))
            .filter_map(|(t, &p)| t.map(|t| (t, p)))
            .collect();
        let hits = labelled.iter().filter(|(t, p)| t == p).count();
        eprintln!(
            "wrote obs['scdreamer_label'] and obs['scdreamer_label_confidence']; \
             the prediction agrees with {hits} of the {} given labels",
            labelled.len()
        );
    }
    let last = trained.log.last();
    eprintln!(
        "wrote {} (obsm['X_scdreamer']{}) and the training log {} in {:.1} s{}",
        output.display(),
        if write_normalized {
            ", layers['scdreamer_normalized']"
        } else {
            ""
        },
        log_path.display(),
        t_start.elapsed().as_secs_f64(),
        last.map(|l| format!(
            "; final batch-classifier accuracy {:.2} (chance {:.2})",
            l.batch_classifier_accuracy,
            1.0 / setup.prep.batch_names.len() as f64
        ))
        .unwrap_or_default()
    );
    Ok(())
}
