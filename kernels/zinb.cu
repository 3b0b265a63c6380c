// Fused ZINB / NB log-likelihood: forward and backward in one pass over (rows x genes).
//
// CPU reference: backend::cpu::losses::zinb::zinb_fwd_bwd (and backend::cpu::losses::nb::nb_fwd_bwd when
// logit == nullptr). Every element is computed in f64 with the CPU op's cancellation-free forms
// (backend::cpu::losses::nb): with u = mu / (th + eps),
//   d      = th (ln(th+eps) - ln(th+mu+eps)) = -th ln1p(u)
//   dd/dth = -(ln1p(u) - u/(1+u)) - eps/(th+eps) * mu/(th+mu+eps)   (series where they cancel)
//   lgamma(x+th) - lgamma(th), digamma(x+th) - digamma(th): the large-th series difference
// so theta up to 1e5 and beyond (theta = exp(log_theta) is unconstrained) keeps its digits.
//   zero (x < zero_threshold, ZINB): LL = ln(sigma(l) + sigma(-l) e^d) = ln1p(w),
//        w = sigma(-l) expm1(d); the softplus form where w <= -1/2
//   other: LL = -softplus(l) + d - x ln1p(th/(mu+eps)) + [lgamma(x+th) - lgamma(th)] - lgamma(x+1)
//   NB   : the "other" line without the logit term; x == 0 gives d exactly.
// Outputs, for upstream u[r] = dLoss/dLL_row[r]:
//   ll_row[r] = sum_g LL[r,g]               (via row_partials + reduce.cu:sum_leading_axis)
//   dmu[r,g] = u[r] dLL/dmu, dlogit[r,g] = u[r] dLL/dl
//   dtheta[g] = sum_r u[r] dLL/dth          (via theta_partials + reduce.cu:sum_leading_axis)
//
// Layout: a block is a tile of ZINB_TILE_COLS genes x ZINB_TILE_ROWS rows, threads (32, 8).
// threadIdx.x runs along genes, so loads are coalesced and one warp holds one row: the row's
// partial sum is a warp shuffle reduction (f64), written once per (column tile, row) with no
// atomics. The per-gene dtheta partial is reduced over threadIdx.y in shared memory and written
// once per (row tile, gene). A second tiny launch sums the partials in a fixed order.
#include "common.cuh"

#define ZINB_TILE_COLS 32
#define ZINB_TILE_THREADS_Y 8
#define ZINB_TILE_ROWS 32

// One element: (LL, dLL/dmu, dLL/dth, dLL/dl).
struct ZinbElement {
    double ll, dmu, dth, dl;
};

__device__ __forceinline__ ZinbElement zinb_element(double x, double m, double l, bool zero_inflated,
                                                    double zero_threshold, double t, double eps,
                                                    double inv_t_eps, double eps_frac,
                                                    const ScdGammaShift& gs) {
    ZinbElement r;
    // The x = 0 NB term d and its partials (backend::cpu::losses::nb::nb_zero_term).
    const double u = m * inv_t_eps;
    const double ln1p_u = log1p(u);
    const double d = -t * ln1p_u;
    const double inv_tme = 1.0 / (t + m + eps);
    const double dd_dm = -t * inv_tme;
    const double ratio = m * inv_tme;
    const double dd_dt = -scd_log1p_minus_ratio(u, ln1p_u, ratio) - eps_frac * ratio;
    double sp_l = 0.0, sig_l = 0.0;
    if (zero_inflated) {
        const double el = exp(-fabs(l));
        const double inv = 1.0 / (1.0 + el);
        sig_l = l >= 0.0 ? inv : el * inv;
        const double sig_neg_l = l >= 0.0 ? el * inv : inv;
        sp_l = fmax(l, 0.0) + log1p(el);
        if (x < zero_threshold) {
            const double w = sig_neg_l * expm1(d);
            double sig_z;
            if (w > -0.5) {
                r.ll = log1p(w);
                sig_z = sig_neg_l * exp(d) / (1.0 + w);
            } else {
                const double z = d - l;
                const double ez = exp(-fabs(z));
                const double iz = 1.0 / (1.0 + ez);
                sig_z = z >= 0.0 ? iz : ez * iz;
                r.ll = l - sp_l + (fmax(z, 0.0) + log1p(ez));
            }
            r.dmu = sig_z * dd_dm;
            r.dth = sig_z * dd_dt;
            r.dl = sig_neg_l - sig_z;
            return r;
        }
    } else if (x == 0.0) {
        // lgamma(th) - lgamma(th) and lgamma(1) vanish exactly (backend::cpu::losses::nb::nb_elem).
        r.ll = d;
        r.dmu = dd_dm;
        r.dth = dd_dt;
        r.dl = 0.0;
        return r;
    }
    // x > 0 (backend::cpu::losses::nb::nb_nonzero).
    const double me = m + eps;
    double lg_diff, dg_diff;
    scd_lgamma_digamma_diff(gs, x, &lg_diff, &dg_diff);
    r.ll = d + x * -log1p(t / me) + lg_diff - scd_lgamma_d(x + 1.0) - sp_l;
    r.dmu = (t * inv_tme) * ((x - me) / me);
    r.dth = dd_dt - x * inv_tme + dg_diff;
    r.dl = -sig_l;
    return r;
}

