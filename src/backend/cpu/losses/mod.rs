//! Fused loss kernels of scDREAMER on the CPU (spec sections 3 and 6).
//!
//! Every kernel computes its value and its gradient in one pass over plain row-major slices.
//! The arithmetic inside is f64 whatever the storage type (`f32` in training, `f64` in the
//! finite-difference tests): the NB/ZINB terms cancel badly at large θ (e.g. the θ-gradient
//! is O(1/θ²) built from O(1/θ) pieces), which f32 cannot represent.
//!
//! Gradients are always of `Σ_r value[r] · upstream[r]`, so a tape op passes its incoming
//! gradient as `upstream` (ones for a plain sum). Reductions over rows (dθ) use fixed row
//! chunks and an ordered sum, so results are bit-identical for any number of threads.

pub mod cross_entropy;
pub mod kl;
pub mod nb;
pub mod zinb;

pub use cross_entropy::{cross_entropy_masked_fwd_bwd, label_loss_masked_fwd_bwd};
pub use kl::{PerRow, kl_normal_fwd_bwd, kl_std_normal_fwd_bwd};

use crate::special::fastmath as fm;
use rayon::prelude::*;

/// The inputs of a count log-likelihood: counts `x` and means `mu` `[rows*cols]` row-major,
/// the inverse dispersion `theta` `[cols]` (per gene, shared by all rows), and the dropout
/// logits `[rows*cols]` of the ZINB (scVI's `log_zinb_positive`; None: the NB,
/// `log_nb_positive`). `eps` sits inside the logs; the ZINB's zero test is `x < eps` (spec
/// 1e-4, scVI 1e-8).
#[derive(Clone, Copy)]
pub struct Counts<'a, T> {
    pub x: &'a [T],
    pub mu: &'a [T],
    pub theta: &'a [T],
    pub logit: Option<&'a [T]>,
    pub rows: usize,
    pub cols: usize,
    pub eps: T,
}

/// What [`likelihood_fwd_bwd`] overwrites besides the values: the gradients of
/// `Σ_r ll_rows[r] · upstream[r]` (`upstream` `[rows]`, ones for a plain sum). `dmu` and
/// `dlogit` are `[rows*cols]`, `dtheta` `[cols]`; `dlogit` is given exactly for the ZINB.
pub struct CountGrads<'a, T> {
    pub upstream: &'a [T],
    pub dmu: &'a mut [T],
    pub dtheta: &'a mut [T],
    pub dlogit: Option<&'a mut [T]>,
}

impl<'a, T> Counts<'a, T> {
    /// The NB's inputs: `rows` rows of `theta.len()` genes.
    pub fn new(x: &'a [T], mu: &'a [T], theta: &'a [T], rows: usize, eps: T) -> Self {
        let cols = theta.len();
        Counts {
            x,
            mu,
            theta,
            logit: None,
            rows,
            cols,
            eps,
        }
    }

    /// The ZINB's inputs: these and the dropout logits.
    pub fn zinb(self, logit: &'a [T]) -> Self {
        Counts {
            logit: Some(logit),
            ..self
        }
    }

    /// Checks the inputs' lengths and `ll_rows`'s (see [`check_len`]).
    fn check(&self, ll_rows: usize) {
        let n = self.rows * self.cols;
        check_len("x", self.x.len(), n);
        check_len("mu", self.mu.len(), n);
        check_len("theta", self.theta.len(), self.cols);
        if let Some(logit) = self.logit {
            check_len("logit", logit.len(), n);
        }
        check_len("ll_rows", ll_rows, self.rows);
    }
}

impl<'a, T> CountGrads<'a, T> {
    /// The NB's gradients.
    pub fn new(upstream: &'a [T], dmu: &'a mut [T], dtheta: &'a mut [T]) -> Self {
        CountGrads {
            upstream,
            dmu,
            dtheta,
            dlogit: None,
        }
    }

