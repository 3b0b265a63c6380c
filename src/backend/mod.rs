//! Compute backends behind one seam: the CPU and CUDA.
//!
//! The tape (`crate::tape`) is written once against [`Backend`]. A backend owns its
//! buffers (`Buf` = f32, `IdxBuf` = u32, `CsrBuf` = a resident sparse matrix) and exposes
//! one coarse method per kernel: one call per op, never per element, and no host round
//! trips except the explicit `download*`/`sq_norm` methods. Shapes are passed explicitly;
//! all matrices are row-major f32.
//!
//! Accumulation convention: every `*_bwd` method ADDS into its gradient outputs
//! (`dx += ...`), so the tape can sum contributions from several consumers.

pub mod cpu;
#[cfg(feature = "cuda")]
pub mod cuda;
pub mod device;

use crate::data::Csr;

/// Transform applied to CSR values on the fly by `csr_matmul`/`csr_gather_dense`, so the
/// encoder input never needs a transformed copy of X.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum InputTransform {
    /// The stored value as is.
    Identity,
    /// ln(1 + v).
    Log1p,
    /// ln(1 + v * row_scale[cell]); needs a row scale at upload.
    Log1pScaled,
}

impl InputTransform {
    /// Apply to one stored value `v` of a cell whose row scale is `s`.
    #[inline(always)]
    pub fn apply(self, v: f32, s: f32) -> f32 {
        match self {
            InputTransform::Identity => v,
            InputTransform::Log1p => v.ln_1p(),
            InputTransform::Log1pScaled => (v * s).ln_1p(),
        }
    }
}

/// Elementwise unary functions y = f(x). Backward uses x and/or y.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Unary {
    Relu,
    LeakyRelu(f32),
    Softplus,
    Sigmoid,
    Exp,
    Log,
    Sqrt,
    Square,
    Scale(f32),
    AddScalar(f32),
    /// Gradient passes only where lo <= x <= hi.
    Clamp(f32, f32),
    /// ln Gamma(x) (x > 0), backward digamma(x).
    Lgamma,
}

/// Elementwise binary functions of two same-shape tensors.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Binary {
    Add,
    Sub,
    Mul,
}

/// Dense GEMM description: C[m,n] = alpha * op(A) * op(B) + beta * C, where op(A) is
/// [m,k] (A is stored [k,m] when `trans_a`), op(B) is [k,n] (B stored [n,k] when `trans_b`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GemmSpec {
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub trans_a: bool,
    pub trans_b: bool,
    pub alpha: f32,
    /// 0 overwrites C (its old contents are never read, even NaN), 1 accumulates.
    pub beta: f32,
}

/// Hyper-parameters of one fused Adam/AdamW update of one tensor.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamStep {
    pub lr: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    /// Decoupled (AdamW) weight decay: p -= lr * wd * p.
    pub weight_decay: f32,
    /// 1 - beta1^t and 1 - beta2^t (bias corrections, computed on the host).
    pub bias_c1: f32,
    pub bias_c2: f32,
    /// Multiplies the gradient first (global-norm clipping factor; 1 otherwise).
    pub grad_scale: f32,
}

/// The structural checks every backend makes before a CSR upload: consistent lengths, column
/// indices in range, one row scale per row. (Before the trait: the parity suite reads the
/// trait's methods from the rest of this file.)
pub fn validate_csr(csr: &Csr, row_scale: Option<&[f32]>) -> anyhow::Result<()> {
    anyhow::ensure!(
        csr.indptr.len() == csr.n_rows + 1,
        "CSR upload: indptr has {} entries for {} rows",
        csr.indptr.len(),
        csr.n_rows
    );
    anyhow::ensure!(
        csr.indices.len() == csr.data.len()
            && *csr.indptr.last().unwrap_or(&0) as usize == csr.data.len(),
        "CSR upload: indices ({}), data ({}) and indptr end disagree",
        csr.indices.len(),
        csr.data.len()
    );
    if let Some(&j) = csr.indices.iter().find(|&&j| j as usize >= csr.n_cols) {
        anyhow::bail!("CSR upload: column index {j} >= n_cols {}", csr.n_cols);
    }
    if let Some(s) = row_scale {
        anyhow::ensure!(
            s.len() == csr.n_rows,
            "CSR upload: row scale has {} entries for {} rows",
            s.len(),
            csr.n_rows
        );
    }
    Ok(())
}

