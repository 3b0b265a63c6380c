//! Interleaved A/B timings (min and median of N alternating runs) for the comparisons
//! whose ratio matters: CSR x dense vs dense GEMM, fused vs unfused ZINB, and the step.
//! Alternating A and B and reporting the minimum keeps the ratios meaningful on a machine
//! shared with other jobs. Prints a markdown table.
//!
//! `cargo bench --bench cpu_ops_ab` (threads: 1 and 2, each in its own rayon pool).

#[path = "common/mod.rs"]
mod common;
#[path = "../tests/common/step.rs"]
mod common_step;

use common::{kang, rand_vec, zinb_inputs, zinb_params, zinb_unfused};
use common_step::Model;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use scdreamer::backend::cpu::Cpu;
use scdreamer::backend::{GemmSpec, InputTransform};
use scdreamer::ops::prelude::*;
use scdreamer::tape::{CsrData, Tape};
use std::time::Instant;

/// (min, median) seconds of `reps` alternating runs of a and b.
fn ab(reps: usize, mut a: impl FnMut(), mut b: impl FnMut()) -> ((f64, f64), (f64, f64)) {
    a();
    b();
    let (mut ta, mut tb) = (Vec::new(), Vec::new());
    for _ in 0..reps {
        let t = Instant::now();
        a();
        ta.push(t.elapsed().as_secs_f64());
        let t = Instant::now();
        b();
        tb.push(t.elapsed().as_secs_f64());
    }
    let stat = |v: &mut Vec<f64>| {
        v.sort_by(|x, y| x.partial_cmp(y).unwrap());
        (v[0], v[v.len() / 2])
    };
    (stat(&mut ta), stat(&mut tb))
}

fn row(name: &str, a: &str, b: &str, r: ((f64, f64), (f64, f64))) {
    let ((amin, amed), (bmin, bmed)) = r;
    println!(
        "| {name} | {a}: {:.3} ms ({:.3}) | {b}: {:.3} ms ({:.3}) | {:.2}x ({:.2}x) |",
        amin * 1e3,
        amed * 1e3,
        bmin * 1e3,
        bmed * 1e3,
        bmin / amin,
        bmed / amed
    );
}

fn main() {
    let x = kang();
    let reps = 15;
    for threads in [1usize, 2] {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            println!("\n### {threads} thread(s)\n");
            println!("| comparison | A min (median) | B min (median) | B/A min (median) |");
            println!("|---|---|---|---|");
            let cpu = Cpu::new();
            let csr = cpu.upload_csr(&x, None).unwrap();
            let n_out = 512;
            let w = rand_vec(x.n_cols * n_out, 3);
            for batch in [128usize, 1024] {
                let rows: Vec<u32> = (0..batch as u32).map(|i| (i * 37) % x.n_rows as u32).collect();
                let mut dense = vec![0.0; batch * x.n_cols];
                cpu.csr_gather_dense(&csr, &rows, batch, InputTransform::Log1p, &mut dense);
                let (mut o1, mut o2) = (vec![0.0; batch * n_out], vec![0.0; batch * n_out]);
                let fwd = GemmSpec { m: batch, n: n_out, k: x.n_cols, trans_a: false, trans_b: false, alpha: 1.0, beta: 0.0 };
                let r = ab(
                    reps,
                    || cpu.csr_matmul(&csr, &rows, batch, InputTransform::Log1p, &w, n_out, &mut o1),
                    || cpu.gemm(fwd, &dense, &w, &mut o2),
                );
                row(&format!("X[{batch} cells] W, 2000->512"), "CSR log1p", "dense GEMM", r);
                let dy = rand_vec(batch * n_out, 4);
                let (mut d1, mut d2) = (vec![0.0; x.n_cols * n_out], vec![0.0; x.n_cols * n_out]);
                let wg = GemmSpec { m: x.n_cols, n: n_out, k: batch, trans_a: true, trans_b: false, alpha: 1.0, beta: 1.0 };
                let r = ab(
                    reps,
                    || cpu.csr_matmul_wgrad(&csr, &rows, batch, InputTransform::Log1p, &dy, n_out, &mut d1),
                    || cpu.gemm(wg, &dense, &dy, &mut d2),
                );
                row(&format!("X^T dY [{batch} cells], 2000x512"), "CSR log1p", "dense GEMM", r);
            }
            // Fused vs unfused ZINB, forward + backward through the tape.
            let (n, g) = (128usize, 2000usize);
            let zi = zinb_inputs(n, g);
            let xs = &zi.xs;
            let mut rng = ChaCha8Rng::seed_from_u64(9);
            let (params, [mu, th, lg]) = zinb_params(&cpu, n, g, &mut rng);
            let mut t1 = Tape::new(cpu.clone());
            let mut t2 = Tape::new(cpu.clone());
            let p = std::cell::RefCell::new(params);
            {
                // Both sides compute the same likelihood (checked once, not timed).
                let p = p.borrow();
                let mut t = Tape::new(cpu.clone());
                let xv = t.constant(n, g, xs);
                let (m, tt, l) = (t.param(&p, mu), t.param(&p, th), t.param(&p, lg));
                let f = t.zinb_loglik(xv, m, tt, l);
                let f = t.mean(f);
                let u = zinb_unfused(&mut t, &zi, xv, [m, tt, l]);
                let u = t.mean(u);
                let (f, u) = (t.scalar(f), t.scalar(u));
                assert!((f - u).abs() <= 1e-4 * f.abs().max(1.0), "fused {f} vs unfused {u}");
            }
            let r = ab(
                reps,
                || {
                    let mut p = p.borrow_mut();
                    t1.reset();
                    let xv = t1.constant(n, g, xs);
                    let (m, t, l) = (t1.param(&p, mu), t1.param(&p, th), t1.param(&p, lg));
                    let ll = t1.zinb_loglik(xv, m, t, l);
                    let s = t1.mean(ll);
                    t1.backward(s, &mut p);
                },
                || {
                    let mut p = p.borrow_mut();
                    t2.reset();
                    let xv = t2.constant(n, g, xs);
                    let (m, t, l) = (t2.param(&p, mu), t2.param(&p, th), t2.param(&p, lg));
                    let ll = zinb_unfused(&mut t2, &zi, xv, [m, t, l]);
                    let s = t2.mean(ll);
                    t2.backward(s, &mut p);
                },
            );
            row("ZINB fwd+bwd 128x2000 (tape)", "fused", "unfused ops", r);
            let ((fmin, _), _) = r;
            println!("\nfused ZINB: {:.1} M elements/s (min time)\n", (n * g) as f64 / fmin / 1e6);
            // Full scDREAMER-shaped step.
            let data = CsrData::upload(&cpu, &x, None).unwrap();
            let mut model = Model::new(cpu.clone(), x.n_cols, 512, 10, 5);
            let mut tape = Tape::new(cpu.clone());
            let rows: Vec<u32> = (0..128u32).map(|i| (i * 37) % x.n_rows as u32).collect();
            let bidx: Vec<u32> = (0..128u32).map(|i| i % 5).collect();
            let mut times = Vec::new();
            for k in 0..reps + 2 {
                let t = Instant::now();
                model.step(&mut tape, &data, &rows, &bidx, &mut rng);
                if k >= 2 {
                    times.push(t.elapsed().as_secs_f64());
                }
            }
            times.sort_by(|a, b| a.partial_cmp(b).unwrap());
            println!(
                "full step (128 cells, G=2000, H=512, 4 networks, 3 Adam): min {:.2} ms, median {:.2} ms",
                times[0] * 1e3,
                times[times.len() / 2] * 1e3
            );
        });
    }
}
