// Row softmax and its backward, one block per row (block_max/block_sum of common.cuh): the
// CUDA kernels of src/ops/softmax, launched by cuda.rs beside this file.
#include "common.cuh"

#define SOFTMAX_BLOCK 256

// Row softmax, one block per row, max-subtracted. CPU: cpu.rs beside this file.
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

// dx += y * (dy - sum_c y*dy) per row. CPU: cpu.rs beside this file.
extern "C" __global__ void __launch_bounds__(SOFTMAX_BLOCK)
softmax_rows_bwd(const float* __restrict__ y, const float* __restrict__ dy, int rows, int cols,
                 float* __restrict__ dx) {
    __shared__ float scratch[32];
    for (int r = blockIdx.x; r < rows; r += gridDim.x) {
        const size_t base = (size_t)r * cols;
        float dot = 0.0f;
        for (int c = threadIdx.x; c < cols; c += blockDim.x) dot += y[base + c] * dy[base + c];
        dot = block_sum(dot, scratch);
        for (int c = threadIdx.x; c < cols; c += blockDim.x) {
            const float g = y[base + c] * (dy[base + c] - dot);
            dx[base + c] += g;
        }
    }
}
