//! Counts heap allocations per training step with a counting global allocator: after
//! warm-up, a fixed-shape step must not allocate in the tape, the ops or the CPU backend.

#[path = "common/step.rs"]
mod common_step;

use common_step::{Model, random_csr};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use scdreamer::backend::cpu::Cpu;
use scdreamer::tape::{CsrData, Tape};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

struct Counting;
static ALLOCS: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// The counter is global: the tests of this file must not run at the same time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn steady_state_step_allocation_count() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let cpu = Cpu::new();
    let (cells, genes, batch) = (600, 300, 64);
    let x = random_csr(cells, genes, 0.1, 1);
    let data = CsrData::upload(&cpu, &x, None).unwrap();
    let mut model = Model::new(cpu.clone(), genes, 64, 10, 3);
    let mut tape = Tape::new(cpu);
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let rows: Vec<u32> = (0..batch as u32).map(|i| i * 7 % cells as u32).collect();
    let bidx: Vec<u32> = (0..batch as u32).map(|i| i % 3).collect();
    let pool = rayon::ThreadPoolBuilder::new().build().unwrap();
    let steps = 5;
    let (allocs, pool_before) = pool.install(|| {
        for _ in 0..3 {
            model.step(&mut tape, &data, &rows, &bidx, &mut rng);
        }
        let pool_before = tape.pool_allocations();
        let before = ALLOCS.load(Ordering::Relaxed);
        for _ in 0..steps {
            let l = model.step(&mut tape, &data, &rows, &bidx, &mut rng);
            assert!(l.is_finite());
        }
        (ALLOCS.load(Ordering::Relaxed) - before, pool_before)
    });
    let per_step = allocs as f64 / steps as f64;
    println!(
        "steady state: {per_step} heap allocations per step, {} tape nodes, pool buffers {}",
        tape.len(),
        tape.pool_allocations()
    );
    assert_eq!(
        tape.pool_allocations(),
        pool_before,
        "the buffer pool grew in steady state"
    );
    // Budget: the tape, the ops and the CPU kernels allocate nothing (next test); what is
    // left comes from below us: the `gemm` crate allocates 1-5 packing workspaces per call
    // (~26 gemm calls in this step) and the fused ZINB kernel (backend::cpu::losses) 7 small
    // vectors per forward+backward. Measured 63.4.
    assert!(per_step <= 90.0, "{per_step} allocations per step");
}

/// The same kind of step without dense GEMM and without the ZINB/NB kernels: the tape,
/// its pool, the sparse kernel, elementwise ops, the remaining fused losses and Adam must
/// not allocate at all in steady state.
#[test]
fn tape_and_cpu_kernels_do_not_allocate_in_steady_state() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    use scdreamer::nn::{Adam, AdamConfig};
    use scdreamer::tape::{Init, InputTransform, Params};
    let cpu = Cpu::new();
    let (cells, genes, batch, hidden) = (2000, 400, 256, 128);
    let x = random_csr(cells, genes, 0.1, 1);
    let data = CsrData::upload(&cpu, &x, None).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let mut p = Params::new(cpu.clone());
    let g = p.group("g");
    let w = p.add(g, "w", genes, hidden, Init::GlorotUniform, &mut rng);
    let wm = p.add(g, "wm", genes, 10, Init::GlorotUniform, &mut rng);
    let wv = p.add(g, "wv", genes, 10, Init::GlorotUniform, &mut rng);
    let tb = p.add(g, "tb", 3, hidden, Init::GlorotUniform, &mut rng);
    let bias = p.add(g, "b", 1, hidden, Init::Zeros, &mut rng);
    let mut opt = Adam::new(
        &p,
        &[g],
        AdamConfig {
            clip_norm: Some(1.0),
            ..Default::default()
        },
    );
    let rows: Vec<u32> = (0..batch as u32).map(|i| i * 7 % cells as u32).collect();
    let bidx: Vec<u32> = (0..batch as u32).map(|i| i % 3).collect();
    let mut tape = Tape::new(cpu);
    let mut step = |tape: &mut Tape<Cpu>, p: &mut Params<Cpu>, rng: &mut ChaCha8Rng| {
        tape.reset();
        let wv_ = tape.param(p, w);
        let h = tape.csr_matmul(&data, &rows, InputTransform::Log1p, wv_);
        let t = tape.param(p, tb);
        let h = tape.add_row_gather(h, t, &bidx);
        let b = tape.param(p, bias);
        let h = tape.add_bias(h, b);
        let h = tape.leaky_relu(h, 0.2);
        let h = tape.dropout(h, 0.9, rng);
        let s = tape.softmax_rows(h);
        let r = tape.sum_rows(h);
        let s = tape.mul_rows(s, r);
        let m_ = tape.param(p, wm);
        let zm = tape.csr_matmul(&data, &rows, InputTransform::Log1p, m_);
        let v_ = tape.param(p, wv);
        let zv = tape.csr_matmul(&data, &rows, InputTransform::Log1p, v_);
        let zv = tape.exp(zv);
        let z = tape.sample_gaussian(zm, zv, rng);
        let kl = tape.kl_std_normal(zm, zv);
        let kl = tape.mean(kl);
        let a = tape.sum_rows(s);
        let bb = tape.sum_rows(z);
        let bb = tape.square(bb);
        let bc = tape.bhattacharyya_loss(a, bb);
        let ce = tape.cross_entropy(z, &bidx, None);
        let l = tape.add(kl, bc);
        let l = tape.add(l, ce);
        p.zero_grad(g);
        tape.backward(l, p);
        opt.step(p);
        tape.scalar(l)
    };
    // Run the loop on a rayon worker (as a training loop should): jobs injected from an
    // outside thread go through rayon's global injector queue, which allocates a block
    // every 63 injections; jobs forked on a worker use its preallocated local deque.
    let pool = rayon::ThreadPoolBuilder::new().build().unwrap();
    let n = pool.install(|| {
        for _ in 0..3 {
            step(&mut tape, &mut p, &mut rng);
        }
        let before = ALLOCS.load(Ordering::Relaxed);
        for _ in 0..20 {
            assert!(step(&mut tape, &mut p, &mut rng).is_finite());
        }
        ALLOCS.load(Ordering::Relaxed) - before
    });
    println!(
        "no-gemm step: {n} allocations in 20 steps ({} nodes)",
        tape.len()
    );
    assert_eq!(n, 0, "tape/ops/CPU kernels allocated in steady state");
}
