//! The tape API as the model code uses it: nested `tape.param(..)` arguments, inference in
//! chunks without gradients, detach/scale_grad, and bit-identical repeated training runs.

#[path = "common/step.rs"]
mod common_step;

use common_step::{Model, random_csr};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use scdreamer::backend::cpu::Cpu;
use scdreamer::nn::{Adam, AdamConfig, Linear};
use scdreamer::tape::{CsrData, GroupId, Init, InputTransform, ParamId, Params, Tape, Var};

fn setup() -> (
    Cpu,
    Params<Cpu>,
    GroupId,
    ParamId,
    ParamId,
    Linear,
    ChaCha8Rng,
) {
    let backend = Cpu::new();
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let mut params = Params::new(backend.clone());
    let enc = params.group("encoder");
    let w = params.add(enc, "enc_h1_w", 40, 16, Init::GlorotUniform, &mut rng);
    let wb = params.add(enc, "enc_batch", 3, 16, Init::GlorotUniform, &mut rng);
    let head = Linear::new(&mut params, enc, "enc_out", 16, 4, &mut rng);
    (backend, params, enc, w, wb, head, rng)
}

#[test]
fn nested_param_calls_and_chunked_inference() {
    let (backend, params, _enc, w, wb, head, mut rng) = setup();
    let x = random_csr(50, 40, 0.3, 1);
    let scale: Vec<f32> = (0..50).map(|i| 1.0 / (1.0 + i as f32)).collect();
    let data: CsrData<Cpu> = CsrData::upload(&backend, &x, Some(&scale)).unwrap();
    let rows: Vec<u32> = (0..50).collect();
    let batch: Vec<u32> = (0..50).map(|i| i % 3).collect();
    let mut tape = Tape::new(backend.clone());
    let forward =
        |tape: &mut Tape<Cpu>, rows: &[u32], batch: &[u32], rng: &mut ChaCha8Rng| -> Var {
            let h = tape.csr_matmul(
                &data,
                rows,
                InputTransform::Log1pScaled,
                tape.param(&params, w),
            );
            let h = tape.add_row_gather(h, tape.param(&params, wb), batch);
            let h = tape.leaky_relu(h, 0.2);
            let h = tape.dropout(h, 1.0, rng);
            head.forward(tape, &params, h)
        };
    tape.set_grad_enabled(false);
    let full = forward(&mut tape, &rows, &batch, &mut rng);
    let full = tape.to_host(full);
    // Same result chunk by chunk (odd chunk sizes, reset per chunk), and the pool stops
    // allocating once every chunk size has been seen.
    let mut chunked = Vec::new();
    let mut pool_sizes = Vec::new();
    for _ in 0..2 {
        chunked.clear();
        for c in rows.chunks(17) {
            tape.reset();
            let b = &batch[c[0] as usize..c[0] as usize + c.len()];
            let y = forward(&mut tape, c, b, &mut rng);
            chunked.extend(tape.to_host(y));
        }
        pool_sizes.push(tape.pool_allocations());
    }
    assert_eq!(full, chunked);
    assert_eq!(pool_sizes[0], pool_sizes[1]);
}

#[test]
fn detach_and_scale_grad() {
    let (backend, mut params, enc, w, _wb, _head, _rng) = setup();
    let mut tape = Tape::new(backend);
    let wv = tape.param(&params, w);
    let sq = tape.square(wv);
    // loss = sum(w^2) + sum(detach(w^2)) + sum(scale_grad(w, -3)): d/dw = 2w - 3.
    let d = tape.detach(sq);
    let r = tape.scale_grad(wv, -3.0);
    let (a, b, c) = (tape.sum(sq), tape.sum(d), tape.sum(r));
    let l = tape.add(a, b);
    let l = tape.add(l, c);
    params.zero_grad(enc);
    tape.backward(l, &mut params);
    let v = params.value_to_host(w);
    let g = params.grad_to_host(w);
    for (gi, vi) in g.iter().zip(&v) {
        assert!(
            (gi - (2.0 * vi - 3.0)).abs() < 1e-6,
            "{gi} vs {}",
            2.0 * vi - 3.0
        );
    }
    // Forward values of views are the original values.
    assert_eq!(tape.to_host(d), tape.to_host(sq));
    assert_eq!(tape.to_host(r), v);
}

