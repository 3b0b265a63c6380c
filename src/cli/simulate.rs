//! `scdreamer simulate`: write a seeded ZINB simulation with cell types and batch effects
//! to an h5ad that scanpy opens (see `crate::sim` for the model).

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressStyle};

use crate::data::h5ad::install_ctrlc_cleanup;
use crate::files::outputs::OutputPlan;
use crate::sim::{SimParams, simulate, write_simulation};

/// Below this many cells a run takes well under a second: no progress bar.
const PROGRESS_MIN_CELLS: usize = 50_000;

#[derive(clap::Args, Debug, Clone)]
pub struct SimulateArgs {
    /// Number of cells.
    #[arg(long)]
    pub cells: usize,
    /// Number of genes.
    #[arg(long, default_value_t = 2000)]
    pub genes: usize,
    /// Number of batches (obs `batch`: batch0, batch1, ...).
    #[arg(long, default_value_t = 4)]
    pub batches: usize,
    /// Number of cell types (obs `cell_type`: type0, type1, ...).
    #[arg(long, default_value_t = 8)]
    pub types: usize,
    /// Random seed; the same seed gives the same file whatever the thread count.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Output .h5ad (written atomically: complete or not at all).
    #[arg(long, short = 'o')]
    pub output: PathBuf,
    /// Target fraction of non-zero counts (dropout included).
    #[arg(long, default_value_t = 0.10)]
    pub density: f64,
    /// Probability that a count is zeroed (zero inflation); 0 gives plain negative binomial.
    #[arg(long, default_value_t = 0.0)]
    pub dropout: f64,
    /// Fraction of genes that mark each cell type.
    #[arg(long, default_value_t = 0.10)]
    pub de_frac: f64,
    /// Standard deviation of cell-type log fold changes on marker genes.
    #[arg(long, default_value_t = 1.5)]
    pub de_sd: f64,
    /// Standard deviation of per-gene batch log fold changes.
    #[arg(long, default_value_t = 0.5)]
    pub batch_sd: f64,
    /// Cell-type proportions, comma-separated, one per type, the same in every batch
    /// (normalised to sum 1), e.g. 0.5,0.3,0.18,0.01,0.01 for two rare types (default: each
    /// batch draws its own from Dirichlet(5, ..., 5)).
    #[arg(long, value_delimiter = ',')]
    pub type_proportions: Option<Vec<f64>>,
    /// Worker threads (default: all cores). Does not change the output.
    #[arg(long)]
    pub threads: Option<usize>,
}

impl SimulateArgs {
    /// The model parameters these flags ask for.
    pub fn params(&self) -> SimParams {
        SimParams {
            n_cells: self.cells,
            n_genes: self.genes,
            n_batches: self.batches,
            n_types: self.types,
            density: self.density,
            de_frac: self.de_frac,
            de_sd: self.de_sd,
            batch_sd: self.batch_sd,
            dropout: self.dropout,
            seed: self.seed,
            type_proportions: self.type_proportions.clone(),
        }
    }
}

/// Run `scdreamer simulate`.
pub fn run(a: &SimulateArgs) -> Result<()> {
    let p = a.params();
    p.validate()?;
    if a.threads == Some(0) {
        bail!("--threads must be at least 1, got 0");
    }
    if let Some(n) = a.threads
        && n > 4096
    {
        bail!("--threads {n} is more than 4096: give at most the number of cores");
    }
    // Fail before a long simulation, not after it, when the output cannot be written.
    OutputPlan::new().file("--output", &a.output).check()?;
    p.check_memory()?;
    install_ctrlc_cleanup();
    let mut pool = rayon::ThreadPoolBuilder::new();
    if let Some(n) = a.threads {
        pool = pool.num_threads(n);
    }
    let pool = pool.build().context("starting the worker threads")?;
    let progress = (p.n_cells >= PROGRESS_MIN_CELLS).then(|| {
        let pb = ProgressBar::new(p.n_cells as u64);
        pb.set_style(
            ProgressStyle::with_template(
                "simulate [{elapsed_precise}] {bar:40} {human_pos}/{human_len} cells ({eta})",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        pb
    });
    let start = Instant::now();
    let sim = pool.install(|| simulate(&p, progress.as_ref()))?;
    if let Some(pb) = &progress {
        pb.finish_and_clear();
    }
    let nnz = sim.counts.nnz();
    let generated = start.elapsed().as_secs_f64();
    write_simulation(&a.output, sim, &p)?;
    eprintln!(
        "wrote {}: {} cells x {} genes, {} batches, {} types, density {:.4}, \
         {generated:.1} s generating + {:.1} s writing",
        a.output.display(),
        p.n_cells,
        p.n_genes,
        p.n_batches,
        p.n_types,
        nnz as f64 / (p.n_cells as f64 * p.n_genes as f64),
        start.elapsed().as_secs_f64() - generated
    );
    Ok(())
}
