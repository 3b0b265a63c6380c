//! Adam / AdamW with a fused multi-tensor update (one launch per optimiser on a GPU) and
//! optional global-norm clipping.

use crate::backend::{AdamStep, AdamTensor};
use crate::ops::Backend;
use crate::tape::{GroupId, ParamId, Params};

/// Optimiser settings. `weight_decay` is decoupled (AdamW); 0 gives plain Adam.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamConfig {
    pub lr: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    pub weight_decay: f32,
    /// Scale all gradients of this optimiser down so their global L2 norm is at most this.
    pub clip_norm: Option<f32>,
    /// Multiplies every gradient before the update (without clipping): a gradient another
    /// loss's backward left, read as this optimiser's loss (e.g. -1/w for a term `-w L`).
    pub grad_scale: f32,
}

impl Default for AdamConfig {
    fn default() -> Self {
        AdamConfig {
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
            clip_norm: None,
            grad_scale: 1.0,
        }
    }
}

/// Adam over the parameters of some groups (one optimiser per network).
pub struct Adam<B: Backend> {
    pub cfg: AdamConfig,
    ids: Vec<ParamId>,
    m: Vec<B::Buf>,
    v: Vec<B::Buf>,
    step: u64,
    /// With clipping: the squared global norm (summed on the device) and the factor computed
    /// from it there, which the update kernels read: clipping costs no host round trip.
    clip: Option<(B::AccBuf, B::Buf)>,
    /// The multi-tensor calls' tables (on a GPU the update is one launch, the norm two; one
    /// table each, so neither is re-uploaded from step to step).
    update_table: B::TensorTable,
    norm_table: B::TensorTable,
}

impl<B: Backend> Adam<B> {
    /// An optimiser for every parameter (existing now) of `groups`.
    pub fn new(params: &Params<B>, groups: &[GroupId], cfg: AdamConfig) -> Self {
        assert!(
            cfg.clip_norm.is_none() || cfg.grad_scale == 1.0,
            "Adam: a gradient scale with clipping (the clipping factor replaces it)"
        );
        let ids: Vec<ParamId> = params
            .iter()
            .map(|p| p.4)
            .filter(|&id| groups.contains(&params.group_of(id)))
            .collect();
        let b = params.backend();
        let size = |id: ParamId| {
            let (r, c) = params.shape(id);
            r * c
        };
        let m = ids.iter().map(|&id| b.alloc(size(id))).collect();
        let v = ids.iter().map(|&id| b.alloc(size(id))).collect();
        Adam {
            cfg,
            ids,
            m,
            v,
            step: 0,
            clip: cfg.clip_norm.map(|_| (b.alloc_acc(1), b.alloc(1))),
            update_table: B::TensorTable::default(),
            norm_table: B::TensorTable::default(),
        }
    }

    /// Parameters this optimiser updates.
    pub fn param_ids(&self) -> &[ParamId] {
        &self.ids
    }

    /// Steps taken so far.
    pub fn steps(&self) -> u64 {
        self.step
    }

