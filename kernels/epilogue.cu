// Fused epilogue of a dense layer: out = dropout(act(in + bias)), and its backward.
//
// CPU reference: ops::dense::bias_act_dropout (forward) and bias_act_dropout_backward.
// Dropout is inverted (kept values scaled by 1/keep_prob; keep_prob = 1 turns it off) and its
// mask is a pure function of (seed, element index) (common.cuh:uniform_at), so the backward
// recomputes it instead of reading a stored mask, and the CPU op draws the same mask.
// The backward needs only the forward OUTPUT: act' is written in terms of act(x), and where
// dropout kept an element act(x) = out * keep_prob (dropped elements have zero gradient).
// The bias gradient is reduce.cu:sum_leading_axis over the returned dpre.
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
        if (keep_prob < 1.0f) v = uniform_at(seed, (u64)i) < keep_prob ? v * inv_keep : 0.0f;
        out[i] = v;
    }
}

// dpre = dout * dropout_mask / keep_prob * act'(act(x)); dout and dpre may alias.
extern "C" __global__ void __launch_bounds__(EPILOGUE_BLOCK)
bias_act_dropout_bwd(const float* __restrict__ out, const float* dout, int rows, int cols,
                     int act, float slope, float keep_prob, unsigned long long seed,
                     float* dpre) {
    const long long total = (long long)rows * cols;
    const float inv_keep = 1.0f / keep_prob;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < total;
         i += (long long)gridDim.x * blockDim.x) {
        float y = out[i];
        float g = dout[i];
        if (keep_prob < 1.0f) {
            if (uniform_at(seed, (u64)i) < keep_prob) {
                y *= keep_prob;
                g *= inv_keep;
            } else {
                g = 0.0f;
            }
        }
        dpre[i] = g * act_grad_from_output(act, y, slope);
    }
}
