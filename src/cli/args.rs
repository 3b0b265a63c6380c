//! Flags of every command, in one place so the frame stays stable.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Parser, Debug)]
#[command(name = "scdreamer", version, about = "scDREAMER single-cell data integration (adversarial VAE)", long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Print shape, X encoding, obs columns and a batch x label table of an .h5ad file.
    Inspect(InspectArgs),
    /// Train scDREAMER on raw counts and write the integrated embedding.
    Integrate(Box<IntegrateArgs>),
    /// Embed new cells of known batches with a model saved by `integrate --save-model`.
    Embed(EmbedArgs),
    /// Map a query dataset (new batches welcome) onto a saved model: embedding in the
    /// reference latent space and, for a Sup model, transferred labels with 'Unknown'.
    Map(crate::cli::map::MapArgs),
    /// Write a seeded ZINB simulation with cell types, batch effects and ground-truth labels.
    Simulate(crate::cli::simulate::SimulateArgs),
    /// Score embeddings with the scib-metrics Benchmarker metrics (computed natively).
    Evaluate(Box<crate::cli::evaluate_args::EvaluateArgs>),
}

#[derive(Args, Debug, Clone)]
pub struct EmbedArgs {
    #[command(flatten)]
    pub files: crate::cli::saved_model_run::SavedModelRun,
    /// Compute device, as for `integrate`: a GPU when one is usable (auto), the CPU, or a GPU
    /// or an error (cuda).
    #[arg(long, value_enum, default_value_t = DeviceArg::Auto)]
    pub device: DeviceArg,
}

/// Where the counts come from and how they are checked. Shared by every command that reads data.
#[derive(Args, Debug, Clone)]
pub struct InputArgs {
    /// Input .h5ad with raw counts (default: the bundled demo, cellbench_3cl_10xsub).
    #[arg(long, short = 'i')]
    pub input: Option<PathBuf>,
    /// Read counts from `layers/NAME` instead of X.
    #[arg(long, value_name = "NAME")]
    pub layer: Option<String>,
    /// obs column holding the batch (donor, lab, protocol...).
    #[arg(long, default_value = "batch")]
    pub batch_key: String,
    /// Accept non-integer values in X (the likelihood is for counts, so this is refused by default).
    #[arg(long)]
    pub allow_non_integer: bool,
    /// Accept a batch key with a single batch (nothing to integrate, but the model still trains).
    #[arg(long)]
    pub allow_single_batch: bool,
}

