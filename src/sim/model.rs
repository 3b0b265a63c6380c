//! The generative model's global parameters, drawn once per seed: gene base means,
//! cell-type and batch log fold changes, per-batch library shifts, gene dispersions,
//! per-batch cell-type proportions, and the global offset that sets the density.
//!
//! Mirrors `bench/simulate.py`; the draws differ (another RNG), the distributions do not.

use anyhow::{Result, bail};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Gamma, Normal, StandardNormal};
use rayon::prelude::*;

use super::SimParams;

/// Standard deviation of log library size around its batch's shift (as in simulate.py).
pub const LOG_LIB_SD: f64 = 0.3;
/// Dirichlet concentration of the per-batch cell-type proportions (as in simulate.py).
const COMPOSITION_ALPHA: f64 = 5.0;

/// Everything shared by all cells; the per-cell draws (batch, type, library size,
/// counts) happen in the chunks.
#[derive(Clone, Debug)]
pub struct Model {
    pub n_genes: usize,
    pub n_batches: usize,
    pub n_types: usize,
    /// `rate[(batch * n_types + type) * n_genes + gene] = exp(offset + base + type_lfc + batch_lfc)`:
    /// the NB mean of a cell with library size 1. Precomputed so that a count costs a multiply.
    pub rate: Vec<f64>,
    /// NB inverse dispersion per gene.
    pub theta: Vec<f64>,
    /// Mean log library size per batch.
    pub lib_shift: Vec<f64>,
    /// Cumulative cell-type proportions per batch (`n_batches x n_types`, last = 1).
    pub type_cdf: Vec<f64>,
    /// Global log offset found by calibration.
    pub offset: f64,
    /// Which (type, gene) pairs carry a non-zero cell-type effect (marker genes).
    pub is_marker: Vec<bool>,
}

impl Model {
    /// Draw the global parameters from `rng` and calibrate the offset to `p.density`.
    pub fn draw(p: &SimParams, rng: &mut ChaCha8Rng) -> Result<Model> {
        let (g, t, b) = (p.n_genes, p.n_types, p.n_batches);
        let base: Vec<f64> = (0..g).map(|_| rng.sample(StandardNormal)).collect();
        let de = Normal::new(0.0, p.de_sd)?;
        let mut type_lfc = vec![0.0f64; t * g];
        let mut is_marker = vec![false; t * g];
        for i in 0..t * g {
            // Draw both for every pair so the stream does not depend on de_frac's outcome.
            let lfc: f64 = de.sample(rng);
            let marker = rng.r#gen::<f64>() < p.de_frac;
            if marker {
                type_lfc[i] = lfc;
                is_marker[i] = true;
            }
        }
        let batch_d = Normal::new(0.0, p.batch_sd)?;
        let batch_lfc: Vec<f64> = (0..b * g).map(|_| batch_d.sample(rng)).collect();
        let shift_d = Normal::new(0.0, LOG_LIB_SD)?;
        let lib_shift: Vec<f64> = (0..b).map(|_| shift_d.sample(rng)).collect();
        let theta_d = Normal::new(2.0f64.ln(), 0.5)?;
        let theta: Vec<f64> = (0..g).map(|_| theta_d.sample(rng).exp()).collect();
        // Drawn even when the proportions are given, so the rest of the model stays the same.
        let mut type_cdf = draw_compositions(b, t, rng)?;
        if let Some(props) = &p.type_proportions {
            type_cdf = fixed_compositions(b, props);
        }

        let mut log_rate = vec![0.0f64; b * t * g];
        for k in 0..b {
            for ty in 0..t {
                let row = &mut log_rate[(k * t + ty) * g..(k * t + ty + 1) * g];
                for (j, v) in row.iter_mut().enumerate() {
                    *v = base[j] + type_lfc[ty * g + j] + batch_lfc[k * g + j];
                }
            }
        }
        let mut model = Model {
            n_genes: g,
            n_batches: b,
            n_types: t,
            rate: Vec::new(),
            theta,
            lib_shift,
            type_cdf,
            offset: 0.0,
            is_marker,
        };
        let nb_target = p.density / (1.0 - p.dropout);
        model.offset = model.calibrate(&log_rate, nb_target)?;
        model.rate = log_rate.iter().map(|&v| (v + model.offset).exp()).collect();
        Ok(model)
    }

    /// Proportion of cells of type `t` in batch `k`.
    pub fn proportion(&self, k: usize, t: usize) -> f64 {
        let row = &self.type_cdf[k * self.n_types..(k + 1) * self.n_types];
        row[t] - if t == 0 { 0.0 } else { row[t - 1] }
    }

