//! The fused loss kernels: likelihoods (ZINB, NB), KL divergences, the Bhattacharyya term
//! and the masked cross-entropy.

use super::Memory;

/// The inputs of a count likelihood: counts `x` and means `mu` [rows, cols], the inverse
/// dispersion `theta` per gene ([cols]) and, for the ZINB, the dropout logits [rows, cols].
pub struct Likelihood<'a, Buf> {
    pub x: &'a Buf,
    pub mu: &'a Buf,
    pub theta: &'a Buf,
    /// Some for the ZINB, None for the NB.
    pub logit: Option<&'a Buf>,
    pub rows: usize,
    pub cols: usize,
    /// eps inside the logs (and, for the ZINB, its zero test x < eps).
    pub eps: f32,
}

/// Logits [rows, cols] with one label per row and an optional row mask (a row counts where
/// its mask is non-zero; every row counts without a mask).
pub struct Labelled<'a, B: Memory> {
    pub logits: &'a B::Buf,
    pub labels: &'a B::IdxBuf,
    pub mask: Option<&'a B::Buf>,
    pub rows: usize,
    pub cols: usize,
    /// 0: cross-entropy; q in (0, 1]: the generalized cross-entropy `(1 - p^q) / q`
    /// (scDREAMER-Sup's `--label-loss gce`).
    pub gce_q: f32,
}

/// The gradients [`LossKernels::likelihood`] overwrites, with the upstream gradient (one entry
/// per row) they are taken against.
pub struct LikelihoodGrads<'a, Buf> {
    pub upstream: &'a Buf,
    pub dmu: &'a mut Buf,
    pub dtheta: &'a mut Buf,
    /// The ZINB's logit gradient (None for the NB).
    pub dlogit: Option<&'a mut Buf>,
}

/// The fused losses (see the comment at the top of the trait body).
pub trait LossKernels: Memory {
    // ---- fused losses ---------------------------------------------------------------------
    // `*_fwd` writes the value. `*_bwd` recomputes what it needs and OVERWRITES its gradient
    // outputs with the gradient of sum_r value[r] * g[r] (g = upstream gradient, one entry
    // per output row; for scalar losses g has one entry). Unlike the other `*_bwd` methods
    // these do not accumulate: the tape adds them in when a gradient already has content.
    /// Per-row count log-likelihood (spec section 3): the ZINB when `a.logit` is given, else
    /// the NB. With `ll` it writes the value; with `grads` it OVERWRITES `dmu`, `dtheta` (and
    /// `dlogit` for the ZINB) with the gradients of sum_r ll[r] * upstream[r]. Both at once is
    /// one fused pass: training forwards ask for it with a unit upstream, so that the backward
    /// can reuse the gradients when the real upstream is uniform over rows (a mean over cells).
    fn likelihood(
        &self,
        a: &Likelihood<'_, Self::Buf>,
        ll: Option<&mut Self::Buf>,
        grads: Option<LikelihoodGrads<'_, Self::Buf>>,
    );
    /// Some(v) when every entry of `g` equals v (a small host round trip on a device).
    fn uniform_value(&self, g: &Self::Buf) -> Option<f32>;
    /// kl[i] = 0.5 sum_k(-ln clip(var, 1e-4, 1e4) + var + mean^2 - 1).
    fn kl_std_normal_fwd(&self, mean: &Self::Buf, var: &Self::Buf, cols: usize, kl: &mut Self::Buf);
    fn kl_std_normal_bwd(
        &self,
        mean: &Self::Buf,
        var: &Self::Buf,
        cols: usize,
        g: &Self::Buf,
        dmean: &mut Self::Buf,
        dvar: &mut Self::Buf,
    );
    /// kl[i] = KL(N(m1, v1) || N(m2, v2)) summed over the row; `inputs` = [m1, v1, m2, v2].
    fn kl_normal_fwd(&self, inputs: [&Self::Buf; 4], cols: usize, kl: &mut Self::Buf);
    fn kl_normal_bwd(
        &self,
        inputs: [&Self::Buf; 4],
        cols: usize,
        g: &Self::Buf,
        grads: [&mut Self::Buf; 4],
    );
    /// loss[0] = mean over rows with mask != 0 of -log_softmax(logits)[label] (0 if none).
    fn cross_entropy_fwd(&self, l: &Labelled<'_, Self>, loss: &mut Self::Buf);
    fn cross_entropy_bwd(&self, l: &Labelled<'_, Self>, g: &Self::Buf, dlogits: &mut Self::Buf);
}
