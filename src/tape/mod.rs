//! Reverse-mode autodiff tape over a backend's buffers ([`Memory`]).
//!
//! A [`Tape`] records the forward ops of one step as nodes in execution order (which is a
//! topological order), and [`Tape::backward`] walks them in reverse. Values and gradients
//! live in backend buffers taken from a pool keyed by length; [`Tape::reset`] returns all of
//! them, so a fixed-shape training loop stops allocating after its first step.
//!
//! Parameters are not copied into the tape: [`Tape::param`] shares the parameter's storage
//! and `backward` accumulates straight into [`Params`] gradients.
//!
//! Inference without gradients: `tape.set_grad_enabled(false)`, then per chunk
//! `tape.reset()` and the forward ops; nothing is kept for a backward pass.
//!
//! The tape knows no op: each node holds its op's backward as a plain function
//! ([`BackwardFn`]) and what it saved ([`Saved`]), so an op (`src/ops/`) adds itself without an
//! edit here. It needs only the buffers of a backend ([`Memory`]); the kernels are the ops'.

pub(crate) mod backward;
mod csr_data;
mod indices;
mod node;
mod params;
mod pool;

pub use crate::backend::InputTransform;
pub use csr_data::CsrData;
pub(crate) use indices::NodeIdx;
pub use indices::{DeviceIndices, Indices};
pub(crate) use node::{BackwardFn, Function, Node, Op, Saved};
pub use params::{GroupId, Init, ParamCell, ParamId, Params};

use crate::backend::Memory;
use pool::Pool;
use std::cell::RefCell;
use std::ops::Deref;
use std::sync::{Arc, RwLockReadGuard};

/// A value on the tape (a node or a parameter). Cheap to copy; valid until `reset`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Var(u32);

const PARAM_BIT: u32 = 1 << 31;

impl Var {
    /// An unused input slot of [`Saved`].
    const NONE: Var = Var(u32::MAX);
    fn param_index(self) -> Option<usize> {
        (self.0 & PARAM_BIT != 0).then_some((self.0 & !PARAM_BIT) as usize)
    }
    fn node_index(self) -> usize {
        debug_assert!(self.0 & PARAM_BIT == 0);
        self.0 as usize
    }
}

/// A parameter as seen by one tape: shared storage plus the version read at capture.
pub(crate) struct ParamSlot<B: Memory> {
    pub(crate) cell: Arc<ParamCell<B>>,
    pub(crate) version: u64,
}

/// The autodiff tape. See the module docs.
pub struct Tape<B: Memory> {
    pub(crate) backend: B,
    pub(crate) nodes: Vec<Node<B>>,
    pub(crate) pool: Pool<B>,
    /// Indexed by `ParamId`; filled by `param(&self)` (hence the RefCell, so that
    /// `tape.op(tape.param(..))` compiles). Ops access it through `get_mut`.
    pub(crate) params: RefCell<Vec<Option<ParamSlot<B>>>>,
    pub(crate) grad_enabled: bool,
}

/// A borrowed value buffer: a node's, or a read-locked parameter's.
pub(crate) enum ValRef<'a, B: Memory> {
    Node(&'a B::Buf),
    Param(RwLockReadGuard<'a, B::Buf>),
}

impl<B: Memory> Deref for ValRef<'_, B> {
    type Target = B::Buf;
    fn deref(&self) -> &B::Buf {
        match self {
            ValRef::Node(b) => b,
            ValRef::Param(g) => g,
        }
    }
}

/// Read access to all values while an op computes (borrowed from disjoint tape fields, so
/// the output buffer and the backend can be used at the same time).
pub(crate) struct Ctx<'a, B: Memory> {
    pub(crate) b: &'a B,
    nodes: &'a [Node<B>],
    params: &'a [Option<ParamSlot<B>>],
}

impl<'a, B: Memory> Ctx<'a, B> {
    pub(crate) fn val(&self, v: Var) -> ValRef<'a, B> {
        match v.param_index() {
            Some(p) => ValRef::Param(
                self.params[p]
                    .as_ref()
                    .expect("param var from another step")
                    .cell
                    .read(),
            ),
            None => {
                let n = &self.nodes[v.node_index()];
                match (&n.val, n.alias) {
                    (Some(b), _) => ValRef::Node(b),
                    (None, Some(a)) => self.val(a),
                    (None, None) => unreachable!("node without value"),
                }
            }
        }
    }
    pub(crate) fn aux(&self, v: Var) -> &'a B::Buf {
        self.aux_k(v, 0).expect("op saved no buffer")
    }
    pub(crate) fn aux_k(&self, v: Var, k: usize) -> Option<&'a B::Buf> {
        self.nodes[v.node_index()].aux[k].as_ref()
    }
    pub(crate) fn idx(&self, v: Var) -> &'a B::IdxBuf {
        self.nodes[v.node_index()]
            .idx
            .as_ref()
            .expect("op saved no indices")
            .buf()
    }
    pub(crate) fn csr(&self, v: Var) -> &'a B::CsrBuf {
        self.nodes[v.node_index()]
            .csr
            .as_ref()
            .expect("op saved no matrix")
    }
}

