//! Gradient checking against plain f64 references.
//!
//! `check` builds an op on the CPU tape with random parameter inputs, compares the forward
//! value with the f64 reference, then compares the tape's gradient of sum(R * out) (R a
//! random projection, so every output element matters with its own weight) with central
//! differences of the f64 reference. Tolerances are tight enough that a wrong sign, a
//! missing term or a transposed operand fails (see `mutations_are_caught`).

use crate::backend::cpu::Cpu;
use crate::tape::{Init, Params, Tape, Var};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// One test case: input shapes and value ranges.
pub struct Case {
    pub seed: u64,
    pub inputs: Vec<(usize, usize, f32, f32)>,
    /// Gradient entries checked per input (all when the input is smaller).
    pub samples: usize,
    /// Relative tolerance of forward values and gradients.
    pub rtol: f64,
}

impl Case {
    pub fn new(seed: u64) -> Self {
        Case {
            seed,
            inputs: Vec::new(),
            samples: 40,
            rtol: 2e-3,
        }
    }
    /// An input `rows x cols` drawn uniformly from [lo, hi].
    pub fn input(mut self, rows: usize, cols: usize, lo: f32, hi: f32) -> Self {
        self.inputs.push((rows, cols, lo, hi));
        self
    }
    pub fn samples(mut self, n: usize) -> Self {
        self.samples = n;
        self
    }
    #[allow(dead_code)]
    pub fn rtol(mut self, r: f64) -> Self {
        self.rtol = r;
        self
    }
    /// The input values this case will use (same draw as `check`).
    pub fn values(&self) -> Vec<Vec<f32>> {
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        self.inputs
            .iter()
            .map(|&(r, c, lo, hi)| (0..r * c).map(|_| rng.gen_range(lo..=hi)).collect())
            .collect()
    }
}

/// Outcome of a check, for tests that expect failure.
#[derive(Debug)]
pub struct Mismatch(pub String);

/// Panicking form of [`try_check`].
pub fn check(
    case: Case,
    build: impl Fn(&mut Tape<Cpu>, &[Var]) -> Var,
    reference: impl Fn(&[Vec<f64>]) -> Vec<f64>,
) {
    if let Err(Mismatch(m)) = try_check(case, build, reference) {
        panic!("{m}");
    }
}