/// The kernel interface the tape needs. Implemented by [`cpu::Cpu`] (and by the CUDA
/// backend later). `Clone` must be cheap (a handle).
pub trait Backend: Clone + Send + Sync + 'static {
    /// f32 device buffer. Its length is fixed at allocation.
    type Buf: Send + Sync;
    /// u32 device buffer (row indices, labels).
    type IdxBuf: Send + Sync;
    /// A CSR matrix resident on the device (uploaded once).
    type CsrBuf: Send + Sync;
    /// f64 device accumulators (the training log's running sums, gradient norms): summed on
    /// the device step after step and read by the host once in a while.
    type AccBuf: Send + Sync;
    /// The tensors of one multi-tensor call ([`Backend::adam_queue`], [`Backend::sq_norm_queue`]),
    /// kept between calls (a GPU keeps its device copy of the tensors' addresses here).
    type TensorTable: Send + Sync + Default;

    /// Short name for logs ("cpu", "cuda").
    fn name(&self) -> &'static str;

    /// A training step starts here: a marker for device profilers and the emulated CUDA
    /// device's per-step counters. Does nothing by default.
    fn step_boundary(&self) {}

    /// True when buffers are host memory (CPU): reading a value costs no device round trip,
    /// so the tape may inspect values on the host (e.g. reuse a stashed gradient when the
    /// upstream gradient is uniform) where a device backend recomputes instead.
    fn host_memory(&self) -> bool {
        false
    }

    // ---- memory -------------------------------------------------------------------------
    /// A zero-filled buffer of `len` f32.
    fn alloc(&self, len: usize) -> Self::Buf;
    /// A buffer of `len` u32 (contents unspecified).
    fn alloc_idx(&self, len: usize) -> Self::IdxBuf;
    /// Number of f32 in `buf`.
    fn len(&self, buf: &Self::Buf) -> usize;
    /// Number of u32 in `buf`.
    fn idx_len(&self, buf: &Self::IdxBuf) -> usize;
    /// A zero-filled accumulator of `len` f64.
    fn alloc_acc(&self, len: usize) -> Self::AccBuf;
    /// Set every accumulator to 0.
    fn zero_acc(&self, acc: &mut Self::AccBuf);
    /// Copy the accumulators to the host (an explicit round trip: one copy, one wait).
    fn download_acc(&self, acc: &Self::AccBuf, dst: &mut [f64]);
    /// Copy host data into `dst` (same length).
    fn upload(&self, src: &[f32], dst: &mut Self::Buf);
    /// Copy host indices into `dst` (same length).
    fn upload_idx(&self, src: &[u32], dst: &mut Self::IdxBuf);
    /// Copy `src` to the host slice `dst` (same length). An explicit host round trip.
    fn download(&self, src: &Self::Buf, dst: &mut [f32]);
    /// Upload a CSR matrix with an optional per-row scale (for `Log1pScaled`).
    fn upload_csr(&self, csr: &Csr, row_scale: Option<&[f32]>) -> anyhow::Result<Self::CsrBuf>;
    /// Upload a CSR matrix the caller gives up. A backend whose buffers are host memory (CPU)
    /// keeps the matrix itself, without a copy, and returns `None` (read it back with
    /// [`Backend::host_csr`]); any other backend uploads a copy and returns the host matrix.
    fn upload_csr_owned(
        &self,
        csr: Csr,
        row_scale: Option<&[f32]>,
    ) -> anyhow::Result<(Self::CsrBuf, Option<Csr>)> {
        let buf = self.upload_csr(&csr, row_scale)?;
        Ok((buf, Some(csr)))
    }
    /// The host matrix behind an uploaded CSR, when the backend holds it in host memory.
    fn host_csr(_csr: &Self::CsrBuf) -> Option<&Csr> {
        None
    }
    /// (rows, cols, nnz) of an uploaded CSR matrix.
    fn csr_shape(&self, csr: &Self::CsrBuf) -> (usize, usize, usize);

    // ---- basic --------------------------------------------------------------------------
    fn fill(&self, dst: &mut Self::Buf, value: f32);
    fn copy(&self, src: &Self::Buf, dst: &mut Self::Buf);
    /// y += alpha * x.
    fn axpy(&self, alpha: f32, x: &Self::Buf, y: &mut Self::Buf);
    /// dst[i] += scale * g[0], where g is a 1-element device buffer (upstream scalar
    /// gradient of a full reduction).
    fn broadcast_acc(&self, g: &Self::Buf, scale: f32, dst: &mut Self::Buf);

    // ---- dense and sparse products --------------------------------------------------------
    /// See [`GemmSpec`].
    fn gemm(&self, spec: GemmSpec, a: &Self::Buf, b: &Self::Buf, c: &mut Self::Buf);
    /// out[r, :] = sum_j t(X[rows[r], j]) * w[j, :]; w is [n_genes, n_out].
    #[allow(clippy::too_many_arguments)]
    fn csr_matmul(
        &self,
        x: &Self::CsrBuf,
        rows: &Self::IdxBuf,
        n_rows: usize,
        t: InputTransform,
        w: &Self::Buf,
        n_out: usize,
        out: &mut Self::Buf,
    );
    /// dw += t(X[rows])^T dy without densifying X; dy is [n_rows, n_out].
    #[allow(clippy::too_many_arguments)]
    fn csr_matmul_wgrad(
        &self,
        x: &Self::CsrBuf,
        rows: &Self::IdxBuf,
        n_rows: usize,
        t: InputTransform,
        dy: &Self::Buf,
        n_out: usize,
        dw: &mut Self::Buf,
    );
    /// out[r, :] = t(X[rows[r], :]) densely ([n_rows, n_genes]).
    fn csr_gather_dense(
        &self,
        x: &Self::CsrBuf,
        rows: &Self::IdxBuf,
        n_rows: usize,
        t: InputTransform,
        out: &mut Self::Buf,
    );

    // ---- row gather (one-hot covariates), bias --------------------------------------------
    /// out[i,:] = x[i,:] + table[idx[i],:].
    fn gather_add_rows(
        &self,
        x: &Self::Buf,
        table: &Self::Buf,
        idx: &Self::IdxBuf,
        cols: usize,
        out: &mut Self::Buf,
    );
    /// dtable[idx[i],:] += dy[i,:] (in row order: deterministic).
    fn scatter_add_rows(
        &self,
        dy: &Self::Buf,
        idx: &Self::IdxBuf,
        cols: usize,
        dtable: &mut Self::Buf,
    );
    /// out[i,:] = x[i,:] + b[:].
    fn add_bias(&self, x: &Self::Buf, b: &Self::Buf, cols: usize, out: &mut Self::Buf);
    /// db[j] += sum_i dy[i,j].
    fn col_sum_acc(&self, dy: &Self::Buf, cols: usize, db: &mut Self::Buf);

    // ---- elementwise --------------------------------------------------------------------
    fn unary(&self, f: Unary, x: &Self::Buf, y: &mut Self::Buf);
    /// dx += dy * f'(x) (y = f(x) is given too, for functions whose derivative uses it).
    fn unary_bwd(&self, f: Unary, x: &Self::Buf, y: &Self::Buf, dy: &Self::Buf, dx: &mut Self::Buf);
    fn binary(&self, f: Binary, a: &Self::Buf, b: &Self::Buf, out: &mut Self::Buf);
    fn binary_bwd(
        &self,
        f: Binary,
        a: &Self::Buf,
        b: &Self::Buf,
        dy: &Self::Buf,
        da: Option<&mut Self::Buf>,
        db: Option<&mut Self::Buf>,
    );
    /// out[i,:] = x[i,:] * c[i] (c is [n,1]).
    fn mul_rows(&self, x: &Self::Buf, c: &Self::Buf, cols: usize, out: &mut Self::Buf);
    #[allow(clippy::too_many_arguments)]
    fn mul_rows_bwd(
        &self,
        x: &Self::Buf,
        c: &Self::Buf,
        dy: &Self::Buf,
        cols: usize,
        dx: Option<&mut Self::Buf>,
        dc: Option<&mut Self::Buf>,
    );
    /// out = [a | b] with a [n,ca], b [n,cb].
    fn concat_cols(&self, a: &Self::Buf, ca: usize, b: &Self::Buf, cb: usize, out: &mut Self::Buf);
    fn concat_cols_bwd(
        &self,
        dy: &Self::Buf,
        ca: usize,
        cb: usize,
        da: Option<&mut Self::Buf>,
        db: Option<&mut Self::Buf>,
    );
    /// Row-wise softmax of [n, cols].
    fn softmax_rows(&self, x: &Self::Buf, cols: usize, y: &mut Self::Buf);
    /// dx += y * (dy - sum_j dy*y) per row.
    fn softmax_rows_bwd(&self, y: &Self::Buf, dy: &Self::Buf, cols: usize, dx: &mut Self::Buf);

    // ---- randomness (counter-based: the host gives a seed, the device generates) ---------
    /// mask[i] = 1/keep with probability keep, else 0.
    fn dropout_mask(&self, seed: u64, keep: f32, mask: &mut Self::Buf);
    /// out[i] ~ N(0,1).
    fn normal(&self, seed: u64, out: &mut Self::Buf);
    /// z = mean + sqrt(var) * eps.
    fn reparam(&self, mean: &Self::Buf, var: &Self::Buf, eps: &Self::Buf, z: &mut Self::Buf);
    #[allow(clippy::too_many_arguments)]
    fn reparam_bwd(
        &self,
        var: &Self::Buf,
        eps: &Self::Buf,
        dz: &Self::Buf,
        dmean: Option<&mut Self::Buf>,
        dvar: Option<&mut Self::Buf>,
    );

    // ---- reductions ---------------------------------------------------------------------
    /// out[0] = sum of all x (f64 accumulation, fixed order).
    fn sum_all(&self, x: &Self::Buf, out: &mut Self::Buf);
    /// out[i] = sum_j x[i,j].
    fn sum_rows(&self, x: &Self::Buf, cols: usize, out: &mut Self::Buf);
    /// dx[i,j] += dy[i] (backward of `sum_rows`).
    fn sum_rows_bwd(&self, dy: &Self::Buf, cols: usize, dx: &mut Self::Buf);
    /// Sum of squares as a host scalar (explicit round trip; used for gradient clipping).
    fn sq_norm(&self, x: &Self::Buf) -> f64;

    // ---- fused losses ---------------------------------------------------------------------
    // `*_fwd` writes the value. `*_bwd` recomputes what it needs and OVERWRITES its gradient
    // outputs with the gradient of sum_r value[r] * g[r] (g = upstream gradient, one entry
    // per output row; for scalar losses g has one entry). Unlike the other `*_bwd` methods
    // these do not accumulate: the tape adds them in when a gradient already has content.
    /// Per-row ZINB log-likelihood (spec section 3), `theta` per gene ([cols]).
    #[allow(clippy::too_many_arguments)]
    fn zinb_fwd(
        &self,
        x: &Self::Buf,
        mu: &Self::Buf,
        theta: &Self::Buf,
        logit: &Self::Buf,
        rows: usize,
        cols: usize,
        eps: f32,
        ll: &mut Self::Buf,
    );
    #[allow(clippy::too_many_arguments)]
    fn zinb_bwd(
        &self,
        x: &Self::Buf,
        mu: &Self::Buf,
        theta: &Self::Buf,
        logit: &Self::Buf,
        rows: usize,
        cols: usize,
        eps: f32,
        g: &Self::Buf,
        dmu: &mut Self::Buf,
        dtheta: &mut Self::Buf,
        dlogit: &mut Self::Buf,
    );
    /// One fused pass: `ll` and the gradients of sum_r ll[r] * g[r] (all overwritten).
    /// Used in training forwards with g = 1, so that the backward can reuse the gradients
    /// when the real upstream gradient is uniform over rows (a mean over cells).
    #[allow(clippy::too_many_arguments)]
    fn zinb_fwd_bwd(
        &self,
        x: &Self::Buf,
        mu: &Self::Buf,
        theta: &Self::Buf,
        logit: &Self::Buf,
        rows: usize,
        cols: usize,
        eps: f32,
        g: &Self::Buf,
        ll: &mut Self::Buf,
        dmu: &mut Self::Buf,
        dtheta: &mut Self::Buf,
        dlogit: &mut Self::Buf,
    );
    /// Per-row NB log-likelihood.
    #[allow(clippy::too_many_arguments)]
    fn nb_fwd(
        &self,
        x: &Self::Buf,
        mu: &Self::Buf,
        theta: &Self::Buf,
        rows: usize,
        cols: usize,
        eps: f32,
        ll: &mut Self::Buf,
    );
    #[allow(clippy::too_many_arguments)]
    fn nb_bwd(
        &self,
        x: &Self::Buf,
        mu: &Self::Buf,
        theta: &Self::Buf,
        rows: usize,
        cols: usize,
        eps: f32,
        g: &Self::Buf,
        dmu: &mut Self::Buf,
        dtheta: &mut Self::Buf,
    );
    /// NB counterpart of `zinb_fwd_bwd`.
    #[allow(clippy::too_many_arguments)]
    fn nb_fwd_bwd(
        &self,
        x: &Self::Buf,
        mu: &Self::Buf,
        theta: &Self::Buf,
        rows: usize,
        cols: usize,
        eps: f32,
        g: &Self::Buf,
        ll: &mut Self::Buf,
        dmu: &mut Self::Buf,
        dtheta: &mut Self::Buf,
    );
    /// Some(v) when every entry of `g` equals v (a small host round trip on a device).
    fn uniform_value(&self, g: &Self::Buf) -> Option<f32>;
    /// loss[0] = ln(clip(BC(a, b), 1e-4, 1e4)), a and b [n,1].
    fn bhattacharyya_fwd(&self, a: &Self::Buf, b: &Self::Buf, loss: &mut Self::Buf);
    fn bhattacharyya_bwd(
        &self,
        a: &Self::Buf,
        b: &Self::Buf,
        g: &Self::Buf,
        da: &mut Self::Buf,
        db: &mut Self::Buf,
    );
    /// kl[i] = 0.5 sum_k(-ln clip(var, 1e-4, 1e4) + var + mean^2 - 1).
    fn kl_std_normal_fwd(&self, mean: &Self::Buf, var: &Self::Buf, cols: usize, kl: &mut Self::Buf);
    #[allow(clippy::too_many_arguments)]
    fn kl_std_normal_bwd(
        &self,
        mean: &Self::Buf,
        var: &Self::Buf,
        cols: usize,
        g: &Self::Buf,
        dmean: &mut Self::Buf,
        dvar: &mut Self::Buf,
    );
    /// kl[i] = KL(N(m1, v1) || N(m2, v2)) summed over the row.
    #[allow(clippy::too_many_arguments)]
    fn kl_normal_fwd(
        &self,
        m1: &Self::Buf,
        v1: &Self::Buf,
        m2: &Self::Buf,
        v2: &Self::Buf,
        cols: usize,
        kl: &mut Self::Buf,
    );
    #[allow(clippy::too_many_arguments)]
    fn kl_normal_bwd(
        &self,
        m1: &Self::Buf,
        v1: &Self::Buf,
        m2: &Self::Buf,
        v2: &Self::Buf,
        cols: usize,
        g: &Self::Buf,
        grads: [&mut Self::Buf; 4],
    );
    /// loss[0] = mean over rows with mask != 0 of -log_softmax(logits)[label] (0 if none).
    #[allow(clippy::too_many_arguments)]
    fn cross_entropy_fwd(
        &self,
        logits: &Self::Buf,
        labels: &Self::IdxBuf,
        mask: Option<&Self::Buf>,
        rows: usize,
        cols: usize,
        loss: &mut Self::Buf,
    );
    #[allow(clippy::too_many_arguments)]
    fn cross_entropy_bwd(
        &self,
        logits: &Self::Buf,
        labels: &Self::IdxBuf,
        mask: Option<&Self::Buf>,
        rows: usize,
        cols: usize,
        g: &Self::Buf,
        dlogits: &mut Self::Buf,
    );

    // ---- the device-resident training step ------------------------------------------------
    /// out[i] = table[idx[i]] for i < n (a minibatch's batch codes from the per-cell table).
    fn gather_idx(
        &self,
        table: &Self::IdxBuf,
        idx: &Self::IdxBuf,
        n: usize,
        out: &mut Self::IdxBuf,
    );
    /// out[i] = table[idx[i]] for i < n (a minibatch's library sizes).
    fn gather_values(&self, table: &Self::Buf, idx: &Self::IdxBuf, n: usize, out: &mut Self::Buf);
    /// A minibatch's labels from the per-cell codes (`UNLABELLED` for none): labels[i] the
    /// code (0 when unlabelled), mask[i] 1 for a labelled cell, else 0.
    fn gather_labels(
        &self,
        table: &Self::IdxBuf,
        idx: &Self::IdxBuf,
        n: usize,
        labels: &mut Self::IdxBuf,
        mask: &mut Self::Buf,
    );
    /// acc[slot] += x[0] as f64 for each (slot, x): 1x1 loss values into the running sums.
    fn acc_values(&self, acc: &mut Self::AccBuf, values: &[(usize, &Self::Buf)]);
    /// acc[slot] += (number of i with a[i] > b[i]) / n, as f64 (n = a's length).
    fn acc_greater_frac(&self, acc: &mut Self::AccBuf, slot: usize, a: &Self::Buf, b: &Self::Buf);
    /// acc[slot] += hits / counted, as f64, over the rows of logits [rows, cols] whose mask is
    /// non-zero (every row without a mask; nothing when no row counts): a hit is a row whose
    /// last maximum (in `f32::total_cmp` order) is at its label.
    #[allow(clippy::too_many_arguments)]
    fn acc_argmax_hits(
        &self,
        acc: &mut Self::AccBuf,
        slot: usize,
        logits: &Self::Buf,
        labels: &Self::IdxBuf,
        mask: Option<&Self::Buf>,
        rows: usize,
        cols: usize,
    );
    /// Queue x's sum of squares in f64 (the same value as `sq_norm`) for
    /// [`Backend::sq_norm_flush`]: a backend whose buffers are host memory sums it at once, a
    /// GPU notes the tensor and the flush sums every queued tensor in two launches, adding
    /// their sums in queue order.
    fn sq_norm_queue(&self, table: &mut Self::TensorTable, x: &Self::Buf);
    /// Add the queued tensors' sums of squares to `acc[slot]`.
    ///
    /// # Safety
    /// Every buffer queued since the last flush must still be allocated.
    unsafe fn sq_norm_flush(
        &self,
        table: &mut Self::TensorTable,
        acc: &mut Self::AccBuf,
        slot: usize,
    );
    /// out[0] = clip / (sqrt(acc[slot]) + 1e-6) when sqrt(acc[slot]) > clip, else 1: the
    /// global-norm clipping factor, computed where the norm is.
    fn clip_scale(&self, acc: &Self::AccBuf, slot: usize, clip: f32, out: &mut Self::Buf);

    // ---- optimiser ----------------------------------------------------------------------
    /// Queue the fused Adam/AdamW update of one tensor (param, its grad, first and second
    /// moments) for [`Backend::adam_flush`]: a backend whose buffers are host memory updates it
    /// at once, a GPU notes the tensor and the flush updates every queued tensor in one launch.
    /// With `grad_scale`, its one value replaces `s.grad_scale` (read on the device).
    #[allow(clippy::too_many_arguments)]
    fn adam_queue(
        &self,
        table: &mut Self::TensorTable,
        s: AdamStep,
        p: &mut Self::Buf,
        g: &Self::Buf,
        m: &mut Self::Buf,
        v: &mut Self::Buf,
        grad_scale: Option<&Self::Buf>,
    );
    /// Run the queued updates (`s` and `grad_scale` as given to every queued tensor).
    ///
    /// # Safety
    /// Every buffer queued since the last flush must still be allocated.
    unsafe fn adam_flush(
        &self,
        table: &mut Self::TensorTable,
        s: AdamStep,
        grad_scale: Option<&Self::Buf>,
    );
}

/// The label code of an unlabelled cell in the per-cell label table (`gather_labels`).
pub const UNLABELLED: u32 = u32::MAX;
