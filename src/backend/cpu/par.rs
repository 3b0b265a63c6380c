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

/// Row-wise helper: `f(row index, output row)` over whole rows, in parallel chunks of rows
/// (no per-element index division, so the inner loops vectorise).
pub fn rows_into(out: &mut [f32], cols: usize, f: impl Fn(usize, &mut [f32]) + Sync + Send) {
    let cols = cols.max(1);
    chunks_mut(out, row_chunk(cols), |off, o| {
        for (k, orow) in o.chunks_mut(cols).enumerate() {
            f(off / cols + k, orow);
        }
    });
}

/// Elementwise y[i] = f(i) over one output. For a function of same-length inputs prefer
/// [`zip1`]-[`zip3`]: they hand the loop slices, so it has no index checks and vectorises.
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

/// The part of `x` that lines up with the chunk of the output starting at `off`.
#[inline(always)]
fn part(x: &[f32], off: usize, len: usize) -> &[f32] {
    &x[off..off + len]
}

/// `f(&mut out[i], a[i])`: `*o = ...` maps, `*o += ...` accumulates.
pub fn zip1(out: &mut [f32], a: &[f32], f: impl Fn(&mut f32, f32) + Sync + Send) {
    assert_eq!(a.len(), out.len());
    chunks_mut(out, CHUNK, |off, s| {
        let a = part(a, off, s.len());
        for (o, &a) in s.iter_mut().zip(a) {
            f(o, a);
        }
    });
}

/// `f(&mut out[i], a[i], b[i])`.
pub fn zip2(out: &mut [f32], a: &[f32], b: &[f32], f: impl Fn(&mut f32, f32, f32) + Sync + Send) {
    assert!(a.len() == out.len() && b.len() == out.len());
    chunks_mut(out, CHUNK, |off, s| {
        let n = s.len();
        for ((o, &a), &b) in s.iter_mut().zip(part(a, off, n)).zip(part(b, off, n)) {
            f(o, a, b);
        }
    });
}

/// `f(&mut out[i], a[i], b[i], c[i])`.
pub fn zip3(
    out: &mut [f32],
    a: &[f32],
    b: &[f32],
    c: &[f32],
    f: impl Fn(&mut f32, f32, f32, f32) + Sync + Send,
) {
    assert!(a.len() == out.len() && b.len() == out.len() && c.len() == out.len());
    chunks_mut(out, CHUNK, |off, s| {
        let n = s.len();
        let abc = part(a, off, n)
            .iter()
            .zip(part(b, off, n))
            .zip(part(c, off, n));
        for (o, ((&a, &b), &c)) in s.iter_mut().zip(abc) {
            f(o, a, b, c);
        }
    });
}
