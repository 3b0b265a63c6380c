//! CPU op benchmarks (results in BENCHMARKS.md, section "CPU ops").
//!
//! `cargo bench --bench cpu_ops` (set RAYON_NUM_THREADS to pin the thread count).
//! The CSR group reads kang_pbmc's 2,000 HVGs exported by
//! `scripts/export_kang_hvg_csr.py` (default /tmp/kang_hvg2000.csr, or $KANG_HVG_CSR);
//! without it, a random matrix with the same shape and density (15.65%) is used.

#[path = "common/mod.rs"]
mod common;
#[path = "../tests/common/step.rs"]
mod common_step;

use common::{kang, rand_vec, zinb_inputs, zinb_params, zinb_unfused};

use common_step::Model;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use scdreamer::backend::cpu::Cpu;
use scdreamer::backend::{GemmSpec, InputTransform};
use scdreamer::ops::prelude::*;
use scdreamer::tape::{CsrData, Init, Params, Tape};
use std::hint::black_box;
use std::time::Duration;

fn matmul(c: &mut Criterion) {
    let cpu = Cpu::new();
    let mut g = c.benchmark_group("matmul");
    g.sample_size(10).measurement_time(Duration::from_secs(4));
    // (m, n, k, trans_a, trans_b, label)
    let shapes = [
        (4096, 256, 2000, false, false, "4096x2000 * 2000x256"),
        (128, 512, 2000, false, false, "enc fwd 128x2000 * 2000x512"),
        (128, 2000, 512, false, false, "dec fwd 128x512 * 512x2000"),
        (2000, 512, 128, true, false, "enc dW 2000x128^T * 128x512"),
        (
            128,
            512,
            2000,
            false,
            true,
            "dec dX 128x2000 * (512x2000)^T",
        ),
    ];
    for (m, n, k, ta, tb, label) in shapes {
        let a = rand_vec(m * k, 1);
        let b = rand_vec(k * n, 2);
        let mut out = vec![0.0; m * n];
        g.throughput(Throughput::Elements((2 * m * n * k) as u64));
        g.bench_function(BenchmarkId::new("gemm_flops", label), |bch| {
            bch.iter(|| {
                let s = GemmSpec {
                    m,
                    n,
                    k,
                    trans_a: ta,
                    trans_b: tb,
                    alpha: 1.0,
                    beta: 0.0,
                };
                cpu.gemm(s, &a, &b, &mut out);
                black_box(&out);
            })
        });
    }
    g.finish();
}

