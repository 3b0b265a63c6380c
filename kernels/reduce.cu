// Deterministic reductions and the row softmax.
//
// No float atomics anywhere: a reduction is either one thread per output walking its inputs in
// index order, or per-block partials (fixed grid) summed again by a one-block launch.
#include "common.cuh"

#define REDUCE_BLOCK 256
#define SOFTMAX_BLOCK 256

// out[j] = (accumulate ? out[j] : 0) + sum_{p < parts} in[p * n + j].
// CPU reference: ops::reduce::sum_leading_axis. Used for column sums of a row-major matrix
// (bias gradients: parts = rows, n = cols) and to finish the per-tile partials of the fused
// loss kernels (zinb.cu). Consecutive threads read consecutive j: coalesced.
extern "C" __global__ void __launch_bounds__(REDUCE_BLOCK)
sum_leading_axis(const float* __restrict__ in, int parts, int n, float* __restrict__ out,
                 int accumulate) {
    for (int j = blockIdx.x * blockDim.x + threadIdx.x; j < n; j += gridDim.x * blockDim.x) {
        float s = 0.0f;
        for (int p = 0; p < parts; p++) s += in[(size_t)p * n + j];
        out[j] = accumulate ? out[j] + s : s;
    }
}

// Row softmax, one block per row, max-subtracted. CPU reference: ops::softmax::softmax_rows.
extern "C" __global__ void __launch_bounds__(SOFTMAX_BLOCK)
softmax_rows_fwd(const float* __restrict__ in, int rows, int cols, float* __restrict__ out) {
    __shared__ float scratch[32];
    for (int r = blockIdx.x; r < rows; r += gridDim.x) {
        const float* x = in + (size_t)r * cols;
        float* y = out + (size_t)r * cols;
        float m = SCD_NEG_INF;
        for (int c = threadIdx.x; c < cols; c += blockDim.x) m = fmaxf(m, x[c]);
        m = block_max(m, scratch);
        float s = 0.0f;
        for (int c = threadIdx.x; c < cols; c += blockDim.x) {
            const float e = expf(x[c] - m);
            y[c] = e;
            s += e;
        }
        s = block_sum(s, scratch);
        const float inv = 1.0f / s;
        for (int c = threadIdx.x; c < cols; c += blockDim.x) y[c] *= inv;
    }
}

// dx = y * (dy - sum_c y*dy) per row; dx += when accumulate. CPU reference:
// ops::softmax::softmax_rows_backward.
extern "C" __global__ void __launch_bounds__(SOFTMAX_BLOCK)
softmax_rows_bwd(const float* __restrict__ y, const float* __restrict__ dy, int rows, int cols,
                 float* __restrict__ dx, int accumulate) {
    __shared__ float scratch[32];
    for (int r = blockIdx.x; r < rows; r += gridDim.x) {
        const size_t base = (size_t)r * cols;
        float dot = 0.0f;
        for (int c = threadIdx.x; c < cols; c += blockDim.x) dot += y[base + c] * dy[base + c];
        dot = block_sum(dot, scratch);
        for (int c = threadIdx.x; c < cols; c += blockDim.x) {
            const float g = y[base + c] * (dy[base + c] - dot);
            dx[base + c] = accumulate ? dx[base + c] + g : g;
        }
    }
}
