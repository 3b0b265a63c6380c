// KL divergences between diagonal Gaussians and the masked mean cross-entropy of the CUDA
// Backend, value and gradient kernels.
//
// CPU reference: ops::losses::kl::{kl_std_normal_fwd_bwd, kl_normal_fwd_bwd} and
// ops::losses::cross_entropy::cross_entropy_masked_fwd_bwd. Arithmetic in f64 like the CPU.
// Gradient kernels OVERWRITE their outputs (the fused-loss convention of the Backend trait).
// Variances are clipped to [1e-4, 1e4] only inside the logs; the clipped log passes no gradient.
#include "common.cuh"

#define KL_BLOCK 256
#define KL_WARPS_PER_BLOCK (KL_BLOCK / SCD_WARP)
#define CE_COUNT_BLOCK 256

// (ln clip(v), d ln clip(v) / dv). Mirrors kl::clipped_log.
__device__ __forceinline__ double clipped_log(double v, double* dlog) {
    const double lo = 1e-4, hi = 1e4;
    if (v < lo) {
        *dlog = 0.0;
        return log(lo);
    }
    if (v > hi) {
        *dlog = 0.0;
        return log(hi);
    }
    *dlog = 1.0 / v;
    return log(v);
}

// kl[r] = 0.5 sum_j term(r * cols + j) in f64, one warp per row: the forward of both KL terms
// (the CPU's order within a lane, a fixed shuffle tree across lanes).
template <typename Term>
__device__ __forceinline__ void kl_rows(long long rows, int cols, float* __restrict__ kl,
                                        Term term) {
    const int lane = threadIdx.x % SCD_WARP;
    WARP_ROWS(r, rows, KL_WARPS_PER_BLOCK) {
        double s = 0.0;
        for (int j = lane; j < cols; j += SCD_WARP) s += term((size_t)r * cols + j);
        s = warp_sum_f64(s);
        if (lane == 0) kl[r] = (float)(0.5 * s);
    }
}

// kl[r] = 0.5 sum_k (-ln clip(v) + v + m^2 - 1); one warp per row.
extern "C" __global__ void __launch_bounds__(KL_BLOCK)
kl_std_normal_fwd(const float* __restrict__ m, const float* __restrict__ v, long long rows,
                  int cols, float* __restrict__ kl) {
    kl_rows(rows, cols, kl, [=](size_t i) {
        const double mi = m[i], vi = v[i];
        double d;
        return -clipped_log(vi, &d) + vi + mi * mi - 1.0;
    });
}

// dm = g[r] m, dv = g[r] 0.5 (1 - d ln clip(v)/dv).
extern "C" __global__ void __launch_bounds__(KL_BLOCK)
kl_std_normal_bwd(const float* __restrict__ m, const float* __restrict__ v,
                  const float* __restrict__ g, int cols, float* __restrict__ dm,
                  float* __restrict__ dv, long long n) {
    GRID_STRIDE(i, n) {
        const double up = g[i / cols];
        double d;
        clipped_log((double)v[i], &d);
        dm[i] = (float)(up * (double)m[i]);
        dv[i] = (float)(up * 0.5 * (1.0 - d));
    }
}

// kl[r] = 0.5 sum_k (ln clip(v2) - ln clip(v1) + v1/v2 + (m1-m2)^2/v2 - 1); one warp per row.
extern "C" __global__ void __launch_bounds__(KL_BLOCK)
kl_normal_fwd(const float* __restrict__ m1, const float* __restrict__ v1,
              const float* __restrict__ m2, const float* __restrict__ v2, long long rows,
              int cols, float* __restrict__ kl) {
    kl_rows(rows, cols, kl, [=](size_t i) {
        const double a = m1[i], va = v1[i], b = m2[i], vb = v2[i];
        double da, db;
        const double ln_va = clipped_log(va, &da), ln_vb = clipped_log(vb, &db);
        const double inv_vb = 1.0 / vb, diff = a - b;
        return ln_vb - ln_va + va * inv_vb + diff * diff * inv_vb - 1.0;
    });
}

