//! Trainable parameters in named groups (one group per network, one optimiser per group).

use crate::backend::Memory;
use anyhow::{Result, ensure};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// Index of a parameter in its [`Params`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ParamId(pub usize);

/// Index of a named parameter group (one network).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupId(pub usize);

/// Initial values of a new parameter.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Init {
    Zeros,
    Constant(f32),
    /// U(-l, l), l = sqrt(6 / (fan_in + fan_out)), fan_in = rows, fan_out = cols; a 1-row
    /// parameter (a bias) uses fan_in = fan_out = cols like TensorFlow on a 1-D shape.
    GlorotUniform,
    Uniform(f32, f32),
    /// N(0, std^2).
    Normal(f32),
}

/// The shared storage of one parameter: the tape holds an `Arc` to it while a forward pass
/// uses it (no copy per step); the optimiser writes through the lock. `version` counts
/// writes so that a backward pass can detect a parameter changed under it.
pub struct ParamCell<B: Memory> {
    pub(crate) val: RwLock<B::Buf>,
    pub(crate) version: AtomicU64,
    pub(crate) rows: usize,
    pub(crate) cols: usize,
}

impl<B: Memory> ParamCell<B> {
    pub(crate) fn read(&self) -> RwLockReadGuard<'_, B::Buf> {
        self.val.read().unwrap_or_else(|e| e.into_inner())
    }
    pub(crate) fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }
}

struct Entry<B: Memory> {
    group: GroupId,
    name: String,
    cell: Arc<ParamCell<B>>,
    /// Always `Some` except while a backward pass borrows it.
    grad: Option<B::Buf>,
}

/// All parameters of a model, in named groups.
pub struct Params<B: Memory> {
    backend: B,
    groups: Vec<String>,
    entries: Vec<Entry<B>>,
}

impl<B: Memory> Params<B> {
    pub fn new(backend: B) -> Self {
        Params {
            backend,
            groups: Vec::new(),
            entries: Vec::new(),
        }
    }

    pub fn backend(&self) -> &B {
        &self.backend
    }

    /// The group called `name`, created if new.
    pub fn group(&mut self, name: &str) -> GroupId {
        if let Some(i) = self.groups.iter().position(|g| g == name) {
            return GroupId(i);
        }
        self.groups.push(name.to_string());
        GroupId(self.groups.len() - 1)
    }

    pub fn group_name(&self, g: GroupId) -> &str {
        &self.groups[g.0]
    }

    /// Add a `rows x cols` parameter to `group`. Panics on a duplicate name (a programming
    /// error in the model definition, not a user input).
    pub fn add(
        &mut self,
        group: GroupId,
        name: &str,
        rows: usize,
        cols: usize,
        init: Init,
        rng: &mut ChaCha8Rng,
    ) -> ParamId {
        assert!(self.find(name).is_none(), "parameter {name:?} added twice");
        assert!(
            group.0 < self.groups.len(),
            "parameter {name:?}: unknown group {group:?}"
        );
        let n = rows * cols;
        let host: Vec<f32> = match init {
            Init::Zeros => vec![0.0; n],
            Init::Constant(c) => vec![c; n],
            Init::GlorotUniform => {
                let (fi, fo) = if rows == 1 {
                    (cols, cols)
                } else {
                    (rows, cols)
                };
                let l = (6.0 / (fi + fo).max(1) as f64).sqrt() as f32;
                (0..n).map(|_| rng.gen_range(-l..=l)).collect()
            }
            Init::Uniform(lo, hi) => (0..n).map(|_| rng.gen_range(lo..=hi)).collect(),
            Init::Normal(std) => {
                let d =
                    rand_distr::Normal::new(0.0f32, std).expect("Init::Normal: std must be finite");
                (0..n).map(|_| rng.sample(d)).collect()
            }
        };
        let mut val = self.backend.alloc(n);
        self.backend.upload(&host, &mut val);
        let grad = self.backend.alloc(n);
        self.entries.push(Entry {
            group,
            name: name.to_string(),
            cell: Arc::new(ParamCell {
                val: RwLock::new(val),
                version: AtomicU64::new(0),
                rows,
                cols,
            }),
            grad: Some(grad),
        });
        ParamId(self.entries.len() - 1)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
    pub fn shape(&self, id: ParamId) -> (usize, usize) {
        let c = &self.entries[id.0].cell;
        (c.rows, c.cols)
    }
    pub fn name(&self, id: ParamId) -> &str {
        &self.entries[id.0].name
    }
    pub fn group_of(&self, id: ParamId) -> GroupId {
        self.entries[id.0].group
    }
    pub fn find(&self, name: &str) -> Option<ParamId> {
        self.entries
            .iter()
            .position(|e| e.name == name)
            .map(ParamId)
    }
    /// Parameters of `group` in creation order.
    pub fn ids_in(&self, group: GroupId) -> Vec<ParamId> {
        (0..self.entries.len())
            .map(ParamId)
            .filter(|&i| self.group_of(i) == group)
            .collect()
    }
    /// (group name, parameter name, rows, cols, id) of every parameter in creation order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str, usize, usize, ParamId)> + '_ {
        self.entries.iter().enumerate().map(|(i, e)| {
            let g = self.groups[e.group.0].as_str();
            (g, e.name.as_str(), e.cell.rows, e.cell.cols, ParamId(i))
        })
    }

