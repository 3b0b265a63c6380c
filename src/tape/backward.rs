//! The reverse pass: walks the nodes backwards and runs each node's backward.

use super::{Op, Params, Tape, Var};
use crate::backend::Memory;

/// The gradient buffer of one op input during backward. `fresh` means it was just
/// zero-allocated (an overwriting kernel may then write it directly).
pub(crate) struct GradOut<B: Memory> {
    pub(crate) var: Var,
    pub(crate) buf: Option<B::Buf>,
    pub(crate) fresh: bool,
}

impl<B: Memory> GradOut<B> {
    pub(crate) fn buf(&mut self) -> &mut B::Buf {
        self.buf.as_mut().expect("gradient buffer lent out")
    }
}

/// `Option<&mut GradOut>` -> `Option<&mut Buf>` for backend calls.
pub(crate) fn gbuf<B: Memory>(g: &mut Option<GradOut<B>>) -> Option<&mut B::Buf> {
    g.as_mut().map(|g| g.buf())
}

impl<B: Memory> Tape<B> {
    /// Reverse pass from `loss` (any shape; seeded with ones, i.e. the gradient of its sum).
    /// Accumulates into the gradients of every parameter reachable from `loss` (call
    /// `Params::zero_grad` between steps). May be called several times on one forward (each
    /// call recomputes node gradients from scratch); panics if a parameter used by this tape
    /// was changed (e.g. by an optimiser step) since the forward read it.
    pub fn backward(&mut self, loss: Var, params: &mut Params<B>) {
        if !self.grad_enabled && !self.needs_grad(loss) {
            return;
        }
        assert!(loss.param_index().is_none(), "backward from a parameter");
        for i in 0..self.nodes.len() {
            if let Some(g) = self.nodes[i].grad.take() {
                self.pool.give(&self.backend, g);
            }
        }
        let li = loss.node_index();
        if !self.nodes[li].needs_grad {
            return;
        }
        let len = self.nodes[li].rows * self.nodes[li].cols;
        let mut seed = self.alloc(len);
        self.backend.fill(&mut seed, 1.0);
        self.nodes[li].grad = Some(seed);
        for i in (0..=li).rev() {
            if !self.nodes[i].needs_grad {
                continue;
            }
            let Some(g) = self.nodes[i].grad.take() else {
                continue;
            };
            let out = Var(i as u32);
            let op = self.nodes[i].op;
            self.dispatch_backward(out, op, &g, params);
            self.nodes[i].grad = Some(g);
        }
    }

    fn dispatch_backward(&mut self, out: Var, op: Op<B>, g: &B::Buf, p: &mut Params<B>) {
        match op {
            Op::Leaf => {}
            Op::ScaleGrad { x, s } => {
                let mut gx = self.grad_take(x, p);
                if let Some(gx) = gx.as_mut() {
                    self.backend.axpy(s, g, gx.buf());
                }
                self.grad_put(gx, p);
            }
            Op::Run(run, saved) => run(self, out, &saved, g, p),
        }
    }

    /// The accumulating gradient buffer of `v`, or None when `v` needs no gradient.
    pub(crate) fn grad_take(&mut self, v: Var, params: &mut Params<B>) -> Option<GradOut<B>> {
        if !self.needs_grad(v) {
            return None;
        }
        match v.param_index() {
            Some(p) => {
                let slots = self.params.get_mut();
                let slot = slots[p].as_ref().expect("param var from another step");
                let id = super::ParamId(p);
                assert!(
                    slot.cell.version() == slot.version,
                    "parameter {:?} changed after this tape read it (optimiser step before \
                     backward?); reset the tape and run the forward again",
                    params.name(id)
                );
                match params.take_grad(id) {
                    Some(b) => Some(GradOut {
                        var: v,
                        buf: Some(b),
                        fresh: false,
                    }),
                    None => {
                        // The same parameter is another input of this op.
                        let (r, c) = params.shape(id);
                        let len = r * c;
                        let b = self.pool.take_zeroed(&self.backend, len);
                        Some(GradOut {
                            var: v,
                            buf: Some(b),
                            fresh: true,
                        })
                    }
                }
            }
            None => {
                let i = v.node_index();
                match self.nodes[i].grad.take() {
                    Some(b) => Some(GradOut {
                        var: v,
                        buf: Some(b),
                        fresh: false,
                    }),
                    None => {
                        let len = self.nodes[i].rows * self.nodes[i].cols;
                        let b = self.pool.take_zeroed(&self.backend, len);
                        Some(GradOut {
                            var: v,
                            buf: Some(b),
                            fresh: true,
                        })
                    }
                }
            }
        }
    }

    /// Return a buffer from `grad_take`.
    pub(crate) fn grad_put(&mut self, g: Option<GradOut<B>>, params: &mut Params<B>) {
        let Some(g) = g else { return };
        let buf = g.buf.expect("gradient buffer lent out");
        // A slot that is filled again means the same value was another input of the op:
        // add this contribution and recycle the temporary.
        match g.var.param_index() {
            Some(p) => {
                if let Some(tmp) = params.put_grad(super::ParamId(p), buf) {
                    self.pool.give(&self.backend, tmp);
                }
            }
            None => {
                let slot = &mut self.nodes[g.var.node_index()].grad;
                match slot.as_mut() {
                    None => *slot = Some(buf),
                    Some(have) => {
                        self.backend.axpy(1.0, &buf, have);
                        self.pool.give(&self.backend, buf);
                    }
                }
            }
        }
    }

    /// A buffer an overwriting kernel (fused losses) may write the gradient of `go` into:
    /// the gradient itself when fresh, else scratch to be added by `overwrite_finish`.
    pub(crate) fn overwrite_target(&mut self, go: &mut Option<GradOut<B>>, len: usize) -> B::Buf {
        match go {
            Some(g) if g.fresh => g.buf.take().expect("gradient buffer lent out"),
            _ => self.alloc(len),
        }
    }

    pub(crate) fn overwrite_finish(&mut self, go: &mut Option<GradOut<B>>, tgt: B::Buf) {
        match go {
            Some(g) if g.buf.is_none() => g.buf = Some(tgt),
            Some(g) => {
                self.backend.axpy(1.0, &tgt, g.buf());
                self.pool.give(&self.backend, tgt);
            }
            None => self.pool.give(&self.backend, tgt),
        }
    }
}
