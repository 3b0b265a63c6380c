//! Deterministic parallel loops: fixed chunking, never a timing-dependent reduction order.

use rayon::prelude::*;

/// Below this many output elements a loop runs on the calling thread (rayon overhead).
pub const PAR_MIN: usize = 1 << 15;
/// Target elements per parallel chunk.
pub const CHUNK: usize = 1 << 13;

/// Runs `work` on a thread of the current rayon pool (the caller waits): the parallel loops
/// below then split among the pool's workers, where from a thread outside the pool each loop
/// is handed over and waited for, two thread wake-ups a loop (BENCHMARKS.md, "Fewer passes a
/// step"). Same chunks either way, so the same results.
pub fn on_a_worker<R: Send>(work: impl FnOnce() -> R + Send) -> R {
    rayon::scope(|_| work())
}

/// Call `f(offset, chunk)` over `out` split into chunks of `chunk` elements (the last may
/// be shorter). Runs serially when `out` is small. `chunk` should be a multiple of the row
/// width when `f` works on whole rows.
pub fn chunks_mut(out: &mut [f32], chunk: usize, f: impl Fn(usize, &mut [f32]) + Sync + Send) {
    let chunk = chunk.max(1);
    if out.len() < PAR_MIN || out.len() <= chunk {
        f(0, out);
    } else {
        out.par_chunks_mut(chunk)
            .enumerate()
            .for_each(|(c, s)| f(c * chunk, s));
    }
}

/// Chunk size in elements holding whole rows of width `cols` (at least one row).
pub fn row_chunk(cols: usize) -> usize {
    cols.max(1) * (CHUNK / cols.max(1)).max(1)
}

/// Elementwise y[i] = f(i, x...) helper over one output.
pub fn map_into(out: &mut [f32], f: impl Fn(usize) -> f32 + Sync + Send) {
    chunks_mut(out, CHUNK, |off, s| {
        for (k, o) in s.iter_mut().enumerate() {
            *o = f(off + k);
        }
    });
}

/// Elementwise accumulate out[i] += f(i).
pub fn acc_into(out: &mut [f32], f: impl Fn(usize) -> f32 + Sync + Send) {
    chunks_mut(out, CHUNK, |off, s| {
        for (k, o) in s.iter_mut().enumerate() {
            *o += f(off + k);
        }
    });
}