#[derive(Args, Debug, Clone)]
pub struct InspectArgs {
    /// The .h5ad file (default: the bundled demo).
    pub file: Option<PathBuf>,
    /// Read counts from `layers/NAME` instead of X.
    #[arg(long, value_name = "NAME")]
    pub layer: Option<String>,
    /// obs column with batches for the table (default: `batch` if present).
    #[arg(long)]
    pub batch_key: Option<String>,
    /// obs column with labels for the table (default: `cell_type` if present).
    #[arg(long)]
    pub labels_key: Option<String>,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum HvgFlavor {
    /// scanpy `flavor="seurat_v3"` on raw counts (the scvi-tools recommendation).
    SeuratV3,
    /// scanpy `flavor="seurat"` on log-normalised data (the authors' choice).
    Seurat,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Preset {
    /// The method with measured fixes of the authors' code (see README).
    Default,
    /// Reproduces the authors' TensorFlow code exactly.
    Authors,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Likelihood {
    Zinb,
    Nb,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum AdversaryInputArg {
    Sample,
    Mean,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LabelLossArg {
    /// Cross-entropy (the authors' code)
    Ce,
    /// Generalized cross-entropy (1 - p^0.7) / 0.7: robust to wrong labels
    Gce,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LrScheduleArg {
    Constant,
    Cosine,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum NormalizedArg {
    Auto,
    Yes,
    No,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceArg {
    /// A GPU when one is usable, else the CPU (says why).
    Auto,
    Cpu,
    Cuda,
}

impl From<DeviceArg> for crate::backend::device::DeviceRequest {
    fn from(a: DeviceArg) -> Self {
        use crate::backend::device::DeviceRequest;
        match a {
            DeviceArg::Auto => DeviceRequest::Auto,
            DeviceArg::Cpu => DeviceRequest::Cpu,
            DeviceArg::Cuda => DeviceRequest::Cuda,
        }
    }
}

/// Gene selection flags.
#[derive(Args, Debug, Clone)]
pub struct GeneArgs {
    /// Number of highly variable genes to keep; with no more genes than this, all are kept.
    #[arg(long, default_value_t = 2000)]
    pub n_top_genes: usize,
    /// HVG method (default: seurat_v3; the authors preset uses seurat).
    #[arg(long, value_enum)]
    pub hvg_flavor: Option<HvgFlavor>,
    /// Use the genes listed in FILE (one name per line) instead of HVG selection.
    #[arg(long, value_name = "FILE", conflicts_with = "all_genes")]
    pub genes: Option<PathBuf>,
    /// Use every gene (no HVG selection).
    #[arg(long)]
    pub all_genes: bool,
}

#[derive(Args, Debug, Clone)]
pub struct IntegrateArgs {
    #[command(flatten)]
    pub input: InputArgs,
    /// Output .h5ad (default: `<input>_scdreamer.h5ad` beside the input, or `demo_scdreamer.h5ad`).
    #[arg(long, short = 'o')]
    pub output: Option<PathBuf>,
    /// obs column with cell-type labels: switches to scDREAMER-Sup.
    #[arg(long)]
    pub labels_key: Option<String>,
    /// Label value that marks an unlabelled cell (missing values count as unlabelled too).
    #[arg(long, default_value = "Unknown")]
    pub unlabeled_category: String,
    /// scDREAMER-Sup with possibly wrong labels: first train the unsupervised model, train as
    /// unlabelled every labelled cell whose 15 nearest labelled cells there mostly carry another
    /// label (unless its label is 3x as common among them as overall: rare types), then train
    /// Sup (about twice the time; data in memory only, not --backed).
    #[arg(long)]
    pub screen_labels: bool,
    /// Sup: balance the label loss across cell types, weighting a labelled cell of type c by
    /// (labelled cells / (types x cells of c))^P: 0 weighs every labelled cell the same, 1
    /// every type; helps rare types.
    #[arg(long, value_name = "P")]
    pub label_balance: Option<f32>,
    /// Sup: the label loss on the labelled cells (default preset: gce, the generalized
    /// cross-entropy, which lets confidently contradicted labels pull less, so that fewer wrong
    /// labels are learnt; authors preset: ce).
    #[arg(long, value_enum)]
    pub label_loss: Option<LabelLossArg>,
    /// Sup: obs['scdreamer_label_disagrees'] marks labelled cells predicted as another type with
    /// at least this probability.
    #[arg(long, default_value_t = crate::model::sup_screen::DISAGREE_THRESHOLD)]
    pub disagree_threshold: f32,
    #[command(flatten)]
    pub genes: GeneArgs,
    /// Hyper-parameter preset.
    #[arg(long, value_enum, default_value_t = Preset::Default)]
    pub preset: Preset,
    /// Latent dimension.
    #[arg(long)]
    pub latent: Option<usize>,
    /// Hidden layer widths, comma-separated (e.g. 512 or 512,256; default preset 256,
    /// scDREAMER-Sup 128, authors 512).
    #[arg(long, value_delimiter = ',')]
    pub hidden: Option<Vec<usize>>,
    /// Advanced: weight of the adversarial batch-classifier term in the autoencoder loss.
    #[arg(long)]
    pub batch_adv_weight: Option<f32>,
    /// Advanced: whether the encoder reads the batch beside the counts, true or false (default
    /// preset: true up to 128 batches, false above; scDREAMER-Sup and the authors' preset: true).
    #[arg(long)]
    pub encode_batch: Option<bool>,
    /// Advanced: what the adversarial batch classifier sees, a sample of q(z|x,s) or its mean
    /// (default preset: mean; scDREAMER-Sup and the authors' preset: sample).
    #[arg(long, value_enum)]
    pub adversary_input: Option<AdversaryInputArg>,
    /// Advanced: per-batch, per-gene offsets of the decoder's scale and dropout logits, true or
    /// false (default preset: true; scDREAMER-Sup and the authors' preset: false).
    #[arg(long)]
    pub batch_gene_offsets: Option<bool>,
    /// Advanced: weight of the Bhattacharyya (discriminator) term in the autoencoder loss.
    #[arg(long)]
    pub disc_weight: Option<f32>,
    /// Advanced: weight of the KL terms (default preset: 1, or 0.5 above 128 batches;
    /// scDREAMER-Sup 3; authors 0.001).
    #[arg(long)]
    pub kl_weight: Option<f32>,
    /// Training epochs (default preset: about 3,400 minibatch steps, i.e. 3400 / (cells / batch
    /// size) epochs, at least 4, and at most 100 epochs of 128-cell minibatches' steps (small
    /// files) or 1,200 steps at a minibatch above 128; 7,900 steps above 128 batches; authors
    /// preset: 300).
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Minibatch size (default 128; on a GPU the default preset grows it with the data, to
    /// 1024 from 512k cells, keeping at least 500 steps per epoch).
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Learning-rate schedule of the three optimisers (default preset: cosine decay to 0;
    /// scDREAMER-Sup and the authors' preset: constant).
    #[arg(long, value_enum)]
    pub lr_schedule: Option<LrScheduleArg>,
    /// Learning rate of the autoencoder (adversaries keep their preset ratio).
    #[arg(long)]
    pub lr: Option<f32>,
    /// Count likelihood of the decoder.
    #[arg(long, value_enum, default_value_t = Likelihood::Zinb)]
    pub likelihood: Likelihood,
    /// Batch whose decoder gives `layers["scdreamer_normalized"]`, or `all` to average over batches.
    #[arg(long, default_value = "all")]
    pub transform_batch: String,
    /// Write the dense batch-corrected expression layer: auto = only up to 2e8 values (800 MB).
    #[arg(long, value_enum, default_value_t = NormalizedArg::Auto)]
    pub normalized: NormalizedArg,
    /// Random seed: same seed, backend and thread count give the same result.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// CPU threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Compute device: a GPU when one is usable (auto), the CPU, or a GPU or an error (cuda).
    /// With --backed each chunk is read on the host and uploaded to the device in turn.
    #[arg(long, value_enum, default_value_t = DeviceArg::Auto)]
    pub device: DeviceArg,
    /// Save the trained model (safetensors weights + JSON config) in DIR.
    #[arg(long, value_name = "DIR")]
    pub save_model: Option<PathBuf>,
    /// Files larger than memory: read X from disk in chunks of cells instead of loading it.
    /// Setup streams the file (2-3 passes over X: checks, library sizes, the same HVGs as
    /// without --backed); each epoch visits the chunks in a seeded shuffled order and shuffles
    /// the cells within each chunk, so a minibatch mixes cells of ONE chunk only (keep chunks
    /// large, and cells of a chunk varied: a file sorted by batch or cell type gives
    /// minibatches from few batches); the embedding is computed chunk by chunk.
    /// layers['scdreamer_normalized'] is held in memory whole: --normalized auto writes it only
    /// up to 6.4e7 values (256 MB) with --backed.
    #[arg(long)]
    pub backed: bool,
    /// --backed: cells per chunk (default: about 128 MB of CSR over all genes at the file's
    /// mean non-zeros per cell, at least 1,024 cells). Memory grows with it.
    #[arg(long, value_name = "N")]
    pub chunk_cells: Option<usize>,
    #[command(flatten)]
    pub evaluate: crate::cli::evaluate_args::IntegrateEvaluateArgs,
    /// Do not draw progress bars.
    #[arg(long)]
    pub quiet: bool,
}
