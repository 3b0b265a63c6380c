// Fused epilogue of a dense layer: out = dropout(act(in + bias)).
//
// CPU reference: the CPU backend's add_bias, the activation (cpu::elementwise) and
// cpu::random::dropout_mask applied in that order. Dropout is inverted (kept values scaled by
// 1/keep_prob; keep_prob = 1 turns it off) and its mask is the CPU's for the same seed, element
// for element (common.cuh: rng_mix / rng_unit, kept where unit <= keep).
#include "common.cuh"

#define EPILOGUE_BLOCK 256

// `in` and `out` may alias (in-place); bias (length cols) may be null.
extern "C" __global__ void __launch_bounds__(EPILOGUE_BLOCK)
bias_act_dropout_fwd(const float* in, const float* __restrict__ bias, int rows, int cols,
                     int act, float slope, float keep_prob, unsigned long long seed, float* out) {
    const long long total = (long long)rows * cols;
    const float inv_keep = 1.0f / keep_prob;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < total;
         i += (long long)gridDim.x * blockDim.x) {
        float v = in[i];
        if (bias) v += bias[i % cols];
        v = act_forward(act, v, slope);
        if (keep_prob < 1.0f)
            v = rng_unit((u32)rng_mix(seed, (u64)i)) <= keep_prob ? v * inv_keep : 0.0f;
        out[i] = v;
    }
}