    /// Set the gradients of every parameter in `group` to zero.
    pub fn zero_grad(&mut self, group: GroupId) {
        for e in self.entries.iter_mut().filter(|e| e.group == group) {
            self.backend
                .fill(e.grad.as_mut().expect("grad borrowed"), 0.0);
        }
    }
    /// Zero all gradients.
    pub fn zero_all_grads(&mut self) {
        for e in &mut self.entries {
            self.backend
                .fill(e.grad.as_mut().expect("grad borrowed"), 0.0);
        }
    }

    pub fn value_to_host(&self, id: ParamId) -> Vec<f32> {
        let c = &self.entries[id.0].cell;
        let mut out = vec![0.0; c.rows * c.cols];
        self.backend.download(&c.read(), &mut out);
        out
    }
    pub fn grad_to_host(&self, id: ParamId) -> Vec<f32> {
        let c = &self.entries[id.0].cell;
        let mut out = vec![0.0; c.rows * c.cols];
        self.backend.download(
            self.entries[id.0].grad.as_ref().expect("grad borrowed"),
            &mut out,
        );
        out
    }
    /// Overwrite a parameter's value (checkpoint load, tests).
    pub fn set_value(&mut self, id: ParamId, values: &[f32]) -> Result<()> {
        let e = &self.entries[id.0];
        let n = e.cell.rows * e.cell.cols;
        ensure!(
            values.len() == n,
            "parameter {:?}: got {} values, expected {}x{} = {n}",
            e.name,
            values.len(),
            e.cell.rows,
            e.cell.cols
        );
        let mut g = self.value_mut(id);
        self.backend.upload(values, &mut g);
        Ok(())
    }

    /// Write access to a value; bumps its version so stale tapes are detected.
    pub(crate) fn value_mut(&self, id: ParamId) -> RwLockWriteGuard<'_, B::Buf> {
        let c = &self.entries[id.0].cell;
        c.version.fetch_add(1, Ordering::AcqRel);
        c.val.write().unwrap_or_else(|e| e.into_inner())
    }
    pub(crate) fn cell(&self, id: ParamId) -> &Arc<ParamCell<B>> {
        &self.entries[id.0].cell
    }
    pub(crate) fn grad_ref(&self, id: ParamId) -> &B::Buf {
        self.entries[id.0].grad.as_ref().expect("grad borrowed")
    }
    /// Lend the gradient buffer to a backward op (None while already lent: the op then
    /// uses a zeroed temporary that `put_grad` adds in).
    pub(crate) fn take_grad(&mut self, id: ParamId) -> Option<B::Buf> {
        self.entries[id.0].grad.take()
    }
    /// Return a lent gradient buffer, or add a temporary into it (returned as `Some`).
    pub(crate) fn put_grad(&mut self, id: ParamId, g: B::Buf) -> Option<B::Buf> {
        let e = &mut self.entries[id.0];
        match e.grad.as_mut() {
            None => {
                e.grad = Some(g);
                None
            }
            Some(have) => {
                self.backend.axpy(1.0, &g, have);
                Some(g)
            }
        }
    }
}