// Gradients of sum_r kl[r] g[r] w.r.t. m1, v1, m2, v2 (overwritten). Mirrors kl_normal_fwd_bwd.
extern "C" __global__ void __launch_bounds__(KL_BLOCK)
kl_normal_bwd(const float* __restrict__ m1, const float* __restrict__ v1,
              const float* __restrict__ m2, const float* __restrict__ v2,
              const float* __restrict__ g, int cols, float* __restrict__ dm1,
              float* __restrict__ dv1, float* __restrict__ dm2, float* __restrict__ dv2,
              long long n) {
    GRID_STRIDE(i, n) {
        const double up = g[i / cols];
        const double a = m1[i], va = v1[i], b = m2[i], vb = v2[i];
        double dln_va, dln_vb;
        clipped_log(va, &dln_va);
        clipped_log(vb, &dln_vb);
        const double inv_vb = 1.0 / vb, diff = a - b;
        const double g_diff = up * diff * inv_vb;
        dm1[i] = (float)g_diff;
        dm2[i] = (float)(-g_diff);
        dv1[i] = (float)(up * 0.5 * (inv_vb - dln_va));
        dv2[i] = (float)(up * 0.5 * (dln_vb - (va + diff * diff) * inv_vb * inv_vb));
    }
}

// ---------------------------------------------------------------- masked cross-entropy
// Row r is selected when mask is null or mask[r] != 0 (NaN counts as selected, as on the CPU);
// a selected row weighs mask[r] (1 without a mask): the mean is sum(w loss) / sum(w).
// A selected row whose label is >= classes gets a NaN loss and NaN gradients (the CPU panics;
// the NaN reaches the trainer's non-finite guard instead).

__device__ __forceinline__ bool ce_selected(const float* mask, long long r) {
    return mask == nullptr || mask[r] != 0.0f;
}

__device__ __forceinline__ double ce_weight(const float* mask, long long r) {
    return mask == nullptr ? 1.0 : (double)mask[r];
}

// logsumexp of the row z[0..classes) in f64, max-shifted, computed by the calling warp; every
// lane gets the same value (the CPU's order within a lane, a fixed shuffle tree across lanes).
__device__ __forceinline__ double warp_row_logsumexp(const float* __restrict__ z, int classes,
                                                     int lane) {
    double mx = __longlong_as_double(0xfff0000000000000ll);
    for (int c = lane; c < classes; c += SCD_WARP) mx = fmax(mx, (double)z[c]);
    for (int off = SCD_WARP / 2; off > 0; off >>= 1)
        mx = fmax(mx, __shfl_xor_sync(SCD_FULL_MASK, mx, off));
    double s = 0.0;
    for (int c = lane; c < classes; c += SCD_WARP) s += exp((double)z[c] - mx);
    return mx + log(warp_sum_f64(s));
}

// A row's loss given nll = -ln p: the cross-entropy nll at q = 0, else the generalized
// cross-entropy (1 - p^q) / q (ops::losses::cross_entropy::label_loss_masked_fwd_bwd).
__device__ __forceinline__ double ce_term(double nll, double q) {
    return q > 0.0 ? (1.0 - exp(-q * nll)) / q : nll;
}

// What the row's cross-entropy gradient is multiplied by: p^q (1 at q = 0).
__device__ __forceinline__ double ce_slope(double nll, double q) {
    return q > 0.0 ? exp(-q * nll) : 1.0;
}

// Per row: loss_rows[r] = w_r ce_term(logsumexp(z_r) - z_r[label], q) (selected rows; 0 otherwise) and
// sel_rows[r] = w_r or 0. One warp per row, f64 like the CPU.
extern "C" __global__ void __launch_bounds__(KL_BLOCK)
ce_rows(const float* __restrict__ logits, const unsigned int* __restrict__ labels,
        const float* __restrict__ mask, long long rows, int classes, double q,
        double* __restrict__ loss_rows, double* __restrict__ sel_rows) {
    const int lane = threadIdx.x % SCD_WARP;
    WARP_ROWS(r, rows, KL_WARPS_PER_BLOCK) {
        if (!ce_selected(mask, r)) {
            if (lane == 0) {
                loss_rows[r] = 0.0;
                sel_rows[r] = 0.0;
            }
            continue;
        }
        const float* z = logits + (size_t)r * classes;
        const unsigned int label = labels[r];
        const double lse = warp_row_logsumexp(z, classes, lane);
        if (lane == 0) {
            const double w = ce_weight(mask, r);
            loss_rows[r] = label < (unsigned int)classes ? w * ce_term(lse - (double)z[label], q)
                                                         : __longlong_as_double(0x7ff8000000000000ll);
            sel_rows[r] = w;
        }
    }
}