pub fn try_check(
    case: Case,
    build: impl Fn(&mut Tape<Cpu>, &[Var]) -> Var,
    reference: impl Fn(&[Vec<f64>]) -> Vec<f64>,
) -> Result<(), Mismatch> {
    let cpu = Cpu::new();
    let values = case.values();
    let mut rng = ChaCha8Rng::seed_from_u64(case.seed ^ 0xABCD);
    let mut params = Params::new(cpu.clone());
    let grp = params.group("check");
    let ids: Vec<_> = case
        .inputs
        .iter()
        .enumerate()
        .map(|(i, &(r, c, _, _))| {
            let id = params.add(grp, &format!("in{i}"), r, c, Init::Zeros, &mut rng);
            params.set_value(id, &values[i]).unwrap();
            id
        })
        .collect();
    let mut tape = Tape::new(cpu);
    let vars: Vec<Var> = ids.iter().map(|&id| tape.param(&params, id)).collect();
    let out = build(&mut tape, &vars);
    let (or, oc) = tape.shape(out);
    let got = tape.to_host(out);
    let x64: Vec<Vec<f64>> = values
        .iter()
        .map(|v| v.iter().map(|&a| a as f64).collect())
        .collect();
    let want = reference(&x64);
    if want.len() != got.len() {
        return Err(Mismatch(format!(
            "output has {} values, reference {}",
            got.len(),
            want.len()
        )));
    }
    let fscale = want.iter().fold(0.0f64, |a, b| a.max(b.abs())).max(1e-3);
    for (i, (&g, &w)) in got.iter().zip(&want).enumerate() {
        if (g as f64 - w).abs() > case.rtol * (w.abs() + 0.1 * fscale) + 1e-6 {
            return Err(Mismatch(format!("forward[{i}]: tape {g}, reference {w}")));
        }
    }
    let proj: Vec<f32> = (0..or * oc).map(|_| rng.gen_range(-1.0..=1.0)).collect();
    let r = tape.constant(or, oc, &proj);
    let weighted = tape.mul(out, r);
    let loss = tape.sum(weighted);
    tape.backward(loss, &mut params);
    let objective = |x: &[Vec<f64>]| -> f64 {
        reference(x)
            .iter()
            .zip(&proj)
            .map(|(a, &b)| a * b as f64)
            .sum()
    };
    for (k, &id) in ids.iter().enumerate() {
        let ana = params.grad_to_host(id);
        let n = ana.len();
        let picks: Vec<usize> = if n <= case.samples {
            (0..n).collect()
        } else {
            (0..case.samples).map(|_| rng.gen_range(0..n)).collect()
        };
        let mut nums = Vec::with_capacity(picks.len());
        for &i in &picks {
            let mut x = x64.clone();
            let h = 1e-6 * x[k][i].abs().max(1.0);
            x[k][i] += h;
            let fp = objective(&x);
            x[k][i] -= 2.0 * h;
            let fm = objective(&x);
            nums.push((fp - fm) / (2.0 * h));
        }
        let gscale = nums.iter().fold(0.0f64, |a, b| a.max(b.abs())).max(1e-3);
        for (&i, &num) in picks.iter().zip(&nums) {
            let a = ana[i] as f64;
            if (a - num).abs() > case.rtol * (num.abs() + 0.05 * gscale) + 1e-6 {
                return Err(Mismatch(format!(
                    "grad of input {k} [{i}]: tape {a}, finite difference {num}"
                )));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The checker must reject a wrong sign, a missing term and a transposed operand. Each
    /// "mutant" reference below differs from the op in exactly one such way.
    #[test]
    fn mutations_are_caught() {
        let (m, k, n) = (4, 3, 5);
        let case = || Case::new(11).input(m, k, -1.0, 1.0).input(k, n, -1.0, 1.0);
        let matmul = |t: &mut Tape<Cpu>, v: &[Var]| t.matmul(v[0], v[1]);
        let right =
            |x: &[Vec<f64>]| crate::ops::matmul::reference(&x[0], m, k, &x[1], k, n, false, false);
        assert!(try_check(case(), matmul, right).is_ok());
        // Transposed operand: B read as if stored [n,k].
        let transposed =
            |x: &[Vec<f64>]| crate::ops::matmul::reference(&x[0], m, k, &x[1], n, k, false, true);
        assert!(try_check(case(), matmul, transposed).is_err());
        // Wrong sign.
        let neg = |x: &[Vec<f64>]| right(x).into_iter().map(|v| -v).collect::<Vec<_>>();
        assert!(try_check(case(), matmul, neg).is_err());
        // Missing term: softplus(x) * x checked against a gradient-relevant missing factor.
        let c2 = || Case::new(12).input(3, 4, -2.0, 2.0);
        let build = |t: &mut Tape<Cpu>, v: &[Var]| {
            let s = t.softplus(v[0]);
            t.mul(s, v[0])
        };
        let full = |x: &[Vec<f64>]| {
            x[0].iter()
                .map(|&a| (1.0 + a.exp()).ln() * a)
                .collect::<Vec<_>>()
        };
        assert!(try_check(c2(), build, full).is_ok());
        // Same forward up to 1%: a dropped small term still fails the gradient check.
        let missing = |x: &[Vec<f64>]| {
            x[0].iter()
                .map(|&a| (1.0 + a.exp()).ln() * a - 0.01 * a * a)
                .collect::<Vec<_>>()
        };
        assert!(try_check(c2(), build, missing).is_err());
    }
}
