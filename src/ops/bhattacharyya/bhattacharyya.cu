// Bhattacharyya term of the discriminator, forward and backward in one launch (spec section 3).
//
// CPU reference: cpu.rs beside this file (bhattacharyya_fwd_bwd), same formulation:
//   sa = sum a, sb = sum b, w = sum_i sqrt(|a_i b_i|)
//   ln BC = ln w - ln|sa| / 2 - ln|sb| / 2       (BC = sum_i sqrt(|a_i/sa * b_i/sb|))
//   w == 0: loss = ln(clip_lo), zero gradients; ln BC outside [ln lo, ln hi]: clipped, zero
//   gradients (TF's clip_by_value gradient); else
//   d lnBC / da_i = (sign(a_i) sqrt(|b_i| / |a_i|) / w - 1 / sa) / 2   (0 term where a_i == 0)
// out[0] = BC, out[1] = ln clip(BC). da, db get g * d lnBC/d(a, b), g = upstream (host) times
// upstream_dev[0] when that device scalar is given (the tape's upstream gradient).
// One block: the minibatch is a few hundred cells, so everything is block reductions.
#include "common.cuh"

#define BHATT_BLOCK 256

extern "C" __global__ void __launch_bounds__(BHATT_BLOCK)
bhattacharyya_fwd_bwd(const float* __restrict__ a, const float* __restrict__ b, int n,
                      float clip_lo, float clip_hi, float upstream,
                      const float* __restrict__ upstream_dev, float* __restrict__ out,
                      float* __restrict__ da, float* __restrict__ db, int accumulate) {
    __shared__ float scratch[32];
    float sa = 0.0f, sb = 0.0f, w = 0.0f;
    for (int i = threadIdx.x; i < n; i += blockDim.x) {
        sa += a[i];
        sb += b[i];
        w += sqrtf(fabsf(a[i] * b[i]));
    }
    sa = block_sum(sa, scratch);
    sb = block_sum(sb, scratch);
    w = block_sum(w, scratch);

    const float log_lo = logf(clip_lo), log_hi = logf(clip_hi);
    float ln_bc;
    bool pass_grad;
    if (w == 0.0f) {
        ln_bc = log_lo;
        pass_grad = false;
    } else {
        ln_bc = logf(w) - 0.5f * logf(fabsf(sa)) - 0.5f * logf(fabsf(sb));
        pass_grad = ln_bc >= log_lo && ln_bc <= log_hi;  // NaN propagates through the else
        if (ln_bc < log_lo || ln_bc > log_hi) ln_bc = fminf(fmaxf(ln_bc, log_lo), log_hi);
    }
    if (threadIdx.x == 0) {
        out[0] = w == 0.0f ? 0.0f : expf(logf(w) - 0.5f * logf(fabsf(sa)) - 0.5f * logf(fabsf(sb)));
        out[1] = ln_bc;
    }
    const float g = upstream * (upstream_dev ? upstream_dev[0] : 1.0f);
    const float inv_w = 1.0f / w, inv_sa = 1.0f / sa, inv_sb = 1.0f / sb;
    const bool nan = ln_bc != ln_bc;
    for (int i = threadIdx.x; i < n; i += blockDim.x) {
        float ga = 0.0f, gb = 0.0f;
        if (nan) {
            ga = gb = ln_bc;
        } else if (pass_grad) {
            const float ai = a[i], bi = b[i];
            const float ra = ai == 0.0f ? 0.0f : copysignf(sqrtf(fabsf(bi) / fabsf(ai)), ai);
            const float rb = bi == 0.0f ? 0.0f : copysignf(sqrtf(fabsf(ai) / fabsf(bi)), bi);
            ga = g * 0.5f * (ra * inv_w - inv_sa);
            gb = g * 0.5f * (rb * inv_w - inv_sb);
        }
        da[i] = accumulate ? da[i] + ga : ga;
        db[i] = accumulate ? db[i] + gb : gb;
    }
}
