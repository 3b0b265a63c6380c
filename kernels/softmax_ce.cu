// Masked softmax cross-entropy, forward and backward in one pass; one warp per row.
//
// CPU reference: ops::losses::cross_entropy::softmax_ce_fwd_bwd.
//   loss_row[r] = logsumexp(z_r) - z_r[label_r]               (0 where label_r < 0: unlabelled)
//   dz[r, c] (+)= grad_scale * (softmax(z_r)_c - [c == label_r]) (0 where label_r < 0)
// grad_scale is dLoss/dloss_row, e.g. 1 / (number of labelled rows) for a mean: the host knows
// the labels, so it counts them. The batch classifier passes every row labelled.
#include "common.cuh"

#define CE_WARPS_PER_BLOCK 8

extern "C" __global__ void __launch_bounds__(CE_WARPS_PER_BLOCK * SCD_WARP)
softmax_ce_fwd_bwd(const float* __restrict__ logits, const int* __restrict__ labels, int rows,
                   int classes, float grad_scale, float* __restrict__ loss_rows,
                   float* __restrict__ dlogits, int accumulate) {
    const int lane = threadIdx.x % SCD_WARP;
    const int warps_total = gridDim.x * CE_WARPS_PER_BLOCK;
    for (int r = blockIdx.x * CE_WARPS_PER_BLOCK + threadIdx.x / SCD_WARP; r < rows;
         r += warps_total) {
        const float* z = logits + (size_t)r * classes;
        float* dz = dlogits + (size_t)r * classes;
        const int label = labels[r];
        if (label < 0 || label >= classes) {
            // Unlabelled (or out-of-range, which the host rejects before launch): no loss, no
            // gradient.
            if (lane == 0) loss_rows[r] = 0.0f;
            if (!accumulate)
                for (int c = lane; c < classes; c += SCD_WARP) dz[c] = 0.0f;
            continue;
        }
        float m = SCD_NEG_INF;
        for (int c = lane; c < classes; c += SCD_WARP) m = fmaxf(m, z[c]);
        m = warp_max(m);
        float s = 0.0f;
        for (int c = lane; c < classes; c += SCD_WARP) s += expf(z[c] - m);
        s = warp_sum(s);
        const float log_s = logf(s);
        if (lane == 0) loss_rows[r] = m + log_s - z[label];
        for (int c = lane; c < classes; c += SCD_WARP) {
            const float p = expf(z[c] - m - log_s);
            const float g = grad_scale * (p - (c == label ? 1.0f : 0.0f));
            dz[c] = accumulate ? dz[c] + g : g;
        }
    }
}
