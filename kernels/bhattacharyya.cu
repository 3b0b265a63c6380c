// Bhattacharyya term of the discriminator, forward and backward in one launch (spec section 3).
//
// CPU reference: ops::losses::bhattacharyya::bhattacharyya_fwd_bwd.
//   p_i = a_i / sum_j a_j,  q_i = b_i / sum_j b_j,  t_i = sqrt(|p_i q_i|),  BC = sum_i t_i
//   out[0] = BC, out[1] = ln(clip(BC, clip_lo, clip_hi))
//   d ln clip(BC) / dBC = 1/BC inside [clip_lo, clip_hi] (bounds included, as TF), else 0
//   dBC/da_j = 0.5 * (t_j / a_j - BC / sum a)   (t_j / a_j taken as 0 where t_j == 0)
//   da_j = upstream * d ln clip(BC)/dBC * dBC/da_j, likewise db (+= when accumulate).
// The caller passes upstream = +1 for the discriminator loss, -1 for the autoencoder term.
// One block: the minibatch is a few hundred cells, so everything is block reductions.
#include "common.cuh"

#define BHATT_BLOCK 256

extern "C" __global__ void __launch_bounds__(BHATT_BLOCK)
bhattacharyya_fwd_bwd(const float* __restrict__ a, const float* __restrict__ b, int n,
                      float clip_lo, float clip_hi, float upstream, float* __restrict__ out,
                      float* __restrict__ da, float* __restrict__ db, int accumulate) {
    __shared__ float scratch[32];
    float sa = 0.0f, sb = 0.0f;
    for (int i = threadIdx.x; i < n; i += blockDim.x) {
        sa += a[i];
        sb += b[i];
    }
    sa = block_sum(sa, scratch);
    sb = block_sum(sb, scratch);
    float bc = 0.0f;
    for (int i = threadIdx.x; i < n; i += blockDim.x) bc += sqrtf(fabsf((a[i] / sa) * (b[i] / sb)));
    bc = block_sum(bc, scratch);

    const float clipped = fminf(fmaxf(bc, clip_lo), clip_hi);
    const float dlog = (bc >= clip_lo && bc <= clip_hi) ? 1.0f / bc : 0.0f;
    if (threadIdx.x == 0) {
        out[0] = bc;
        out[1] = logf(clipped);
    }
    const float g = upstream * dlog;
    for (int i = threadIdx.x; i < n; i += blockDim.x) {
        const float t = sqrtf(fabsf((a[i] / sa) * (b[i] / sb)));
        const float ga = g * 0.5f * ((t != 0.0f ? t / a[i] : 0.0f) - bc / sa);
        const float gb = g * 0.5f * ((t != 0.0f ? t / b[i] : 0.0f) - bc / sb);
        da[i] = accumulate ? da[i] + ga : ga;
        db[i] = accumulate ? db[i] + gb : gb;
    }
}
