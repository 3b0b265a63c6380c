use scdreamer::backend::Backend;
use scdreamer::backend::cpu::Cpu;
use std::time::Instant;
#[test]
fn probe() {
    let c = Cpu::new();
    let (n, g) = (128usize, 2000usize);
    let x: Vec<f32> = (0..n * g)
        .map(|i| {
            if i % 5 == 0 {
                (i % 97) as f32 / 97.0
            } else {
                0.0
            }
        })
        .collect();
    let mu: Vec<f32> = (0..n * g).map(|i| 0.05 + (i % 13) as f32 * 0.2).collect();
    let th: Vec<f32> = (0..g).map(|i| 0.2 + (i % 7) as f32 * 0.7).collect();
    let lg: Vec<f32> = (0..n * g).map(|i| -2.0 + (i % 11) as f32 * 0.4).collect();
    let mut ll = vec![0.0; n];
    let gg = vec![1.0; n];
    let (mut a, mut b, mut d) = (vec![0.0; n * g], vec![0.0; g], vec![0.0; n * g]);
    for _ in 0..2 {
        let t = Instant::now();
        c.zinb_fwd(&x, &mu, &th, &lg, n, g, 1e-4, &mut ll);
        let t1 = t.elapsed();
        let t = Instant::now();
        c.zinb_bwd(&x, &mu, &th, &lg, n, g, 1e-4, &gg, &mut a, &mut b, &mut d);
        println!(
            "fwd {:?} bwd {:?} threads {}",
            t1,
            t.elapsed(),
            rayon::current_num_threads()
        );
    }
}
