// Fused multi-tensor Adam: every parameter tensor of an optimiser in one launch.
//
// CPU reference: nn::optim::adam_step.
//   m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;  p -= step_size * m / (sqrt(v) * v_scale + eps)
// The host folds the bias corrections into two scalars so one kernel serves both forms:
//   TF1 (the authors'): step_size = lr sqrt(1 - b2^t) / (1 - b1^t), v_scale = 1 (eps is "eps hat");
//   PyTorch:            step_size = lr / (1 - b1^t),               v_scale = 1 / sqrt(1 - b2^t).
// Tensors are passed as tables of device pointers; the host splits every tensor into chunks of
// ADAM_CHUNK elements and gives each block its (tensor, first element) pair, built once per
// optimiser. zero_grad clears g after use (saves a memset launch per tensor).
#include "common.cuh"

#define ADAM_BLOCK 256
#define ADAM_CHUNK 4096

extern "C" __global__ void __launch_bounds__(ADAM_BLOCK)
adam_multi_tensor(const u64* __restrict__ params, const u64* __restrict__ grads,
                  const u64* __restrict__ m1, const u64* __restrict__ m2,
                  const long long* __restrict__ sizes, const int* __restrict__ block_tensor,
                  const long long* __restrict__ block_start, float beta1, float beta2,
                  float step_size, float v_scale, float eps, int zero_grad) {
    const int t = block_tensor[blockIdx.x];
    const long long start = block_start[blockIdx.x];
    const long long end = min(start + (long long)ADAM_CHUNK, sizes[t]);
    float* p = (float*)params[t];
    float* g = (float*)grads[t];
    float* m = (float*)m1[t];
    float* v = (float*)m2[t];
    for (long long i = start + threadIdx.x; i < end; i += blockDim.x) {
        const float gi = g[i];
        const float mi = beta1 * m[i] + (1.0f - beta1) * gi;
        const float vi = beta2 * v[i] + (1.0f - beta2) * gi * gi;
        m[i] = mi;
        v[i] = vi;
        p[i] -= step_size * mi / (sqrtf(vi) * v_scale + eps);
        if (zero_grad) g[i] = 0.0f;
    }
}