extern "C" __global__ void __launch_bounds__(ZINB_TILE_COLS * ZINB_TILE_THREADS_Y)
zinb_fwd_bwd_tile(const float* __restrict__ x, const float* __restrict__ mu,
                  const float* __restrict__ theta, const float* __restrict__ logit,
                  const float* __restrict__ upstream, int rows, int cols, float eps,
                  float zero_threshold, float* __restrict__ row_partials,
                  float* __restrict__ dmu, float* __restrict__ dlogit,
                  float* __restrict__ theta_partials) {
    __shared__ double theta_acc[ZINB_TILE_THREADS_Y][ZINB_TILE_COLS + 1];
    const bool zero_inflated = logit != nullptr;
    const int col = blockIdx.x * ZINB_TILE_COLS + threadIdx.x;
    const int row_begin = blockIdx.y * ZINB_TILE_ROWS;
    const int row_end = min(row_begin + ZINB_TILE_ROWS, rows);
    const bool col_ok = col < cols;

    // Per-gene constants (backend::cpu::losses::nb::GeneConsts).
    const double e = (double)eps;
    const double t = col_ok ? (double)theta[col] : 1.0;
    const double inv_t_eps = 1.0 / (t + e);
    const double eps_frac = e / (t + e);
    const ScdGammaShift gs = scd_gamma_shift(t);

    double dtheta_acc = 0.0;
    for (int row = row_begin + threadIdx.y; row < row_end; row += ZINB_TILE_THREADS_Y) {
        double ll = 0.0;
        if (col_ok) {
            const size_t i = (size_t)row * cols + col;
            const double u = (double)upstream[row];
            const ZinbElement el =
                zinb_element((double)x[i], (double)mu[i], zero_inflated ? (double)logit[i] : 0.0,
                             zero_inflated, (double)zero_threshold, t, e, inv_t_eps, eps_frac, gs);
            ll = el.ll;
            dmu[i] = (float)(u * el.dmu);
            if (zero_inflated) dlogit[i] = (float)(u * el.dl);
            dtheta_acc += u * el.dth;
        }
        // One warp = one row (threadIdx.x spans the 32 genes of the tile).
        ll = warp_sum_f64(ll);
        if (threadIdx.x == 0) row_partials[(size_t)blockIdx.x * rows + row] = (float)ll;
    }

    theta_acc[threadIdx.y][threadIdx.x] = dtheta_acc;
    __syncthreads();
    if (threadIdx.y == 0 && col_ok) {
        double s = 0.0;
        for (int y = 0; y < ZINB_TILE_THREADS_Y; y++) s += theta_acc[y][threadIdx.x];
        theta_partials[(size_t)blockIdx.y * cols + col] = (float)s;
    }
}
