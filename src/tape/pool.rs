//! Buffers recycled by length: after the first step of a fixed-shape loop every
//! allocation request is served from here (no heap traffic in steady state).

use crate::backend::Memory;
use std::collections::HashMap;

pub(crate) struct Pool<B: Memory> {
    free: HashMap<usize, Vec<B::Buf>>,
    free_idx: HashMap<usize, Vec<B::IdxBuf>>,
    /// Buffers handed out by the backend (not from the free lists), for tests and stats.
    pub(crate) fresh_allocs: usize,
}

impl<B: Memory> Pool<B> {
    pub(crate) fn new() -> Self {
        Pool {
            free: HashMap::new(),
            free_idx: HashMap::new(),
            fresh_allocs: 0,
        }
    }

    /// A buffer of `len` f32 with unspecified contents.
    pub(crate) fn take(&mut self, backend: &B, len: usize) -> B::Buf {
        match self.free.get_mut(&len).and_then(|v| v.pop()) {
            Some(b) => b,
            None => {
                self.fresh_allocs += 1;
                backend.alloc(len)
            }
        }
    }

    /// A zero-filled buffer of `len` f32.
    pub(crate) fn take_zeroed(&mut self, backend: &B, len: usize) -> B::Buf {
        match self.free.get_mut(&len).and_then(|v| v.pop()) {
            Some(mut b) => {
                backend.fill(&mut b, 0.0);
                b
            }
            None => {
                self.fresh_allocs += 1;
                backend.alloc(len)
            }
        }
    }

    pub(crate) fn give(&mut self, backend: &B, buf: B::Buf) {
        self.free.entry(backend.len(&buf)).or_default().push(buf);
    }

    /// An index buffer holding `src`.
    pub(crate) fn take_idx(&mut self, backend: &B, src: &[u32]) -> B::IdxBuf {
        let mut b = match self.free_idx.get_mut(&src.len()).and_then(|v| v.pop()) {
            Some(b) => b,
            None => {
                self.fresh_allocs += 1;
                backend.alloc_idx(src.len())
            }
        };
        backend.upload_idx(src, &mut b);
        b
    }

    pub(crate) fn give_idx(&mut self, len: usize, buf: B::IdxBuf) {
        self.free_idx.entry(len).or_default().push(buf);
    }
}