    /// The ZINB's gradients: these and the logits'.
    pub fn zinb(self, dlogit: &'a mut [T]) -> Self {
        CountGrads {
            dlogit: Some(dlogit),
            ..self
        }
    }
}

/// Count log-likelihood per row (`ll_rows[r] = Σ_g LL(r, g)`) and its gradients in one pass:
/// the ZINB where `a.logit` is given, else the NB. dθ is an ordered, thread-count independent
/// sum over rows. Panics if a slice length does not match `rows`/`cols`, or if `g.dlogit` is
/// given for the NB or missing for the ZINB.
pub fn likelihood_fwd_bwd<T: LossFloat>(
    a: &Counts<'_, T>,
    ll_rows: &mut [T],
    g: CountGrads<'_, T>,
) {
    a.check(ll_rows.len());
    let n = a.rows * a.cols;
    check_len("upstream", g.upstream.len(), a.rows);
    check_len("dmu", g.dmu.len(), n);
    check_len("dtheta", g.dtheta.len(), a.cols);
    match (a.logit, &g.dlogit) {
        (Some(logit), Some(dlogit)) => {
            check_len("dlogit", dlogit.len(), n);
            zinb::zinb_fwd_bwd(a, logit, ll_rows, g)
        }
        (None, None) => nb::nb_fwd_bwd(a, ll_rows, g),
        _ => panic!("loss kernel: `dlogit` must be given exactly for the ZINB (with `logit`)"),
    }
}

/// Count log-likelihood per row only (evaluation; skips all gradient work), bit-identical to
/// the values of [`likelihood_fwd_bwd`].
pub fn likelihood_fwd<T: LossFloat>(a: &Counts<'_, T>, ll_rows: &mut [T]) {
    a.check(ll_rows.len());
    match a.logit {
        Some(logit) => zinb::zinb_fwd(a, logit, ll_rows),
        None => nb::nb_fwd(a, ll_rows),
    }
}

/// Storage type of the kernels' slices: `f32` in the model, `f64` for gradient checks.
pub trait LossFloat: Copy + Send + Sync + 'static {
    /// Widen to the internal f64 arithmetic.
    fn to_f64(self) -> f64;
    /// Narrow an internal result back to storage.
    fn from_f64(v: f64) -> Self;
}

impl LossFloat for f32 {
    #[inline]
    fn to_f64(self) -> f64 {
        self as f64
    }
    #[inline]
    fn from_f64(v: f64) -> Self {
        v as f32
    }
}

impl LossFloat for f64 {
    #[inline]
    fn to_f64(self) -> f64 {
        self
    }
    #[inline]
    fn from_f64(v: f64) -> Self {
        v
    }
}

/// softplus(z) = ln(1 + e^z), σ(z) and σ(-z), all without overflow and with full relative
/// precision in both tails (σ(-z) is not formed as 1 - σ(z)).
#[inline]
pub(crate) fn softplus_sigmoids(z: f64) -> (f64, f64, f64) {
    let e = fm::exp(-z.abs());
    let sp = z.max(0.0) + fm::ln_1p(e);
    let inv = 1.0 / (1.0 + e);
    if z >= 0.0 {
        (sp, inv, e * inv)
    } else {
        (sp, e * inv, inv)
    }
}

/// Target elements per parallel work item. Chunking depends only on the shape, never on the
/// thread count, which keeps the ordered dθ reduction deterministic.
const CHUNK_ELEMS: usize = 32 * 1024;

#[inline]
pub(crate) fn rows_per_chunk(cols: usize) -> usize {
    (CHUNK_ELEMS / cols.max(1)).max(1)
}

/// Value and gradients of one likelihood element, for the row drivers below.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct ElemGrad {
    pub ll: f64,
    pub dmu: f64,
    pub dtheta: f64,
}

