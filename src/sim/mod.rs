//! `scdreamer simulate`: seeded (zero-inflated) negative-binomial counts with cell types,
//! batch effects and ground-truth labels, for scale benchmarks and integration tests.
//!
//! The model mirrors `bench/simulate.py`:
//! gene base log-mean `b_g ~ N(0, 1)`; cell-type effect `a_tg ~ N(0, de_sd)` on a random
//! `de_frac` of genes per type (the marker genes), else 0; batch effect `d_kg ~ N(0, batch_sd)`
//! on every gene plus a per-batch library shift `s_k ~ N(0, 0.3)`; library size
//! `log l_i ~ N(s_k(i), 0.3)`; mean `mu_ig = exp(c + b_g + a_t(i)g + d_k(i)g) * l_i`;
//! counts `x_ig ~ NB(mu_ig, theta_g)` with `theta_g ~ LogN(log 2, 0.5)`; then, optionally,
//! each count is zeroed with probability `dropout` (zero inflation). Cell-type proportions
//! differ by batch (Dirichlet(5)). The offset `c` is set so that the expected fraction of
//! non-zeros, dropout included, is `density`.
//!
//! Determinism: the global parameters come from RNG stream 0 of the seed, and cells are made
//! in fixed blocks of [`chunk::CHUNK_CELLS`], block `i` from stream `i + 1`; blocks run in
//! parallel and are concatenated in order, so the output depends on the seed only, never on
//! the thread count. Memory is O(nnz): rows are sparse from the start, and blocks are
//! gathered in small waves so that at most a few blocks exist beside the output.

pub mod chunk;
pub mod model;
pub mod nb;
pub mod uniform;

use std::path::Path;

use anyhow::{Result, bail};
use indicatif::ProgressBar;
use rayon::prelude::*;
use serde::Serialize;

use crate::data::anndata::{AnnData, Column, Frame, XEncoding};
use crate::data::csr::Csr;
use crate::data::h5ad::{Results, write_h5ad};
use crate::files::memory::try_with_capacity;
use chunk::{CHUNK_CELLS, MODEL_STREAM, generate, stream_rng};
use model::Model;
use nb::GeneNb;

/// Knobs of the simulation; the defaults are those of `bench/simulate.py`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SimParams {
    pub n_cells: usize,
    pub n_genes: usize,
    pub n_batches: usize,
    pub n_types: usize,
    /// Target fraction of non-zero counts, dropout included.
    pub density: f64,
    /// Fraction of genes that mark each cell type.
    pub de_frac: f64,
    /// Standard deviation of cell-type log fold changes on marker genes.
    pub de_sd: f64,
    /// Standard deviation of per-gene batch log fold changes.
    pub batch_sd: f64,
    /// Probability that a count is replaced by a zero (zero inflation); 0 = plain NB.
    pub dropout: f64,
    pub seed: u64,
    /// Cell-type proportions, the same in every batch (normalised to sum 1); None draws each
    /// batch's proportions from Dirichlet(5, ..., 5).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub type_proportions: Option<Vec<f64>>,
}

impl Default for SimParams {
    fn default() -> Self {
        SimParams {
            n_cells: 100_000,
            n_genes: 2_000,
            n_batches: 4,
            n_types: 8,
            density: 0.10,
            de_frac: 0.10,
            de_sd: 1.5,
            batch_sd: 0.5,
            dropout: 0.0,
            seed: 0,
            type_proportions: None,
        }
    }
}

