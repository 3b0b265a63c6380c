// Fused ZINB / NB log-likelihood: forward and backward in one pass over (rows x genes).
//
// CPU reference: ops::losses::zinb::zinb_fwd_bwd (and nb_fwd_bwd when logit == nullptr).
// Math (spec section 3, scVI form, eps inside every log, zero test x < zero_threshold):
//   zero  : LL = softplus(-l + th*(ln(th+eps) - ln(th+mu+eps))) - softplus(-l)
//   other : LL = -softplus(-l) - l + th*(ln(th+eps) - ln(th+mu+eps)) - x*ln(th+mu+eps)
//                + x*ln(mu+eps) - lgamma(x+1) + lgamma(x+th) - lgamma(th)
//   NB    : the "other" line without the two logit terms, for every x.
// Outputs, for upstream u[r] = dLoss/dLL_row[r]:
//   ll_row[r] = sum_g LL[r,g]               (via row_partials + reduce.cu:sum_leading_axis)
//   dmu[r,g] = u[r] dLL/dmu, dlogit[r,g] = u[r] dLL/dl
//   dtheta[g] = sum_r u[r] dLL/dth          (via theta_partials + reduce.cu:sum_leading_axis)
//
// Layout: a block is a tile of ZINB_TILE_COLS genes x ZINB_TILE_ROWS rows, threads (32, 8).
// threadIdx.x runs along genes, so loads are coalesced and one warp holds one row: the row's
// partial sum is a warp shuffle reduction, written once per (column tile, row) with no atomics.
// The per-gene dtheta partial is reduced over threadIdx.y in shared memory and written once per
// (row tile, gene). A second tiny launch sums the partials in a fixed order (deterministic).
#include "common.cuh"

#define ZINB_TILE_COLS 32
#define ZINB_TILE_THREADS_Y 8
#define ZINB_TILE_ROWS 32

extern "C" __global__ void __launch_bounds__(ZINB_TILE_COLS * ZINB_TILE_THREADS_Y)
zinb_fwd_bwd_tile(const float* __restrict__ x, const float* __restrict__ mu,
                  const float* __restrict__ theta, const float* __restrict__ logit,
                  const float* __restrict__ upstream, int rows, int cols, float eps,
                  float zero_threshold, float* __restrict__ row_partials,
                  float* __restrict__ dmu, float* __restrict__ dlogit,
                  float* __restrict__ theta_partials) {
    __shared__ float theta_acc[ZINB_TILE_THREADS_Y][ZINB_TILE_COLS + 1];
    const bool zero_inflated = logit != nullptr;
    const int col = blockIdx.x * ZINB_TILE_COLS + threadIdx.x;
    const int row_begin = blockIdx.y * ZINB_TILE_ROWS;
    const int row_end = min(row_begin + ZINB_TILE_ROWS, rows);
    const bool col_ok = col < cols;

    const float th = col_ok ? theta[col] : 1.0f;
    const float log_th_eps = logf(th + eps);
    const float th_over_th_eps = th / (th + eps);
    const float lgamma_th = scd_lgamma(th);
    const float digamma_th = scd_digamma(th);

    float dtheta_acc = 0.0f;
    for (int row = row_begin + threadIdx.y; row < row_end; row += ZINB_TILE_THREADS_Y) {
        float ll = 0.0f;
        if (col_ok) {
            const size_t i = (size_t)row * cols + col;
            const float xv = x[i];
            const float m = mu[i];
            const float u = upstream[row];
            const float th_mu_eps = th + m + eps;
            const float log_th_mu_eps = logf(th_mu_eps);
            const float pi_theta_log = th * (log_th_eps - log_th_mu_eps);
            // d/dth of th*(ln(th+eps) - ln(th+mu+eps))
            const float d_common_th = log_th_eps - log_th_mu_eps + th_over_th_eps - th / th_mu_eps;
            float dl = 0.0f, dm, dt;
            if (zero_inflated && xv < zero_threshold) {
                // ln(sigma(l) + sigma(-l) e^d) = ln1p(w), w = sigma(-l) expm1(d), d <= 0: no
                // cancellation between two large softplus terms; sigma(d - l) = sigma(-l) e^d / (1 + w).
                // Where w <= -1/2 (1 + w would lose digits) fall back to the softplus form,
                // exactly as the CPU op does.
                const float l = logit[i];
                const float s_neg_l = sigmoid(-l);
                const float w = s_neg_l * expm1f(pi_theta_log);
                float s_a;
                if (w > -0.5f) {
                    ll = log1pf(w);
                    s_a = s_neg_l * expf(pi_theta_log) / (1.0f + w);
                } else {
                    const float a = -l + pi_theta_log;
                    ll = softplus(a) - softplus(-l);
                    s_a = sigmoid(a);
                }
                dl = s_neg_l - s_a;
                dm = -s_a * th / th_mu_eps;
                dt = s_a * d_common_th;
            } else {
                const float log_mu_eps = logf(m + eps);
                ll = pi_theta_log - xv * log_th_mu_eps + xv * log_mu_eps - scd_lgamma(xv + 1.0f) +
                     scd_lgamma(xv + th) - lgamma_th;
                if (zero_inflated) {
                    const float l = logit[i];
                    ll -= softplus(l);  // -softplus(-l) - l = -softplus(l) = ln(1 - pi)
                    dl = -sigmoid(l);
                }
                dm = -th / th_mu_eps - xv / th_mu_eps + xv / (m + eps);
                dt = d_common_th - xv / th_mu_eps + scd_digamma(xv + th) - digamma_th;
            }
            dmu[i] = u * dm;
            if (zero_inflated) dlogit[i] = u * dl;
            dtheta_acc += u * dt;
        }
        // One warp = one row (threadIdx.x spans the 32 genes of the tile).
        ll = warp_sum(ll);
        if (threadIdx.x == 0) row_partials[(size_t)blockIdx.x * rows + row] = ll;
    }

    theta_acc[threadIdx.y][threadIdx.x] = dtheta_acc;
    __syncthreads();
    if (threadIdx.y == 0 && col_ok) {
        float s = 0.0f;
        for (int y = 0; y < ZINB_TILE_THREADS_Y; y++) s += theta_acc[y][threadIdx.x];
        theta_partials[(size_t)blockIdx.y * cols + col] = s;
    }
}
