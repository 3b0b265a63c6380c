// Multi-tensor updates (llm.c / apex style): one launch updates every tensor of an optimiser
// instead of one launch per tensor. The tensors' addresses come from a table in device memory
// (row k: p, g, m, v, n as u64), uploaded once and re-uploaded only when an address changes
// (src/backend/cuda/ops/multi_tensor.rs). Grid: y = tensor, x = blocks striding over it.
//
// CPU reference: backend::cpu::adam::adam per tensor, and backend::cpu::reduce::sq_norm of each
// tensor summed in tensor order, the total added to the accumulator (the same order as here).
#include "common.cuh"

#define MT_BLOCK 256
// Blocks per tensor of the squared-norm partials (the host's MT_NORM_BLOCKS).
#define MT_NORM_BLOCKS 64
#define MT_ROW 5

// PyTorch's Adam/AdamW formula for one element, in the CPU op's f32 expressions. The host
// computes step = lr / bias_c1, inv_sqrt_c2 = 1 / sqrt(bias_c2) and decay = 1 - lr * wd.
__device__ __forceinline__ void adam_element(float* p, const float* g, float* m, float* v,
                                             long long i, float scale, float beta1, float beta2,
                                             float eps, float step, float inv_sqrt_c2,
                                             float decay) {
    const float gi = __fmul_rn(g[i], scale);
    const float mi = __fadd_rn(__fmul_rn(beta1, m[i]), __fmul_rn(1.0f - beta1, gi));
    const float vi = __fadd_rn(__fmul_rn(beta2, v[i]), __fmul_rn(__fmul_rn(1.0f - beta2, gi), gi));
    m[i] = mi;
    v[i] = vi;
    const float denom = __fadd_rn(__fmul_rn(sqrtf(vi), inv_sqrt_c2), eps);
    p[i] = __fsub_rn(__fmul_rn(p[i], decay), __fdiv_rn(__fmul_rn(step, mi), denom));
}

// Adam over the table's n_tensors tensors. The gradient scale is grad_scale_dev[0] when given
// (the clipping factor computed on the device), else grad_scale. Mirrors cpu::adam::adam.
extern "C" __global__ void __launch_bounds__(MT_BLOCK)
adam_many(const u64* __restrict__ table, int n_tensors, float beta1, float beta2, float eps,
          float grad_scale, const float* __restrict__ grad_scale_dev, float step,
          float inv_sqrt_c2, float decay) {
    const int k = blockIdx.y;
    if (k >= n_tensors) return;
    const u64* row = table + (long long)k * MT_ROW;
    float* p = (float*)row[0];
    const float* g = (const float*)row[1];
    float* m = (float*)row[2];
    float* v = (float*)row[3];
    const long long n = (long long)row[4];
    const float scale = grad_scale_dev ? grad_scale_dev[0] : grad_scale;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (long long)gridDim.x * blockDim.x)
        adam_element(p, g, m, v, i, scale, beta1, beta2, eps, step, inv_sqrt_c2, decay);
}

// partials[k * MT_NORM_BLOCKS + b] = block b's share of sum x_k[i]^2 in f64, for tensor k of
// the table (row: x, -, -, -, n). Blocks past what a tensor fills write 0 and leave at once
// (before any barrier: the whole block leaves).
extern "C" __global__ void __launch_bounds__(MT_BLOCK)
sq_norm_many_partials(const u64* __restrict__ table, int n_tensors,
                      double* __restrict__ partials) {
    __shared__ double scratch[MT_BLOCK / SCD_WARP];
    const int k = blockIdx.y;
    if (k >= n_tensors) return;
    const u64* row = table + (long long)k * MT_ROW;
    const float* x = (const float*)row[0];
    const long long n = (long long)row[4];
    const long long used = (n + MT_BLOCK - 1) / MT_BLOCK;
    double* out = partials + (long long)k * MT_NORM_BLOCKS;
    if ((long long)blockIdx.x >= used) {
        if (threadIdx.x == 0) out[blockIdx.x] = 0.0;
        return;
    }
    const long long blocks = used < (long long)gridDim.x ? used : (long long)gridDim.x;
    double s = 0.0;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += blocks * blockDim.x) {
        const double v = (double)x[i];
        s += v * v;
    }
    const double t = block_sum_f64_thread0(s, scratch, MT_BLOCK / SCD_WARP);
    if (threadIdx.x == 0) out[blockIdx.x] = t;
}

// acc[slot] += (tensor 0's sum + tensor 1's sum + ...) (one thread, fixed order:
// deterministic, and the CPU's order).
extern "C" __global__ void acc_partials_many(double* __restrict__ acc, int slot,
                                             const double* __restrict__ partials,
                                             int n_tensors) {
    if (blockIdx.x != 0 || threadIdx.x != 0) return;
    double total = 0.0;
    for (int k = 0; k < n_tensors; k++) {
        double t = 0.0;
        for (int b = 0; b < MT_NORM_BLOCKS; b++) t += partials[(long long)k * MT_NORM_BLOCKS + b];
        total += t;
    }
    acc[slot] += total;
}
