// Deterministic reductions.
//
// No float atomics anywhere: a reduction is either one thread per output walking its inputs in
// index order, or per-block partials (fixed grid) summed again by a one-block launch.
#include "common.cuh"

#define REDUCE_BLOCK 256

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
