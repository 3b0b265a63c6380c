//! The networks of scDREAMER (spec section 2): encoder, decoder, discriminator D2 and the
//! adversarial batch classifier. Every hidden layer is Dense -> LeakyReLU(0.2) -> inverted
//! dropout; there is no batch or layer norm (is_bn=False in the authors' code). This file holds
//! the pieces the networks share.

mod adversaries;
mod decoder;
mod encoder;

pub use adversaries::{Classifier, DiscInput, Discriminator};
pub use decoder::{Decoder, DecoderOut};
pub use encoder::{Encoder, EncoderOut};

use rand_chacha::ChaCha8Rng;

use crate::model::config::{ModelConfig, VarianceHead};
use crate::nn::Linear;
use crate::ops::Backend;
use crate::tape::{CsrData, GroupId, Indices, Init, InputTransform, ParamId, Params, Tape, Var};

/// Glorot-uniform with explicit fans: the batch one-hot columns share the fan-in of the layer
/// they are concatenated into in the authors' code (concat[x, onehot(s)] -> Dense).
fn glorot(fan_in: usize, fan_out: usize) -> Init {
    let l = (6.0 / (fan_in + fan_out) as f32).sqrt();
    Init::Uniform(-l, l)
}

/// The first layer of the encoder and the decoder: `concat[x, onehot(s)] -> Dense` as in the
/// authors' code, held as the weights of x, the rows of the batches and the bias
/// (`{prefix}_h1_w`, `{prefix}_h1_wbatch`, `{prefix}_h1_b`).
struct BatchFirstLayer {
    w: ParamId,
    w_batch: ParamId,
    b: ParamId,
}

impl BatchFirstLayer {
    fn new<B: Backend>(
        params: &mut Params<B>,
        group: GroupId,
        prefix: &str,
        (n_in, n_batches, width): (usize, usize, usize),
        rng: &mut ChaCha8Rng,
    ) -> Self {
        // The one-hot batch columns are rows of the same Glorot-initialised weight matrix as x
        // in the authors' code, so they share its fan-in.
        let init = glorot(n_in + n_batches, width);
        let w = params.add(group, &format!("{prefix}_h1_w"), n_in, width, init, rng);
        let name = format!("{prefix}_h1_wbatch");
        let w_batch = params.add(group, &name, n_batches, width, init, rng);
        let b = params.add(group, &format!("{prefix}_h1_b"), 1, width, Init::Zeros, rng);
        BatchFirstLayer { w, w_batch, b }
    }
}

/// Where a network's new parameters go: the store, the network's group (one optimiser each) and
/// the random stream that initialises them in order of creation.
pub struct NewParams<'a, B: Backend> {
    pub params: &'a mut Params<B>,
    pub group: GroupId,
    pub rng: &'a mut ChaCha8Rng,
}

impl<'a, B: Backend> NewParams<'a, B> {
    pub fn new(params: &'a mut Params<B>, group: GroupId, rng: &'a mut ChaCha8Rng) -> Self {
        NewParams { params, group, rng }
    }
}

/// How a network runs in one forward pass: its parameters and config, whether it trains
/// (dropout on), and whether its own weights are frozen: detached, so that no gradient is
/// computed for them (the adversaries inside the autoencoder's loss, which the AE optimiser
/// does not move).
pub struct Pass<'a, B: Backend> {
    pub params: &'a Params<B>,
    pub cfg: &'a ModelConfig,
    pub train: bool,
    pub frozen: bool,
}

// By hand: a derive would ask `B: Copy`, and a pass holds only references.
impl<B: Backend> Clone for Pass<'_, B> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<B: Backend> Copy for Pass<'_, B> {}

impl<'a, B: Backend> Pass<'a, B> {
    /// Training (dropout on), weights not frozen.
    pub fn train(params: &'a Params<B>, cfg: &'a ModelConfig) -> Self {
        Pass {
            params,
            cfg,
            train: true,
            frozen: false,
        }
    }

    /// Inference: no dropout.
    pub fn eval(params: &'a Params<B>, cfg: &'a ModelConfig) -> Self {
        Pass {
            train: false,
            ..Self::train(params, cfg)
        }
    }

    /// The same pass with the network's weights frozen or not.
    pub fn frozen(self, frozen: bool) -> Self {
        Pass { frozen, ..self }
    }
}

/// A parameter on the tape, detached when the pass freezes it.
fn param<B: Backend>(tape: &mut Tape<B>, pass: Pass<'_, B>, id: ParamId) -> Var {
    let v = tape.param(pass.params, id);
    if pass.frozen { tape.detach(v) } else { v }
}

