//! A scDREAMER-shaped training step on the tape (shared by the allocation test and the
//! benchmarks through `#[path]`): encoder with CSR input and batch covariates, sampling,
//! KL, decoder with softmax scale and ZINB, discriminator with Bhattacharyya, batch
//! classifier with cross-entropy, one Adam step per network.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use scdreamer::data::Csr;
use scdreamer::nn::{Adam, AdamConfig, Linear};
use scdreamer::ops::Backend;
use scdreamer::tape::{CsrData, GroupId, Init, InputTransform, ParamId, Params, Tape};

pub struct Model<B: Backend> {
    pub params: Params<B>,
    pub groups: Vec<GroupId>,
    pub enc_w: ParamId,
    pub enc_batch: ParamId,
    pub enc_b: ParamId,
    pub z_m: Linear,
    pub z_v: Linear,
    pub dec_batch: ParamId,
    pub dec_h: Linear,
    pub dec_rho: Linear,
    pub dec_pi: Linear,
    pub theta: ParamId,
    pub dis_h: Linear,
    pub dis_o: Linear,
    pub cls_h: Linear,
    pub cls_o: Linear,
    pub opts: Vec<Adam<B>>,
}

/// A random count matrix with the given density (values 1..30).
pub fn random_csr(rows: usize, cols: usize, density: f64, seed: u64) -> Csr {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    scdreamer::sim::uniform::uniform_counts(&mut rng, rows, cols, density, 30)
}

impl<B: Backend> Model<B> {
    pub fn new(b: B, genes: usize, hidden: usize, z: usize, batches: usize) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let mut p = Params::new(b);
        let (enc, dec, dis, cls) = (
            p.group("enc"),
            p.group("dec"),
            p.group("dis"),
            p.group("cls"),
        );
        let enc_w = p.add(enc, "enc_w", genes, hidden, Init::GlorotUniform, &mut rng);
        let enc_batch = p.add(
            enc,
            "enc_batch",
            batches,
            hidden,
            Init::GlorotUniform,
            &mut rng,
        );
        let enc_b = p.add(enc, "enc_b", 1, hidden, Init::Zeros, &mut rng);
        let z_m = Linear::new(&mut p, enc, "z_m", hidden, z, &mut rng);
        let z_v = Linear::new(&mut p, enc, "z_v", hidden, z, &mut rng);
        let dec_batch = p.add(
            dec,
            "dec_batch",
            batches,
            hidden,
            Init::GlorotUniform,
            &mut rng,
        );
        let dec_h = Linear::new(&mut p, dec, "dec_h", z, hidden, &mut rng);
        let dec_rho = Linear::new(&mut p, dec, "dec_rho", hidden, genes, &mut rng);
        let dec_pi = Linear::new(&mut p, dec, "dec_pi", hidden, genes, &mut rng);
        let theta = p.add(dec, "theta", 1, genes, Init::Normal(1.0), &mut rng);
        let dis_h = Linear::new(&mut p, dis, "dis_h", genes, hidden, &mut rng);
        let dis_o = Linear::new(&mut p, dis, "dis_o", hidden, 1, &mut rng);
        let cls_h = Linear::new(&mut p, cls, "cls_h", z, hidden, &mut rng);
        let cls_o = Linear::new(&mut p, cls, "cls_o", hidden, batches, &mut rng);
        let cfg = AdamConfig {
            lr: 2e-4,
            ..Default::default()
        };
        let opts = vec![
            Adam::new(&p, &[enc, dec], cfg),
            Adam::new(&p, &[dis], cfg),
            Adam::new(&p, &[cls], cfg),
        ];
        Model {
            params: p,
            groups: vec![enc, dec, dis, cls],
            enc_w,
            enc_batch,
            enc_b,
            z_m,
            z_v,
            dec_batch,
            dec_h,
            dec_rho,
            dec_pi,
            theta,
            dis_h,
            dis_o,
            cls_h,
            cls_o,
            opts,
        }
    }

    /// One training step (forward, backward of the summed losses, Adam); returns the loss.
    pub fn step(
        &mut self,
        tape: &mut Tape<B>,
        data: &CsrData<B>,
        rows: &[u32],
        batch: &[u32],
        rng: &mut ChaCha8Rng,
    ) -> f32 {
        tape.reset();
        let p = &self.params;
        let w = tape.param(p, self.enc_w);
        let h = tape.csr_matmul(data, rows, InputTransform::Log1p, w);
        let eb = tape.param(p, self.enc_batch);
        let h = tape.add_row_gather(h, eb, batch);
        let b = tape.param(p, self.enc_b);
        let h = tape.add_bias(h, b);
        let h = tape.leaky_relu(h, 0.2);
        let h = tape.dropout(h, 0.9, rng);
        let zm = self.z_m.forward(tape, p, h);
        let zv = self.z_v.forward(tape, p, h);
        let zv = tape.exp(zv);
        let z = tape.sample_gaussian(zm, zv, rng);
        let kl = tape.kl_std_normal(zm, zv);
        let hd = self.dec_h.forward(tape, p, z);
        let db = tape.param(p, self.dec_batch);
        let hd = tape.add_row_gather(hd, db, batch);
        let hd = tape.leaky_relu(hd, 0.2);
        let hd = tape.dropout(hd, 0.9, rng);
        let rho = self.dec_rho.forward(tape, p, hd);
        let rho = tape.softmax_rows(rho);
        let lib = tape.sum_rows(rho);
        let mu = tape.mul_rows(rho, lib);
        let mu = tape.scale(mu, 1e3);
        let pi = self.dec_pi.forward(tape, p, hd);
        let th = tape.param(p, self.theta);
        let theta = tape.exp(th);
        let x = tape.gather_dense_t(data, rows, InputTransform::Log1p);
        let ll = tape.zinb_loglik(x, mu, theta, pi);
        let xt = tape.sigmoid(rho);
        let a = self.dis_h.forward(tape, p, x);
        let a = tape.leaky_relu(a, 0.2);
        let a = self.dis_o.forward(tape, p, a);
        let bb = self.dis_h.forward(tape, p, xt);
        let bb = tape.leaky_relu(bb, 0.2);
        let bb = self.dis_o.forward(tape, p, bb);
        let bc = tape.bhattacharyya_loss(a, bb);
        let c = self.cls_h.forward(tape, p, z);
        let c = tape.leaky_relu(c, 0.2);
        let c = self.cls_o.forward(tape, p, c);
        let ce = tape.cross_entropy(c, batch, None);
        let elbo = tape.sub(ll, kl);
        let elbo = tape.mean(elbo);
        let l = tape.scale(elbo, -1.0);
        let l = tape.add(l, bc);
        let l = tape.add(l, ce);
        for &g in &self.groups {
            self.params.zero_grad(g);
        }
        tape.backward(l, &mut self.params);
        for o in &mut self.opts {
            o.step(&mut self.params);
        }
        tape.scalar(l)
    }
}