impl SimParams {
    /// Reject arguments the model cannot honour, naming the flag and the value.
    pub fn validate(&self) -> Result<()> {
        if self.n_cells == 0 {
            bail!("--cells must be at least 1, got 0");
        }
        if self.n_genes == 0 {
            bail!("--genes must be at least 1, got 0");
        }
        if self.n_genes > i32::MAX as usize {
            bail!(
                "--genes {} exceeds the int32 gene index of h5ad",
                self.n_genes
            );
        }
        if self.n_batches == 0 {
            bail!("--batches must be at least 1, got 0");
        }
        if self.n_types == 0 {
            bail!("--types must be at least 1, got 0");
        }
        if self.n_types > self.n_cells {
            bail!(
                "--types {} is more than --cells {}: every cell type needs cells",
                self.n_types,
                self.n_cells
            );
        }
        if self.n_batches > self.n_cells {
            bail!(
                "--batches {} is more than --cells {}: every batch needs cells",
                self.n_batches,
                self.n_cells
            );
        }
        let cells_x_genes = (self.n_cells as u128) * (self.n_genes as u128);
        if cells_x_genes > u64::MAX as u128 / 2 {
            bail!("--cells x --genes = {cells_x_genes} is too large");
        }
        if !(self.dropout >= 0.0 && self.dropout < 1.0) {
            bail!("--dropout must be in [0, 1), got {}", self.dropout);
        }
        if !(self.density > 0.0 && self.density < 1.0 - self.dropout) {
            bail!(
                "--density must be in (0, 1 - dropout) = (0, {:.4}), got {}",
                1.0 - self.dropout,
                self.density
            );
        }
        if let Some(props) = &self.type_proportions {
            if props.len() != self.n_types {
                bail!(
                    "--type-proportions has {} values for --types {}: give one per type",
                    props.len(),
                    self.n_types
                );
            }
            if let Some(v) = props.iter().find(|v| !(v.is_finite() && **v >= 0.0)) {
                bail!("--type-proportions must be finite numbers >= 0, got {v}");
            }
            if props.iter().sum::<f64>() <= 0.0 {
                bail!("--type-proportions must not all be 0");
            }
        }
        if !(0.0..=1.0).contains(&self.de_frac) {
            bail!("--de-frac must be in [0, 1], got {}", self.de_frac);
        }
        for (flag, sd) in [("--de-sd", self.de_sd), ("--batch-sd", self.batch_sd)] {
            if !(sd >= 0.0 && sd.is_finite()) {
                bail!("{flag} must be a finite number >= 0, got {sd}");
            }
            if sd > MAX_LFC_SD {
                bail!(
                    "{flag} must be at most {MAX_LFC_SD} (a standard deviation of natural-log \
                     fold changes: {MAX_LFC_SD} already spreads gene means over e^{}), got {sd}",
                    3.0 * MAX_LFC_SD
                );
            }
        }
        Ok(())
    }

    /// Bytes the simulation holds at least: the counts (index + value per non-zero, a pointer
    /// per cell), per-cell batch, type and name, and the rate table (batches x types x genes).
    pub fn memory_bytes(&self) -> u128 {
        let (n, g) = (self.n_cells as u128, self.n_genes as u128);
        let nnz = (self.density * n as f64 * g as f64 * 1.02) as u128;
        let table = (self.n_batches as u128) * (self.n_types as u128) * g * 16;
        nnz * 8 + n * (8 + 8 + 40) + table
    }

    /// Errors, naming the flags, when the simulation cannot fit in memory.
    pub fn check_memory(&self) -> Result<()> {
        crate::files::memory::check_fits(
            self.memory_bytes(),
            &format!(
                "--cells {} x --genes {} at --density {} ({} batches x {} types)",
                self.n_cells, self.n_genes, self.density, self.n_batches, self.n_types
            ),
        )
    }
}

/// Largest standard deviation of the cell-type and batch log fold changes (`--de-sd`,
/// `--batch-sd`).
pub const MAX_LFC_SD: f64 = 10.0;

/// Largest expected count of one cell and gene: 2^24, the largest integer a float32 count
/// holds exactly (the NB sampler's Poisson stage also stops returning above ~1e15).
pub const MAX_EXPECTED_COUNT: f64 = 16_777_216.0;

/// Errors when a cell's expected count can exceed [`MAX_EXPECTED_COUNT`]: the library size
/// is bounded at 6 standard deviations above its batch's mean.
fn check_expected_counts(p: &SimParams, model: &Model) -> Result<()> {
    let (g, t) = (model.n_genes, model.n_types);
    let mut worst = 0.0f64;
    for k in 0..model.n_batches {
        let lib = (model.lib_shift[k] + 6.0 * model::LOG_LIB_SD).exp();
        let rates = &model.rate[k * t * g..(k + 1) * t * g];
        let top = rates.iter().fold(0.0f64, |m, &r| m.max(r));
        worst = worst.max(top * lib);
    }
    if worst.is_nan() || worst > MAX_EXPECTED_COUNT {
        bail!(
            "--de-sd {} and --batch-sd {} give expected counts up to {worst:.3e} in a cell, above \
             {MAX_EXPECTED_COUNT} (2^24, the largest integer a float32 count holds exactly): \
             lower --de-sd or --batch-sd",
            p.de_sd,
            p.batch_sd
        );
    }
    Ok(())
}

/// Simulated counts and the ground truth behind them.
#[derive(Clone, Debug)]
pub struct Simulation {
    /// Cells x genes counts (integers stored as f32).
    pub counts: Csr,
    /// Batch index of each cell.
    pub batch: Vec<u32>,
    /// Cell-type index of each cell.
    pub cell_type: Vec<u32>,
    /// The global parameters (rates, dispersions, marker genes, offset).
    pub model: Model,
}

/// Blocks generated per wave: enough to keep every thread busy, few enough that the
/// blocks waiting to be appended stay small beside the output.
fn wave_len() -> usize {
    4 * rayon::current_num_threads().max(1)
}