    /// Expected fraction of non-zero NB counts (before dropout) with global offset `c`, and
    /// its derivative in `c`: batches are equally likely, types follow the batch's
    /// proportions, and the lognormal library size is integrated by 6-point Gauss-Hermite
    /// quadrature.
    fn expected_density(&self, log_rate: &[f64], c: f64) -> (f64, f64) {
        let (g, t) = (self.n_genes, self.n_types);
        let (value, slope) = (0..self.n_batches * t)
            .into_par_iter()
            .map(|bt| {
                let (k, ty) = (bt / t, bt % t);
                let row = &log_rate[bt * g..(bt + 1) * g];
                let rate: Vec<f64> = row.iter().map(|lr| (lr + c).exp()).collect();
                let (mut s, mut ds) = (0.0, 0.0);
                for (node, w) in GH_NODES.iter().zip(GH_WEIGHTS) {
                    let lib = (self.lib_shift[k] + LOG_LIB_SD * node).exp();
                    for (r, &th) in rate.iter().zip(&self.theta) {
                        let mu = r * lib;
                        let x = mu / th;
                        // P(x > 0) = 1 - p0 with p0 = (1 + mu / theta)^-theta;
                        // d/dc = p0 * mu / (1 + mu / theta) since d mu / dc = mu.
                        let p0 = (-th * x.ln_1p()).exp();
                        s += w * (1.0 - p0);
                        ds += w * p0 * mu / (1.0 + x);
                    }
                }
                let share = self.proportion(k, ty);
                (share * s, share * ds)
            })
            .reduce(|| (0.0, 0.0), |a, b| (a.0 + b.0, a.1 + b.1));
        let n = (self.n_batches * g) as f64;
        (value / n, slope / n)
    }

    /// The global log offset at which the expected density is `target`: Newton steps kept
    /// inside a shrinking bracket (bisection when a step would leave it). The density is
    /// increasing in the offset, so the root is unique.
    fn calibrate(&self, log_rate: &[f64], target: f64) -> Result<f64> {
        let (mut lo, mut hi) = (-40.0f64, 40.0f64);
        if self.expected_density(log_rate, hi).0 < target {
            bail!("cannot reach density {target}: even huge means stay below it");
        }
        let mut c = 0.0f64;
        for _ in 0..200 {
            let (d, slope) = self.expected_density(log_rate, c);
            let err = d - target;
            if err.abs() < 1e-9 * target {
                return Ok(c);
            }
            if err < 0.0 {
                lo = c;
            } else {
                hi = c;
            }
            let newton = c - err / slope;
            c = if slope > 0.0 && newton > lo && newton < hi {
                newton
            } else {
                0.5 * (lo + hi)
            };
            if hi - lo < 1e-12 {
                break;
            }
        }
        Ok(c)
    }
}

/// Per-batch cell-type proportions ~ Dirichlet(5, ..., 5) (normalised Gammas), as cumulative sums.
fn draw_compositions(b: usize, t: usize, rng: &mut ChaCha8Rng) -> Result<Vec<f64>> {
    let gamma = Gamma::new(COMPOSITION_ALPHA, 1.0)?;
    let mut cdf = Vec::with_capacity(b * t);
    for _ in 0..b {
        let draws: Vec<f64> = (0..t).map(|_| gamma.sample(rng)).collect();
        let sum: f64 = draws.iter().sum();
        let mut acc = 0.0;
        for d in draws {
            acc += d / sum;
            cdf.push(acc);
        }
        // Guard the inversion against rounding: the last type always closes the interval.
        if let Some(last) = cdf.last_mut() {
            *last = 1.0;
        }
    }
    Ok(cdf)
}

/// The same proportions (normalised to sum 1) in each of `b` batches, as cumulative sums.
fn fixed_compositions(b: usize, props: &[f64]) -> Vec<f64> {
    let sum: f64 = props.iter().sum();
    let mut row: Vec<f64> = props
        .iter()
        .scan(0.0, |acc, v| {
            *acc += v / sum;
            Some(*acc)
        })
        .collect();
    if let Some(last) = row.last_mut() {
        *last = 1.0;
    }
    row.repeat(b)
}

/// Probabilists' Gauss-Hermite nodes (weight exp(-z^2/2)), 6 points: exact enough for the
/// smooth integrand over a N(0, 0.3^2) log library size (checked against Monte Carlo to 1e-4).
const GH_NODES: [f64; 6] = [
    -3.324257433552119,
    -1.8891758777537107,
    -0.6167065901925941,
    0.6167065901925941,
    1.8891758777537107,
    3.324257433552119,
];
/// Matching weights, normalised to sum to 1.
const GH_WEIGHTS: [f64; 6] = [
    0.0025557844020562483,
    0.0886157460419145,
    0.4088284695560292,
    0.4088284695560292,
    0.0886157460419145,
    0.0025557844020562483,
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::chunk::{MODEL_STREAM, stream_rng};

    #[test]
    fn calibration_hits_the_target_for_many_shapes() {
        for (b, t, target, dropout) in [(1, 1, 0.1, 0.0), (4, 8, 0.02, 0.0), (3, 5, 0.3, 0.5)] {
            let p = SimParams {
                n_batches: b,
                n_types: t,
                n_genes: 300,
                density: target,
                dropout,
                ..SimParams::default()
            };
            let m = Model::draw(&p, &mut stream_rng(3, MODEL_STREAM)).unwrap();
            let log_rate: Vec<f64> = m.rate.iter().map(|r| r.ln() - m.offset).collect();
            let (d, _) = m.expected_density(&log_rate, m.offset);
            let want = target / (1.0 - dropout);
            assert!((d / want - 1.0).abs() < 1e-6, "{b}x{t}: {d} vs {want}");
            // A lower offset must give fewer non-zeros (the root is the unique crossing).
            assert!(m.expected_density(&log_rate, m.offset - 0.1).0 < want);
        }
    }
}