/// Split `s` into `n` consecutive pieces of `len` (the last may be shorter); an empty `s`
/// gives `n` empty pieces (NB has no logits).
fn split_pieces<T>(mut s: &mut [T], len: usize, n: usize) -> Vec<&mut [T]> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let take = len.min(s.len());
        let (head, tail) = std::mem::take(&mut s).split_at_mut(take);
        out.push(head);
        s = tail;
    }
    out
}

/// Shared driver of the per-gene-θ likelihoods (NB, ZINB): runs
/// `row_fn(r, upstream[r], dmu_row, dlogit_row, dtheta_partial)` over all rows in parallel
/// fixed row chunks. `row_fn` returns the row's log-likelihood, writes the
/// upstream-weighted element gradients and adds upstream-weighted θ gradients into the
/// chunk's partial row, which is then summed in chunk order. The dlogit rows are empty for
/// the NB.
pub(crate) fn likelihood_rows_fwd_bwd<T: LossFloat, F>(
    (rows, cols): (usize, usize),
    ll_rows: &mut [T],
    g: CountGrads<'_, T>,
    row_fn: F,
) where
    F: Fn(usize, f64, &mut [T], &mut [T], &mut [f64]) -> f64 + Sync,
{
    let (upstream, dmu, dtheta) = (g.upstream, g.dmu, g.dtheta);
    let dlogit = g.dlogit.unwrap_or_default();
    if cols == 0 {
        ll_rows.iter_mut().for_each(|v| *v = T::from_f64(0.0));
        return;
    }
    let chunk_rows = rows_per_chunk(cols);
    let n_chunks = rows.div_ceil(chunk_rows);
    let with_logit = !dlogit.is_empty();
    // One θ-gradient row per chunk, summed in chunk order afterwards (the only allocation).
    let mut partial = vec![0.0f64; n_chunks * cols];
    let items: Vec<_> = split_pieces(ll_rows, chunk_rows, n_chunks)
        .into_iter()
        .zip(split_pieces(dmu, chunk_rows * cols, n_chunks))
        .zip(split_pieces(dlogit, chunk_rows * cols, n_chunks))
        .zip(partial.chunks_mut(cols))
        .enumerate()
        .collect();
    items
        .into_par_iter()
        .for_each(|(c, (((ll, dm), dl), part))| {
            for (i, (ll_r, dm_row)) in ll.iter_mut().zip(dm.chunks_mut(cols)).enumerate() {
                let r = c * chunk_rows + i;
                let dl_row: &mut [T] = if with_logit {
                    &mut dl[i * cols..(i + 1) * cols]
                } else {
                    &mut []
                };
                *ll_r = T::from_f64(row_fn(r, upstream[r].to_f64(), dm_row, dl_row, part));
            }
        });
    for g in 0..cols {
        let mut acc = 0.0f64;
        for c in 0..n_chunks {
            acc += partial[c * cols + g];
        }
        dtheta[g] = T::from_f64(acc);
    }
}

/// Forward-only driver: `ll_rows[r] = row_fn(r)` over parallel row chunks.
pub(crate) fn likelihood_rows_fwd<T: LossFloat, F>(cols: usize, ll_rows: &mut [T], row_fn: F)
where
    F: Fn(usize) -> f64 + Sync,
{
    let chunk_rows = rows_per_chunk(cols);
    ll_rows
        .par_chunks_mut(chunk_rows)
        .enumerate()
        .for_each(|(c, ll)| {
            for (i, ll_r) in ll.iter_mut().enumerate() {
                *ll_r = T::from_f64(row_fn(c * chunk_rows + i));
            }
        });
}

/// Panics with the argument name when a slice does not have the length the shape implies.
/// These kernels sit below the tape, which owns shapes; a mismatch is a programming error.
#[inline]
pub(crate) fn check_len(name: &str, got: usize, want: usize) {
    assert!(
        got == want,
        "loss kernel: `{name}` has length {got}, expected {want}"
    );
}