impl<B: Memory> Tape<B> {
    pub fn new(backend: B) -> Self {
        Tape {
            backend,
            nodes: Vec::new(),
            pool: Pool::new(),
            params: RefCell::new(Vec::new()),
            grad_enabled: true,
        }
    }

    pub fn backend(&self) -> &B {
        &self.backend
    }

    /// Start a new step: every node's buffers go back to the pool and all `Var`s of the
    /// previous step become invalid.
    pub fn reset(&mut self) {
        for mut n in self.nodes.drain(..) {
            let [a0, a1, a2] = &mut n.aux;
            for b in [n.val.take(), n.grad.take(), a0.take(), a1.take(), a2.take()]
                .into_iter()
                .flatten()
            {
                self.pool.give(&self.backend, b);
            }
            if let Some(NodeIdx::Pooled(i)) = n.idx.take() {
                self.pool.give_idx(n.idx_len, i);
            }
        }
        self.params.get_mut().iter_mut().for_each(|p| *p = None);
    }

    /// With `false`, ops record no gradient bookkeeping (inference); `backward` then has
    /// nothing to do. Takes effect for ops recorded afterwards.
    pub fn set_grad_enabled(&mut self, enabled: bool) {
        self.grad_enabled = enabled;
    }

    /// Buffers the pool had to allocate so far (constant in steady state).
    pub fn pool_allocations(&self) -> usize {
        self.pool.fresh_allocs
    }

    /// Number of nodes recorded since the last reset.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The parameter `id` as a tape value (shared, not copied: ops read its current value).
    /// Calling it twice in a step gives the same `Var`.
    pub fn param(&self, params: &Params<B>, id: ParamId) -> Var {
        let mut slots = self.params.borrow_mut();
        if slots.len() < params.len() {
            slots.resize_with(params.len(), || None);
        }
        match &mut slots[id.0] {
            // Changed since this tape first read it (an optimiser step between two graphs
            // on one tape): the new graph reads the new value, so backward through it is
            // valid again. Backward through the older graph is not, and is not detected.
            Some(slot) => slot.version = slot.cell.version(),
            None => {
                let cell = params.cell(id).clone();
                let version = cell.version();
                slots[id.0] = Some(ParamSlot { cell, version });
            }
        }
        Var(PARAM_BIT | id.0 as u32)
    }

    /// A constant (no gradient) from host data, `rows x cols` row-major.
    pub fn constant(&mut self, rows: usize, cols: usize, data: &[f32]) -> Var {
        assert_eq!(
            data.len(),
            rows * cols,
            "constant: {} values for {rows}x{cols}",
            data.len()
        );
        let mut buf = self.alloc(rows * cols);
        self.backend.upload(data, &mut buf);
        self.push(rows, cols, buf, Op::Leaf, false)
    }

    /// A constant `rows x cols` with every entry `value` (filled on the device: no upload).
    pub fn filled(&mut self, rows: usize, cols: usize, value: f32) -> Var {
        let mut buf = self.alloc(rows * cols);
        self.backend.fill(&mut buf, value);
        self.push(rows, cols, buf, Op::Leaf, false)
    }

    /// A constant copied from a device buffer of `rows x cols` values (a device-to-device copy:
    /// the step's gathered per-cell values enter the tape this way).
    pub fn copy_of(&mut self, src: &B::Buf, rows: usize, cols: usize) -> Var {
        assert_eq!(
            self.backend.len(src),
            rows * cols,
            "copy_of: {} values for {rows}x{cols}",
            self.backend.len(src)
        );
        let mut buf = self.alloc(rows * cols);
        self.backend.copy(src, &mut buf);
        self.push(rows, cols, buf, Op::Leaf, false)
    }

    /// A trainable input leaf (gets a gradient in `backward`, readable with `grad_to_host`).
    pub fn input(&mut self, rows: usize, cols: usize, data: &[f32]) -> Var {
        let v = self.constant(rows, cols, data);
        self.nodes[v.node_index()].needs_grad = self.grad_enabled;
        v
    }

    /// (rows, cols) of a value.
    pub fn shape(&self, v: Var) -> (usize, usize) {
        match v.param_index() {
            Some(p) => {
                let s = self.params.borrow();
                let c = &s[p].as_ref().expect("param var from another step").cell;
                (c.rows, c.cols)
            }
            None => {
                let n = &self.nodes[v.node_index()];
                (n.rows, n.cols)
            }
        }
    }

    /// Copy a value to the host (an explicit device round trip).
    pub fn to_host(&mut self, v: Var) -> Vec<f32> {
        let (r, c) = self.shape(v);
        let mut out = vec![0.0; r * c];
        self.to_host_into(v, &mut out);
        out
    }

    /// Copy a value into a host slice of the same length.
    pub fn to_host_into(&mut self, v: Var, out: &mut [f32]) {
        let cx = self.ctx();
        cx.b.download(&cx.val(v), out);
    }

