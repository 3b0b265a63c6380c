//! Data and baselines shared by the CPU benchmarks.
#![allow(dead_code)]

use crate::common_step::random_csr;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use scdreamer::backend::cpu::Cpu;
use scdreamer::data::Csr;
use scdreamer::tape::{Init, ParamId, Params, Tape, Var};

pub fn read_csr(path: &str) -> Option<Csr> {
    let b = std::fs::read(path).ok()?;
    let u64s = |off: usize, n: usize| -> Vec<u64> {
        (0..n)
            .map(|i| u64::from_le_bytes(b[off + 8 * i..off + 8 * i + 8].try_into().unwrap()))
            .collect()
    };
    let h = u64s(0, 3);
    let (r, c, nnz) = (h[0] as usize, h[1] as usize, h[2] as usize);
    let indptr = u64s(24, r + 1);
    let o = 24 + 8 * (r + 1);
    let indices = (0..nnz)
        .map(|i| u32::from_le_bytes(b[o + 4 * i..o + 4 * i + 4].try_into().unwrap()))
        .collect();
    let o = o + 4 * nnz;
    let data = (0..nnz)
        .map(|i| f32::from_le_bytes(b[o + 4 * i..o + 4 * i + 4].try_into().unwrap()))
        .collect();
    Some(Csr {
        n_rows: r,
        n_cols: c,
        indptr,
        indices,
        data,
    })
}

pub fn kang() -> Csr {
    let path = std::env::var("KANG_HVG_CSR").unwrap_or_else(|_| "/tmp/kang_hvg2000.csr".into());
    match read_csr(&path) {
        Some(m) => {
            eprintln!(
                "CSR bench: {path}: {}x{}, density {:.4}",
                m.n_rows,
                m.n_cols,
                m.nnz() as f64 / (m.n_rows * m.n_cols) as f64
            );
            m
        }
        None => {
            eprintln!("CSR bench: {path} absent; random 8684x2000 at density 0.1565");
            random_csr(8684, 2000, 0.1565, 7)
        }
    }
}

pub fn rand_vec(n: usize, seed: u64) -> Vec<f32> {
    let mut r = ChaCha8Rng::seed_from_u64(seed);
    (0..n).map(|_| r.gen_range(-1.0..1.0)).collect()
}

/// ZINB benchmark counts `xs` (n x g, 80% zeros) and the host constants of the unfused
/// formula: zero mask, non-zero mask, lgamma(x+1) and zeros.
pub struct ZinbInputs {
    pub n: usize,
    pub g: usize,
    pub xs: Vec<f32>,
    zero: Vec<f32>,
    nz: Vec<f32>,
    lgx1: Vec<f32>,
    zeros: Vec<f32>,
}

/// The ZINB benchmark parameters mu [n,g], theta [1,g] and logit [n,g], drawn from `rng`.
pub fn zinb_params(
    cpu: &Cpu,
    n: usize,
    g: usize,
    rng: &mut ChaCha8Rng,
) -> (Params<Cpu>, [ParamId; 3]) {
    let mut params = Params::new(cpu.clone());
    let grp = params.group("g");
    let mu = params.add(grp, "mu", n, g, Init::Uniform(0.05, 3.0), rng);
    let th = params.add(grp, "th", 1, g, Init::Uniform(0.2, 5.0), rng);
    let lg = params.add(grp, "lg", n, g, Init::Uniform(-2.0, 2.0), rng);
    (params, [mu, th, lg])
}

pub fn zinb_inputs(n: usize, g: usize) -> ZinbInputs {
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let xs: Vec<f32> = (0..n * g)
        .map(|_| {
            if rng.gen_bool(0.8) {
                0.0
            } else {
                rng.gen_range(0.01f32..1.0)
            }
        })
        .collect();
    let zero: Vec<f32> = xs.iter().map(|&v| (v < 1e-4) as u8 as f32).collect();
    let nz: Vec<f32> = zero.iter().map(|v| 1.0 - v).collect();
    let lgx1: Vec<f32> = xs
        .iter()
        .map(|&v| scdreamer::special::lgamma(v as f64 + 1.0) as f32)
        .collect();
    ZinbInputs {
        n,
        g,
        xs,
        zero,
        nz,
        lgx1,
        zeros: vec![0.0; n * g],
    }
}

/// ZINB log-likelihood of x (`host.xs` on the tape) given [mu, theta, logit], written with
/// ordinary tape ops (the unfused baseline); uploads its constants from `host`.
pub fn zinb_unfused(t: &mut Tape<Cpu>, host: &ZinbInputs, x: Var, mtl: [Var; 3]) -> Var {
    let (n, g) = (host.n, host.g);
    let [zero, nz, lgx1, zeros] =
        [&host.zero, &host.nz, &host.lgx1, &host.zeros].map(|v| t.constant(n, g, v));
    let [mu, theta, logit] = mtl;
    let eps = 1e-4;
    let th = t.add_bias(zeros, theta);
    let nl = t.scale(logit, -1.0);
    let sp_neg = t.softplus(nl);
    let the = t.add_scalar(th, eps);
    let lte = t.log(the);
    let thmu = t.add(th, mu);
    let thmu = t.add_scalar(thmu, eps);
    let ltme = t.log(thmu);
    let d = t.sub(lte, ltme);
    let td = t.mul(th, d);
    let ptl = t.add(nl, td);
    let spp = t.softplus(ptl);
    let case_zero = t.sub(spp, sp_neg);
    let mue = t.add_scalar(mu, eps);
    let lmu = t.log(mue);
    let dd = t.sub(lmu, ltme);
    let xd = t.mul(x, dd);
    let xth = t.add(x, th);
    let lg1 = t.lgamma(xth);
    let lg2 = t.lgamma(th);
    let a = t.sub(ptl, sp_neg);
    let a = t.add(a, xd);
    let a = t.add(a, lg1);
    let a = t.sub(a, lg2);
    let case_nz = t.sub(a, lgx1);
    let z = t.mul(zero, case_zero);
    let n = t.mul(nz, case_nz);
    let r = t.add(z, n);
    t.sum_rows(r)
}