    /// One update of every owned parameter from its current gradient. Gradients are left
    /// as they are (the caller zeroes them).
    pub fn step(&mut self, params: &mut Params<B>) {
        self.step += 1;
        let t = self.step as i32;
        let b = params.backend().clone();
        let clip_norm = self.cfg.clip_norm;
        let scale = match (&mut self.clip, clip_norm) {
            (Some((norm, scale)), Some(c)) => {
                b.zero_acc(norm);
                for &id in &self.ids {
                    b.sq_norm_queue(&mut self.norm_table, params.grad_ref(id));
                }
                // SAFETY: the gradients belong to `params`, borrowed for this whole call.
                unsafe { b.sq_norm_flush(&mut self.norm_table, norm, 0) };
                b.clip_scale(norm, 0, c, scale);
                Some(&*scale)
            }
            _ => None,
        };
        let s = AdamStep {
            lr: self.cfg.lr,
            beta1: self.cfg.beta1,
            beta2: self.cfg.beta2,
            eps: self.cfg.eps,
            weight_decay: self.cfg.weight_decay,
            bias_c1: 1.0 - self.cfg.beta1.powi(t),
            bias_c2: 1.0 - self.cfg.beta2.powi(t),
            grad_scale: self.cfg.grad_scale,
        };
        for (k, &id) in self.ids.iter().enumerate() {
            let mut val = params.value_mut(id);
            let t = AdamTensor {
                param: &mut *val,
                grad: params.grad_ref(id),
                m: &mut self.m[k],
                v: &mut self.v[k],
            };
            b.adam_queue(&mut self.update_table, s, t, scale);
        }
        // SAFETY: values and gradients belong to `params` (borrowed for this call), the moments
        // to `self`; nothing queued is freed before the flush.
        unsafe { b.adam_flush(&mut self.update_table, s, scale) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::cpu::Cpu;
    use crate::tape::{Init, Tape};
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    /// Reference Adam(W) in f64 (PyTorch's formula).
    fn reference(
        p: &mut [f64],
        g: &[f64],
        m: &mut [f64],
        v: &mut [f64],
        t: i32,
        c: &AdamConfig,
        scale: f64,
    ) {
        let (b1, b2) = (c.beta1 as f64, c.beta2 as f64);
        for i in 0..p.len() {
            let gi = g[i] * scale;
            m[i] = b1 * m[i] + (1.0 - b1) * gi;
            v[i] = b2 * v[i] + (1.0 - b2) * gi * gi;
            let mh = m[i] / (1.0 - b1.powi(t));
            let vh = v[i] / (1.0 - b2.powi(t));
            p[i] *= 1.0 - c.lr as f64 * c.weight_decay as f64;
            p[i] -= c.lr as f64 * mh / (vh.sqrt() + c.eps as f64);
        }
    }

    fn run(cfg: AdamConfig) {
        let cpu = Cpu::new();
        let mut params = Params::new(cpu.clone());
        let enc = params.group("enc");
        let other = params.group("other");
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let w = params.add(enc, "w", 3, 4, Init::GlorotUniform, &mut rng);
        let u = params.add(other, "u", 2, 2, Init::GlorotUniform, &mut rng);
        let u0 = params.value_to_host(u);
        let mut opt = Adam::new(&params, &[enc], cfg);
        let mut p: Vec<f64> = params.value_to_host(w).iter().map(|&x| x as f64).collect();
        let (mut m, mut v) = (vec![0.0; 12], vec![0.0; 12]);
        for t in 1..=5 {
            params.zero_all_grads();
            let mut tape = Tape::new(cpu.clone());
            let (wv, uv) = (tape.param(&params, w), tape.param(&params, u));
            // loss = sum(w^3) + sum(u^2): gradient 3 w^2 (varies per step).
            let w2 = tape.square(wv);
            let w3 = tape.mul(w2, wv);
            let u2 = tape.square(uv);
            let (a, b) = (tape.sum(w3), tape.sum(u2));
            let l = tape.add(a, b);
            tape.backward(l, &mut params);
            let g: Vec<f64> = params.grad_to_host(w).iter().map(|&x| x as f64).collect();
            let norm = g.iter().map(|x| x * x).sum::<f64>().sqrt();
            let scale = match cfg.clip_norm {
                Some(c) if norm > c as f64 => c as f64 / (norm + 1e-6),
                _ => cfg.grad_scale as f64,
            };
            opt.step(&mut params);
            reference(&mut p, &g, &mut m, &mut v, t, &cfg, scale);
            let got = params.value_to_host(w);
            for (a, b) in got.iter().zip(&p) {
                assert!((*a as f64 - b).abs() < 1e-6, "step {t}: {a} vs {b}");
            }
        }
        assert_eq!(
            params.value_to_host(u),
            u0,
            "a parameter of another group moved"
        );
    }

    #[test]
    fn adam_matches_reference() {
        run(AdamConfig {
            lr: 0.01,
            ..Default::default()
        });
    }

    /// A negative gradient scale steps against the stored gradient (the reference scales it).
    #[test]
    fn adam_with_a_gradient_scale_matches_reference() {
        run(AdamConfig {
            lr: 0.01,
            grad_scale: -0.25,
            ..Default::default()
        });
    }

    #[test]
    fn adamw_with_clipping_matches_reference() {
        run(AdamConfig {
            lr: 0.01,
            weight_decay: 0.1,
            clip_norm: Some(0.5),
            ..Default::default()
        });
    }

    #[test]
    fn stale_tape_is_detected() {
        let cpu = Cpu::new();
        let mut params = Params::new(cpu.clone());
        let g = params.group("g");
        let w = params.add(
            g,
            "w",
            2,
            2,
            Init::Constant(1.0),
            &mut ChaCha8Rng::seed_from_u64(0),
        );
        let mut opt = Adam::new(&params, &[g], AdamConfig::default());
        let mut tape = Tape::new(cpu);
        let wv = tape.param(&params, w);
        let l = tape.sum(wv);
        tape.backward(l, &mut params);
        opt.step(&mut params);
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            tape.backward(l, &mut params)
        }));
        assert!(
            r.is_err(),
            "backward after a step must refuse the stale tape"
        );
    }
}