/// Run the simulation on the current rayon pool; `progress` (if any) advances by cells.
pub fn simulate(p: &SimParams, progress: Option<&ProgressBar>) -> Result<Simulation> {
    p.validate()?;
    p.check_memory()?;
    let model = Model::draw(p, &mut stream_rng(p.seed, MODEL_STREAM))?;
    check_expected_counts(p, &model)?;
    let genes: Vec<GeneNb> = model
        .theta
        .iter()
        .map(|&th| GeneNb::new(th))
        .collect::<Result<_>>()?;
    let n_chunks = p.n_cells.div_ceil(CHUNK_CELLS);
    let expected_nnz = (p.density * p.n_cells as f64 * p.n_genes as f64 * 1.02) as usize;
    let mut counts = Csr {
        n_rows: p.n_cells,
        n_cols: p.n_genes,
        indptr: try_with_capacity(p.n_cells + 1, "--cells (row pointers)")?,
        indices: try_with_capacity(expected_nnz, "--cells x --genes (counts)")?,
        data: try_with_capacity(expected_nnz, "--cells x --genes (counts)")?,
    };
    counts.indptr.push(0);
    let mut batch = try_with_capacity(p.n_cells, "--cells (batches)")?;
    let mut cell_type = try_with_capacity(p.n_cells, "--cells (cell types)")?;
    let wave = wave_len();
    for wave_start in (0..n_chunks).step_by(wave) {
        let ids: Vec<usize> = (wave_start..(wave_start + wave).min(n_chunks)).collect();
        let chunks: Vec<_> = ids
            .par_iter()
            .map(|&i| {
                let first = i * CHUNK_CELLS;
                let n = CHUNK_CELLS.min(p.n_cells - first);
                let c = generate(&model, &genes, p.dropout, p.seed, i, n);
                if let Some(pb) = progress {
                    pb.inc(n as u64);
                }
                c
            })
            .collect();
        for c in chunks {
            let mut end = *counts.indptr.last().unwrap_or(&0);
            for &r in &c.row_nnz {
                end += r as u64;
                counts.indptr.push(end);
            }
            counts.indices.extend_from_slice(&c.indices);
            counts.data.extend_from_slice(&c.data);
            batch.extend_from_slice(&c.batch);
            cell_type.extend_from_slice(&c.cell_type);
        }
    }
    Ok(Simulation {
        counts,
        batch,
        cell_type,
        model,
    })
}

/// Names `prefix0..prefix{n-1}`.
fn names(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}{i}")).collect()
}

fn categorical(codes: &[u32], prefix: &str, n: usize) -> Column {
    Column::Categorical {
        codes: codes.iter().map(|&c| c as i32).collect(),
        categories: names(prefix, n),
        ordered: false,
    }
}

impl Simulation {
    /// The AnnData to write: X = counts, obs `batch` (`batch0..`) and `cell_type` (`type0..`)
    /// categoricals indexed `cell0..`, var indexed `gene0..`. Moves the counts, no copy.
    pub fn into_anndata(self, p: &SimParams) -> AnnData {
        let obs = Frame {
            repeated_names: Vec::new(),
            index: names("cell", p.n_cells),
            index_name: "_index".into(),
            columns: vec![
                (
                    "batch".into(),
                    categorical(&self.batch, "batch", p.n_batches),
                ),
                (
                    "cell_type".into(),
                    categorical(&self.cell_type, "type", p.n_types),
                ),
            ],
        };
        let var = Frame {
            repeated_names: Vec::new(),
            index: names("gene", p.n_genes),
            index_name: "_index".into(),
            columns: Vec::new(),
        };
        AnnData {
            x: self.counts,
            obs,
            var,
            x_encoding: XEncoding::Csr,
            x_dtype: "float32".into(),
        }
    }
}

/// `uns["simulation"]`: the parameters, the calibrated offset and the generator's version.
pub fn uns_entry(p: &SimParams, model: &Model) -> Result<serde_json::Value> {
    let mut v = serde_json::to_value(p)?;
    if let Some(o) = v.as_object_mut() {
        o.insert("offset".into(), model.offset.into());
        o.insert("chunk_cells".into(), CHUNK_CELLS.into());
        o.insert("generator".into(), "scdreamer simulate".into());
        o.insert("version".into(), crate::VERSION.into());
    }
    Ok(v)
}

/// Write a simulation to `path` (atomically, via the shared h5ad writer); consumes it so
/// that the counts are not copied.
pub fn write_simulation(path: &Path, sim: Simulation, p: &SimParams) -> Result<()> {
    let uns = uns_entry(p, &sim.model)?;
    let adata = sim.into_anndata(p);
    let results = Results {
        uns: vec![("simulation".into(), uns)],
        ..Results::default()
    };
    write_h5ad(path, &adata, &results)
}

/// Simulate and write an h5ad. Returns the number of stored non-zeros.
pub fn simulate_to_h5ad(
    p: &SimParams,
    path: &Path,
    progress: Option<&ProgressBar>,
) -> Result<usize> {
    let sim = simulate(p, progress)?;
    let nnz = sim.counts.nnz();
    write_simulation(path, sim, p)?;
    Ok(nnz)
}