fn csr_vs_dense(c: &mut Criterion) {
    let cpu = Cpu::new();
    let x = kang();
    let data = CsrData::upload(&cpu, &x, None).unwrap();
    let csr = cpu.upload_csr(&x, None).unwrap();
    let mut g = c.benchmark_group("csr_vs_dense");
    g.sample_size(10).measurement_time(Duration::from_secs(3));
    let n_out = 512;
    let w = rand_vec(x.n_cols * n_out, 3);
    for batch in [128usize, 1024] {
        let rows: Vec<u32> = (0..batch as u32)
            .map(|i| (i * 37) % x.n_rows as u32)
            .collect();
        let mut dense = vec![0.0; batch * x.n_cols];
        cpu.csr_gather_dense(&csr, &rows, batch, InputTransform::Log1p, &mut dense);
        let mut out = vec![0.0; batch * n_out];
        let dy = rand_vec(batch * n_out, 4);
        let mut dw = vec![0.0; x.n_cols * n_out];
        g.throughput(Throughput::Elements(batch as u64));
        g.bench_function(BenchmarkId::new("fwd csr_matmul log1p", batch), |b| {
            b.iter(|| {
                cpu.csr_matmul(
                    &csr,
                    &rows,
                    batch,
                    InputTransform::Log1p,
                    &w,
                    n_out,
                    &mut out,
                )
            })
        });
        g.bench_function(
            BenchmarkId::new("fwd dense gemm (pre-densified)", batch),
            |b| {
                b.iter(|| {
                    let s = GemmSpec {
                        m: batch,
                        n: n_out,
                        k: x.n_cols,
                        trans_a: false,
                        trans_b: false,
                        alpha: 1.0,
                        beta: 0.0,
                    };
                    cpu.gemm(s, &dense, &w, &mut out)
                })
            },
        );
        g.bench_function(BenchmarkId::new("wgrad csr X^T dY", batch), |b| {
            b.iter(|| {
                cpu.csr_matmul_wgrad(
                    &csr,
                    &rows,
                    batch,
                    InputTransform::Log1p,
                    &dy,
                    n_out,
                    &mut dw,
                )
            })
        });
        g.bench_function(BenchmarkId::new("wgrad dense gemm X^T dY", batch), |b| {
            b.iter(|| {
                let s = GemmSpec {
                    m: x.n_cols,
                    n: n_out,
                    k: batch,
                    trans_a: true,
                    trans_b: false,
                    alpha: 1.0,
                    beta: 1.0,
                };
                cpu.gemm(s, &dense, &dy, &mut dw)
            })
        });
    }
    // The tape-level op (with pool, index upload and bookkeeping) for reference.
    let rows: Vec<u32> = (0..128u32).map(|i| (i * 37) % x.n_rows as u32).collect();
    let mut params = Params::new(cpu.clone());
    let grp = params.group("g");
    let wid = params.add(
        grp,
        "w",
        x.n_cols,
        n_out,
        Init::GlorotUniform,
        &mut ChaCha8Rng::seed_from_u64(1),
    );
    let mut tape = Tape::new(cpu.clone());
    g.throughput(Throughput::Elements(128));
    g.bench_function("tape csr_matmul fwd+bwd 128", |b| {
        b.iter(|| {
            tape.reset();
            let wv = tape.param(&params, wid);
            let y = tape.csr_matmul(&data, &rows, InputTransform::Log1p, wv);
            let l = tape.sum(y);
            tape.backward(l, &mut params);
        })
    });
    g.finish();
}

fn zinb(c: &mut Criterion) {
    let cpu = Cpu::new();
    let (n, gn) = (128usize, 2000usize);
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let zi = zinb_inputs(n, gn);
    let xs = &zi.xs;
    let (mut params, mtl) = zinb_params(&cpu, n, gn, &mut rng);
    let mut tape = Tape::new(cpu.clone());
    let mut g = c.benchmark_group("zinb");
    g.sample_size(20).measurement_time(Duration::from_secs(3));
    g.throughput(Throughput::Elements((n * gn) as u64));
    let mut fwd_bwd = |unfused: bool| {
        tape.reset();
        let x = tape.constant(n, gn, xs);
        let [m, t, l] = mtl.map(|p| tape.param(&params, p));
        let ll = if unfused {
            zinb_unfused(&mut tape, &zi, x, [m, t, l])
        } else {
            tape.zinb_loglik(x, m, t, l)
        };
        let s = tape.sum(ll);
        tape.backward(s, &mut params);
    };
    g.bench_function("fused fwd+bwd 128x2000", |b| b.iter(|| fwd_bwd(false)));
    g.bench_function("unfused tape ops fwd+bwd 128x2000", |b| {
        b.iter(|| fwd_bwd(true))
    });
    g.finish();
}

fn train_step(c: &mut Criterion) {
    let cpu = Cpu::new();
    let x = kang();
    let data = CsrData::upload(&cpu, &x, None).unwrap();
    let mut model = Model::new(cpu.clone(), x.n_cols, 512, 10, 5);
    let mut tape = Tape::new(cpu);
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let rows: Vec<u32> = (0..128u32).map(|i| (i * 37) % x.n_rows as u32).collect();
    let batch: Vec<u32> = (0..128u32).map(|i| i % 5).collect();
    let mut g = c.benchmark_group("step");
    g.sample_size(10).measurement_time(Duration::from_secs(5));
    g.throughput(Throughput::Elements(128));
    g.bench_function("scdreamer-shaped step, 128 cells, G=2000, H=512", |b| {
        b.iter(|| model.step(&mut tape, &data, &rows, &batch, &mut rng))
    });
    g.finish();
}

criterion_group!(benches, matmul, csr_vs_dense, zinb, train_step);
criterion_main!(benches);
