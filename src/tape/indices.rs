//! Index arguments of the tape's ops (minibatch rows, covariate codes, labels): host slices,
//! uploaded per op, or indices already on the device, shared by every op of a step without a
//! copy. The training step uploads its minibatch's rows once and gathers everything else on
//! the device from per-cell tables (`model::minibatch`).

use std::sync::Arc;

use crate::backend::Memory;

/// u32 indices resident on the device, each below `bound` (checked where they enter: at upload,
/// or by the table they were gathered from). Ops hold a shared reference to the buffer, so
/// refilling it between steps reuses it once the tape is reset.
pub struct DeviceIndices<B: Memory> {
    pub(crate) buf: Arc<B::IdxBuf>,
    len: usize,
    bound: usize,
}

impl<B: Memory> DeviceIndices<B> {
    /// `len` indices below `bound` with unspecified contents (fill with [`Self::reupload`] or a
    /// gather).
    pub fn empty(backend: &B, len: usize, bound: usize) -> Self {
        DeviceIndices {
            buf: Arc::new(backend.alloc_idx(len)),
            len,
            bound,
        }
    }

    /// Host indices on the device; errors naming the first index >= `bound`.
    pub fn upload(backend: &B, src: &[u32], bound: usize) -> anyhow::Result<Self> {
        let mut d = Self::empty(backend, src.len(), bound);
        d.reupload(backend, src)?;
        Ok(d)
    }

    /// Replace the contents with `src` (same length): one host-to-device copy into the same
    /// buffer when no op of a live tape still holds it, else into a fresh one.
    pub fn reupload(&mut self, backend: &B, src: &[u32]) -> anyhow::Result<()> {
        anyhow::ensure!(
            src.len() == self.len,
            "{} indices given for {} device indices",
            src.len(),
            self.len
        );
        if let Some(&i) = src.iter().find(|&&i| i as usize >= self.bound) {
            anyhow::bail!("index {i} >= {}", self.bound);
        }
        backend.upload_idx(src, self.buf_mut(backend));
        Ok(())
    }

    /// The buffer to overwrite: this one when unshared, else a fresh one.
    pub(crate) fn buf_mut(&mut self, backend: &B) -> &mut B::IdxBuf {
        if Arc::get_mut(&mut self.buf).is_none() {
            self.buf = Arc::new(backend.alloc_idx(self.len));
        }
        Arc::get_mut(&mut self.buf).expect("fresh buffer is unshared")
    }

    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// Every index is below this.
    pub fn bound(&self) -> usize {
        self.bound
    }
    /// The device buffer (for backend calls).
    pub fn buf(&self) -> &B::IdxBuf {
        &self.buf
    }
}

/// An op's index argument: see the module docs.
pub enum Indices<'a, B: Memory> {
    Host(&'a [u32]),
    Device(&'a DeviceIndices<B>),
}

impl<B: Memory> Clone for Indices<'_, B> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<B: Memory> Copy for Indices<'_, B> {}

impl<B: Memory> Indices<'_, B> {
    pub fn len(&self) -> usize {
        match self {
            Indices::Host(s) => s.len(),
            Indices::Device(d) => d.len(),
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The first index >= `bound`, if any (host indices are scanned; device indices are known
    /// by their bound, and report the bound itself when it exceeds `bound`).
    pub(crate) fn first_at_or_above(&self, bound: usize) -> Option<usize> {
        match self {
            Indices::Host(s) => s
                .iter()
                .find(|&&i| i as usize >= bound)
                .map(|&i| i as usize),
            Indices::Device(d) => (d.bound() > bound).then_some(d.bound()),
        }
    }
}

impl<'a, B: Memory> From<&'a [u32]> for Indices<'a, B> {
    fn from(s: &'a [u32]) -> Self {
        Indices::Host(s)
    }
}
impl<'a, B: Memory> From<&'a Vec<u32>> for Indices<'a, B> {
    fn from(s: &'a Vec<u32>) -> Self {
        Indices::Host(s)
    }
}
impl<'a, B: Memory, const N: usize> From<&'a [u32; N]> for Indices<'a, B> {
    fn from(s: &'a [u32; N]) -> Self {
        Indices::Host(s)
    }
}
impl<'a, B: Memory> From<&'a DeviceIndices<B>> for Indices<'a, B> {
    fn from(d: &'a DeviceIndices<B>) -> Self {
        Indices::Device(d)
    }
}

/// The indices an op node keeps for its backward pass.
pub(crate) enum NodeIdx<B: Memory> {
    /// Uploaded for this op from the pool (returned at reset).
    Pooled(B::IdxBuf),
    /// A step's shared device indices.
    Shared(Arc<B::IdxBuf>),
}

impl<B: Memory> NodeIdx<B> {
    pub(crate) fn buf(&self) -> &B::IdxBuf {
        match self {
            NodeIdx::Pooled(b) => b,
            NodeIdx::Shared(b) => b,
        }
    }
}