/// `x W + b`, with the parameters frozen when the pass says so.
fn linear<B: Backend>(tape: &mut Tape<B>, pass: Pass<'_, B>, l: &Linear, x: Var) -> Var {
    let w = param(tape, pass, l.w);
    let b = param(tape, pass, l.b);
    let h = tape.matmul(x, w);
    tape.add_bias(h, b)
}

/// Dense -> LeakyReLU -> dropout (training only).
pub fn hidden_act<B: Backend>(
    tape: &mut Tape<B>,
    h: Var,
    cfg: &ModelConfig,
    train: bool,
    rng: &mut ChaCha8Rng,
) -> Var {
    let h = tape.leaky_relu(h, cfg.leak);
    if train && cfg.keep_prob < 1.0 {
        tape.dropout(h, cfg.keep_prob, rng)
    } else {
        h
    }
}

/// A variance head: the authors' unbounded `exp`, or `exp(clamp(h)) + 1e-4`.
pub fn variance<B: Backend>(tape: &mut Tape<B>, h: Var, head: VarianceHead) -> Var {
    match head {
        VarianceHead::Exp => tape.exp(h),
        VarianceHead::SafeExp => {
            let c = tape.clamp(h, -15.0, 15.0);
            let e = tape.exp(c);
            tape.add_scalar(e, 1e-4)
        }
    }
}

/// Where the first layer of the encoder and the discriminator read the cells from.
pub struct SparseInput<'a, B: Backend> {
    pub data: &'a CsrData<B>,
    pub transform: InputTransform,
    /// Multiplies the first layer's output: folds a global scale of the input (1/max) into it.
    pub scale: f32,
    /// `T(X[rows])` of one training step's minibatch, gathered densely once (see
    /// [`DENSE_INPUT_MIN_DENSITY`]): every first layer of that step multiplies it, with the
    /// step's `rows`, instead of reading the CSR matrix.
    pub dense: Option<Var>,
}

/// At this fraction of stored entries and above, a training step gathers its minibatch's input
/// densely once and its first layers use dense GEMMs: the CSR product reads every stored entry
/// (and takes its log) once per use, five uses a step, and loses to the dense GEMM on dense
/// data (BENCHMARKS.md, "Fewer passes a step").
pub const DENSE_INPUT_MIN_DENSITY: f64 = 0.2;

impl<B: Backend> SparseInput<'_, B> {
    /// Whether a training step should gather this input densely.
    pub fn dense_enough(&self) -> bool {
        let cells = (self.data.n_rows * self.data.n_cols).max(1) as f64;
        self.data.nnz as f64 / cells >= DENSE_INPUT_MIN_DENSITY
    }
}

/// First layer applied to sparse input: `scale * T(X[rows]) W` (from the dense gather when the
/// input holds one for these rows).
fn sparse_first_layer<B: Backend>(
    tape: &mut Tape<B>,
    input: &SparseInput<B>,
    rows: Indices<'_, B>,
    w: Var,
) -> Var {
    let h = match input.dense {
        Some(x) => {
            debug_assert_eq!(tape.shape(x).0, rows.len(), "dense input of other rows");
            tape.matmul(x, w)
        }
        None => tape.csr_matmul(input.data, rows, input.transform, w),
    };
    if input.scale != 1.0 {
        tape.scale(h, input.scale)
    } else {
        h
    }
}

/// Stack of hidden layers after the first one.
pub struct Hidden {
    layers: Vec<Linear>,
}

/// Dense layers between consecutive `widths`, named `{prefix}_h{first}`, `{prefix}_h{first + 1}`,
/// ... (the authors' parameter names).
pub fn dense_stack<B: Backend>(
    params: &mut Params<B>,
    group: GroupId,
    (prefix, first): (&str, usize),
    widths: &[usize],
    rng: &mut ChaCha8Rng,
) -> Vec<Linear> {
    widths
        .windows(2)
        .enumerate()
        .map(|(i, w)| {
            let name = format!("{prefix}_h{}", i + first);
            Linear::new(params, group, &name, w[0], w[1], rng)
        })
        .collect()
}

impl Hidden {
    /// The layers after a network's first: named from `{prefix}_h2` on.
    fn new<B: Backend>(
        params: &mut Params<B>,
        group: GroupId,
        prefix: &str,
        widths: &[usize],
        rng: &mut ChaCha8Rng,
    ) -> Self {
        Hidden {
            layers: dense_stack(params, group, (prefix, 2), widths, rng),
        }
    }

    fn forward<B: Backend>(
        &self,
        tape: &mut Tape<B>,
        pass: Pass<'_, B>,
        mut h: Var,
        rng: &mut ChaCha8Rng,
    ) -> Var {
        for l in &self.layers {
            h = linear(tape, pass, l, h);
            h = hidden_act(tape, h, pass.cfg, pass.train, rng);
        }
        h
    }
}
