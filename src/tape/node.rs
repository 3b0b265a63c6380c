//! A node of the tape: its value and gradient, and how its gradient reaches the op's inputs
//! (the op's backward function and what the forward saved for it).

use super::{InputTransform, NodeIdx, Params, Tape, Var};
use crate::backend::{Binary, Memory, Unary};
use std::sync::Arc;

/// What an op's backward reads besides its node's value and gradient, saved by the forward:
/// its inputs, up to two constants, flags and the elementwise function it applied (each op
/// says what its slots mean).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Saved {
    vars: [Var; 4],
    pub(crate) scalars: [f32; 2],
    pub(crate) flags: u32,
    pub(crate) function: Function,
}

/// The function of the backend's vocabulary an op applied (for its backward).
#[derive(Clone, Copy, Debug)]
pub(crate) enum Function {
    None,
    Unary(Unary),
    Binary(Binary),
    Transform(InputTransform),
}

impl Saved {
    /// The inputs `vars` (at most four), no constants.
    pub(crate) fn of(vars: &[Var]) -> Self {
        let mut all = [Var::NONE; 4];
        all[..vars.len()].copy_from_slice(vars);
        Saved {
            vars: all,
            scalars: [0.0; 2],
            flags: 0,
            function: Function::None,
        }
    }
    pub(crate) fn scalars(mut self, scalars: [f32; 2]) -> Self {
        self.scalars = scalars;
        self
    }
    pub(crate) fn flags(mut self, flags: u32) -> Self {
        self.flags = flags;
        self
    }
    pub(crate) fn function(mut self, f: Function) -> Self {
        self.function = f;
        self
    }
    /// The `i`-th input given to [`Saved::of`].
    pub(crate) fn var(&self, i: usize) -> Var {
        debug_assert!(self.vars[i] != Var::NONE, "input {i} was not saved");
        self.vars[i]
    }
    /// Bit `i` of the flags.
    pub(crate) fn flag(&self, i: u32) -> bool {
        self.flags & (1 << i) != 0
    }
}

/// An op's backward: `(tape, out, saved, upstream gradient of out, params)` adds the gradients
/// of the op's inputs. A plain function (no allocation per node); ops write it as a closure that
/// captures nothing.
pub(crate) type BackwardFn<B> = fn(&mut Tape<B>, Var, &Saved, &<B as Memory>::Buf, &mut Params<B>);

/// How a node's gradient reaches its inputs.
pub(crate) enum Op<B: Memory> {
    /// Data or a detached view: nothing to pass on.
    Leaf,
    /// A view whose gradient is scaled by `s` on the way to `x`.
    ScaleGrad { x: Var, s: f32 },
    /// An op of `src/ops/`.
    Run(BackwardFn<B>, Saved),
}

impl<B: Memory> Clone for Op<B> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<B: Memory> Copy for Op<B> {}

pub(crate) struct Node<B: Memory> {
    pub(crate) rows: usize,
    pub(crate) cols: usize,
    /// None for views (detach/scale_grad), whose value is `alias`'s.
    pub(crate) val: Option<B::Buf>,
    pub(crate) alias: Option<Var>,
    pub(crate) grad: Option<B::Buf>,
    pub(crate) needs_grad: bool,
    pub(crate) op: Op<B>,
    /// Op-specific saved buffers (dropout mask, sampled noise, CE mask, stashed loss
    /// gradients).
    pub(crate) aux: [Option<B::Buf>; 3],
    /// Op-specific indices (minibatch rows, covariate indices, labels).
    pub(crate) idx: Option<NodeIdx<B>>,
    pub(crate) idx_len: usize,
    pub(crate) csr: Option<Arc<B::CsrBuf>>,
}