#[test]
fn only_reachable_params_get_gradients_and_each_group_steps_alone() {
    let (backend, mut params, enc, w, wb, _head, mut rng) = setup();
    let dis = params.group("dis");
    let u = params.add(dis, "dis_w", 16, 1, Init::GlorotUniform, &mut rng);
    let mut opt_enc = Adam::new(
        &params,
        &[enc],
        AdamConfig {
            lr: 1e-2,
            ..Default::default()
        },
    );
    let mut tape = Tape::new(backend.clone());
    let x = tape.constant(5, 40, &vec![0.5; 200]);
    let h = tape.matmul(x, tape.param(&params, w));
    let hd = tape.detach(h);
    let o = tape.matmul(hd, tape.param(&params, u));
    let l = tape.mean(o);
    tape.backward(l, &mut params);
    assert!(
        params.grad_to_host(w).iter().all(|&g| g == 0.0),
        "detached path reached w"
    );
    assert!(params.grad_to_host(wb).iter().all(|&g| g == 0.0));
    assert!(params.grad_to_host(u).iter().any(|&g| g != 0.0));
    let (u0, w0) = (params.value_to_host(u), params.value_to_host(w));
    opt_enc.step(&mut params);
    assert_eq!(
        params.value_to_host(u),
        u0,
        "encoder optimiser moved a dis parameter"
    );
    assert_eq!(
        params.value_to_host(w),
        w0,
        "zero gradient must leave w unchanged"
    );
    assert_eq!(params.iter().map(|p| p.0).collect::<Vec<_>>()[0], "encoder");
}

#[test]
fn training_is_bit_identical_across_runs() {
    let run = || {
        let cpu = Cpu::new();
        let x = random_csr(400, 120, 0.15, 2);
        let data = CsrData::upload(&cpu, &x, None).unwrap();
        let mut model = Model::new(cpu.clone(), 120, 96, 10, 3);
        let mut tape = Tape::new(cpu);
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let mut losses = Vec::new();
        for s in 0..4u32 {
            let rows: Vec<u32> = (0..128).map(|i| (i * 3 + s * 17) % 400).collect();
            let b: Vec<u32> = rows.iter().map(|r| r % 3).collect();
            losses.push(model.step(&mut tape, &data, &rows, &b, &mut rng).to_bits());
        }
        let vals: Vec<u32> = model
            .params
            .iter()
            .flat_map(|p| model.params.value_to_host(p.4))
            .map(f32::to_bits)
            .collect();
        (losses, vals)
    };
    let a = run();
    assert_eq!(a, run());
    assert!(a.0.iter().all(|&l| f32::from_bits(l).is_finite()));
}

#[test]
fn second_graph_on_one_tape_after_an_optimiser_step() {
    // The trainer's "reuse" mode: AE step, optimiser step, then the discriminator graph on
    // the same tape (no reset) reads the updated weights and can be backpropagated.
    let (backend, mut params, enc, w, _wb, _head, _rng) = setup();
    let mut opt = Adam::new(
        &params,
        &[enc],
        AdamConfig {
            lr: 0.1,
            ..Default::default()
        },
    );
    let mut tape = Tape::new(backend);
    let x = tape.constant(2, 40, &vec![1.0; 80]);
    let h = tape.matmul(x, tape.param(&params, w));
    let l1 = tape.sum(h);
    tape.backward(l1, &mut params);
    opt.step(&mut params);
    let hd = tape.detach(h);
    let h2 = tape.matmul(x, tape.param(&params, w));
    let sq = tape.square(h2);
    let l2 = tape.sum(sq);
    let s_hd = tape.sum(hd);
    let l2 = tape.add(l2, s_hd);
    params.zero_grad(enc);
    tape.backward(l2, &mut params);
    // d/dW sum((xW)^2) = x^T 2 xW with the updated W: every row of x is ones.
    let wv = params.value_to_host(w);
    let g = params.grad_to_host(w);
    for j in 0..16 {
        let col: f32 = (0..40).map(|k| wv[k * 16 + j]).sum();
        for k in 0..40 {
            let want = 2.0 * 2.0 * col;
            assert!((g[k * 16 + j] - want).abs() < 1e-4 * want.abs().max(1.0));
        }
    }
}