    /// A 1x1 value as a host scalar.
    pub fn scalar(&mut self, v: Var) -> f32 {
        assert_eq!(self.shape(v), (1, 1), "scalar() of a non-1x1 value");
        let mut out = [0.0f32];
        self.to_host_into(v, &mut out);
        out[0]
    }

    /// The gradient of a node after `backward` (None if it got none). Param gradients are
    /// read through [`Params::grad_to_host`].
    pub fn grad_to_host(&self, v: Var) -> Option<Vec<f32>> {
        let n = &self.nodes[v.node_index()];
        let g = n.grad.as_ref()?;
        let mut out = vec![0.0; n.rows * n.cols];
        self.backend.download(g, &mut out);
        Some(out)
    }

    /// A value that stops gradients (shares the buffer, no copy).
    pub fn detach(&mut self, x: Var) -> Var {
        let (r, c) = self.shape(x);
        self.push_view(r, c, x, Op::Leaf, false)
    }

    /// Identity forward; multiplies the gradient by `s` on the way back (e.g. -1 for
    /// gradient reversal, or a loss weight applied to one branch only).
    pub fn scale_grad(&mut self, x: Var, s: f32) -> Var {
        let (r, c) = self.shape(x);
        let ng = self.needs_grad(x);
        self.push_view(r, c, x, Op::ScaleGrad { x, s }, ng)
    }

    // ---- helpers for ops ------------------------------------------------------------------

    pub(crate) fn ctx(&mut self) -> Ctx<'_, B> {
        Ctx {
            b: &self.backend,
            nodes: &self.nodes,
            params: self.params.get_mut(),
        }
    }

    pub(crate) fn needs_grad(&self, v: Var) -> bool {
        match v.param_index() {
            Some(_) => self.grad_enabled,
            None => self.nodes[v.node_index()].needs_grad,
        }
    }

    /// The indices an op keeps: host ones uploaded into a pooled buffer, device ones shared.
    pub(crate) fn node_idx(&mut self, ind: Indices<'_, B>) -> NodeIdx<B> {
        match ind {
            Indices::Host(s) => NodeIdx::Pooled(self.pool.take_idx(&self.backend, s)),
            Indices::Device(d) => NodeIdx::Shared(d.buf.clone()),
        }
    }

    /// Give back what [`Tape::node_idx`] took (`len` indices).
    pub(crate) fn give_node_idx(&mut self, len: usize, idx: NodeIdx<B>) {
        if let NodeIdx::Pooled(b) = idx {
            self.pool.give_idx(len, b);
        }
    }

    /// An uninitialised (pooled) buffer for an op output.
    pub(crate) fn alloc(&mut self, len: usize) -> B::Buf {
        self.pool.take(&self.backend, len)
    }

    /// A node computed by an op: `run` is its backward, `saved` what that reads.
    pub(crate) fn push_op(
        &mut self,
        rows: usize,
        cols: usize,
        val: B::Buf,
        ng: bool,
        saved: Saved,
        run: BackwardFn<B>,
    ) -> Var {
        self.push(rows, cols, val, Op::Run(run, saved), ng)
    }

    /// A node without gradient (data).
    pub(crate) fn push_leaf(&mut self, rows: usize, cols: usize, val: B::Buf) -> Var {
        self.push(rows, cols, val, Op::Leaf, false)
    }

    fn push(&mut self, rows: usize, cols: usize, val: B::Buf, op: Op<B>, ng: bool) -> Var {
        self.push_value(rows, cols, Ok(val), op, ng)
    }

    /// A node sharing `of`'s value (no copy).
    fn push_view(&mut self, rows: usize, cols: usize, of: Var, op: Op<B>, ng: bool) -> Var {
        self.push_value(rows, cols, Err(of), op, ng)
    }

    /// A node whose value is its own buffer (`Ok`) or another node's (`Err`, a view).
    fn push_value(
        &mut self,
        rows: usize,
        cols: usize,
        val: Result<B::Buf, Var>,
        op: Op<B>,
        ng: bool,
    ) -> Var {
        let (val, alias) = match val {
            Ok(buf) => (Some(buf), None),
            Err(of) => (None, Some(of)),
        };
        self.push_node(Node {
            rows,
            cols,
            val,
            alias,
            grad: None,
            needs_grad: ng && self.grad_enabled,
            op,
            aux: [None, None, None],
            idx: None,
            idx_len: 0,
            csr: None,
        })
    }

    fn push_node(&mut self, n: Node<B>) -> Var {
        assert!(self.nodes.len() < PARAM_BIT as usize, "tape too long");
        self.nodes.push(n);
        Var(self.nodes.len() as u32 - 1)
    }

    /// Mutable access to the node just pushed (to attach saved buffers).
    pub(crate) fn node_mut(&mut self, v: Var) -> &mut Node<B> {
        &mut self.nodes[v.node_index()]
    }
}