// One block: out[0] = sum(loss_rows) / sum(sel_rows), 0 when no row is selected.
// Fixed-order tree sum: deterministic.
extern "C" __global__ void __launch_bounds__(CE_COUNT_BLOCK)
ce_finish(const double* __restrict__ loss_rows, const double* __restrict__ sel_rows,
          long long rows, float* __restrict__ out) {
    __shared__ double s_loss[CE_COUNT_BLOCK];
    __shared__ double s_sel[CE_COUNT_BLOCK];
    double l = 0.0, c = 0.0;
    for (long long r = threadIdx.x; r < rows; r += blockDim.x) {
        l += loss_rows[r];
        c += sel_rows[r];
    }
    s_loss[threadIdx.x] = l;
    s_sel[threadIdx.x] = c;
    __syncthreads();
    for (int half = CE_COUNT_BLOCK / 2; half > 0; half >>= 1) {
        if (threadIdx.x < half) {
            s_loss[threadIdx.x] += s_loss[threadIdx.x + half];
            s_sel[threadIdx.x] += s_sel[threadIdx.x + half];
        }
        __syncthreads();
    }
    if (threadIdx.x == 0) out[0] = s_sel[0] > 0.0 ? (float)(s_loss[0] / s_sel[0]) : 0.0f;
}

// One block: count[0] = the selected rows' total weight.
extern "C" __global__ void __launch_bounds__(CE_COUNT_BLOCK)
ce_count(const float* __restrict__ mask, long long rows, double* __restrict__ count) {
    __shared__ double s[CE_COUNT_BLOCK];
    double c = 0.0;
    for (long long r = threadIdx.x; r < rows; r += blockDim.x) c += ce_selected(mask, r) ? ce_weight(mask, r) : 0.0;
    s[threadIdx.x] = c;
    __syncthreads();
    for (int half = CE_COUNT_BLOCK / 2; half > 0; half >>= 1) {
        if (threadIdx.x < half) s[threadIdx.x] += s[threadIdx.x + half];
        __syncthreads();
    }
    if (threadIdx.x == 0) count[0] = s[0];
}

// dlogits[r, c] = g[0] w_r s_r (softmax(z_r)_c - [c == label_r]) / count on selected rows (s_r =
// ce_slope), 0 elsewhere
// (overwritten). One warp per row.
extern "C" __global__ void __launch_bounds__(KL_BLOCK)
ce_bwd(const float* __restrict__ logits, const unsigned int* __restrict__ labels,
       const float* __restrict__ mask, long long rows, int classes, double q,
       const double* __restrict__ count, const float* __restrict__ g,
       float* __restrict__ dlogits) {
    const int lane = threadIdx.x % SCD_WARP;
    const double scale = count[0] > 0.0 ? (double)g[0] / count[0] : 0.0;
    WARP_ROWS(r, rows, KL_WARPS_PER_BLOCK) {
        const float* z = logits + (size_t)r * classes;
        float* dz = dlogits + (size_t)r * classes;
        if (!ce_selected(mask, r)) {
            for (int c = lane; c < classes; c += SCD_WARP) dz[c] = 0.0f;
            continue;
        }
        const unsigned int label = labels[r];
        const double lse = warp_row_logsumexp(z, classes, lane);
        const bool bad = label >= (unsigned int)classes;
        const double w = ce_weight(mask, r) * (bad ? 1.0 : ce_slope(lse - (double)z[label], q));
        for (int c = lane; c < classes; c += SCD_WARP) {
            const double p = exp((double)z[c] - lse);
            const double onehot = (unsigned int)c == label ? 1.0 : 0.0;
            dz[c] = bad ? __int_as_float(0x7fc00000) : (float)((p - onehot) * w * scale);
        }
    }
}
