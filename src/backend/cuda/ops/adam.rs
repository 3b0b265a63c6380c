//! Launcher of `kernels/adam.cu`: one launch updates every tensor of an optimiser.

use anyhow::{Result, bail};
use cudarc::driver::{CudaSlice, DevicePtr, PushKernelArg};

use super::cfg_1d;
use crate::backend::cuda::CudaRuntime;

/// `ADAM_BLOCK` and `ADAM_CHUNK` in adam.cu.
pub const ADAM_BLOCK: u32 = 256;
pub const ADAM_CHUNK: usize = 4096;

/// Adam hyper-parameters of one step; see [`AdamScalars::tf1`] and [`AdamScalars::pytorch`].
#[derive(Clone, Copy, Debug)]
pub struct AdamScalars {
    pub beta1: f32,
    pub beta2: f32,
    pub step_size: f32,
    pub v_scale: f32,
    pub eps: f32,
}

impl AdamScalars {
    /// TF1 `AdamOptimizer` at step `t` (1-based): eps is "epsilon hat".
    pub fn tf1(lr: f32, beta1: f32, beta2: f32, eps: f32, t: u32) -> Self {
        let (b1t, b2t) = (beta1.powi(t as i32), beta2.powi(t as i32));
        AdamScalars {
            beta1,
            beta2,
            step_size: lr * (1.0 - b2t).sqrt() / (1.0 - b1t),
            v_scale: 1.0,
            eps,
        }
    }

    /// PyTorch `Adam` at step `t` (1-based).
    pub fn pytorch(lr: f32, beta1: f32, beta2: f32, eps: f32, t: u32) -> Self {
        let (b1t, b2t) = (beta1.powi(t as i32), beta2.powi(t as i32));
        AdamScalars {
            beta1,
            beta2,
            step_size: lr / (1.0 - b1t),
            v_scale: 1.0 / (1.0 - b2t).sqrt(),
            eps,
        }
    }
}

/// The pointer and chunk tables of one optimiser's tensors, on the GPU.
///
/// It records raw device pointers: the parameter, gradient and moment buffers given to
/// [`AdamGroup::new`] must stay alive (and not be reallocated) while the group is used.
pub struct AdamGroup {
    params: CudaSlice<u64>,
    grads: CudaSlice<u64>,
    m1: CudaSlice<u64>,
    m2: CudaSlice<u64>,
    sizes: CudaSlice<i64>,
    block_tensor: CudaSlice<i32>,
    block_start: CudaSlice<i64>,
    n_blocks: usize,
}

/// One tensor of an optimiser: parameter, gradient, first and second moment (same length).
pub struct AdamTensor<'a> {
    pub param: &'a CudaSlice<f32>,
    pub grad: &'a CudaSlice<f32>,
    pub m: &'a CudaSlice<f32>,
    pub v: &'a CudaSlice<f32>,
}

impl AdamGroup {
    /// Build the tables once per optimiser.
    pub fn new(rt: &CudaRuntime, tensors: &[AdamTensor]) -> Result<Self> {
        let s = &rt.stream;
        let (mut p, mut g, mut m, mut v, mut sizes) = (vec![], vec![], vec![], vec![], vec![]);
        let (mut block_tensor, mut block_start) = (vec![], vec![]);
        for (i, t) in tensors.iter().enumerate() {
            let n = t.param.len();
            if t.grad.len() != n || t.m.len() != n || t.v.len() != n {
                bail!("Adam tensor {i}: parameter, gradient and moments differ in length");
            }
            p.push(t.param.device_ptr(s).0);
            g.push(t.grad.device_ptr(s).0);
            m.push(t.m.device_ptr(s).0);
            v.push(t.v.device_ptr(s).0);
            sizes.push(n as i64);
            for start in (0..n).step_by(ADAM_CHUNK) {
                block_tensor.push(i as i32);
                block_start.push(start as i64);
            }
        }
        Ok(AdamGroup {
            params: s.clone_htod(&p)?,
            grads: s.clone_htod(&g)?,
            m1: s.clone_htod(&m)?,
            m2: s.clone_htod(&v)?,
            sizes: s.clone_htod(&sizes)?,
            n_blocks: block_tensor.len(),
            block_tensor: s.clone_htod(&block_tensor)?,
            block_start: s.clone_htod(&block_start)?,
        })
    }

    /// One Adam step over every tensor; `zero_grad` clears the gradients afterwards.
    /// Mirrors `nn::optim::adam_step`.
    pub fn step(&self, rt: &CudaRuntime, k: AdamScalars, zero_grad: bool) -> Result<()> {
        if self.n_blocks == 0 {
            return Ok(());
        }
        if self.n_blocks > i32::MAX as usize {
            bail!("too many Adam chunks for one launch");
        }
        let f = rt.function("adam", "adam_multi_tensor")?;
        let z = i32::from(zero_grad);
        let mut l = rt.stream.launch_builder(&f);
        l.arg(&self.params)
            .arg(&self.grads)
            .arg(&self.m1)
            .arg(&self.m2)
            .arg(&self.sizes)
            .arg(&self.block_tensor)
            .arg(&self.block_start)
            .arg(&k.beta1)
            .arg(&k.beta2)
            .arg(&k.step_size)
            .arg(&k.v_scale)
            .arg(&k.eps)
            .arg(&z);
        let mut cfg = cfg_1d(1, ADAM_BLOCK);
        // One block per chunk: the chunk table indexes blockIdx.x, so no grid-stride cap here.
        cfg.grid_dim.0 = self.n_blocks as u32;
        // SAFETY: the tables were built from live buffers of the recorded lengths.
        unsafe { l.launch(cfg) }?;
        Ok(())
    }
}
