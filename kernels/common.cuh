// Shared device helpers for every scdreamer kernel (included in memory by NVRTC as
// "common.cuh"; NVRTC has no standard headers, so nothing here includes any).
//
// Conventions (llm.c style):
// - every kernel names the CPU op it mirrors; the CPU op is the reference in tests/cuda_ops.rs;
// - block sizes are compile-time constants, launches use them (the host reads the same numbers
//   from src/backend/cuda/launch.rs, keep both in sync);
// - element loops are grid-stride, so any grid size is correct;
// - reductions are deterministic: fixed-order tree reductions, partials per block and a second
//   small kernel instead of float atomics, so a run is bit-for-bit repeatable on one GPU.
#pragma once

#define SCD_WARP 32
#define SCD_FULL_MASK 0xffffffffu
#define SCD_NEG_INF (__int_as_float(0xff800000))

typedef unsigned int u32;
typedef unsigned long long u64;

// ---------------------------------------------------------------- reductions

__device__ __forceinline__ float warp_sum(float v) {
    for (int off = SCD_WARP / 2; off > 0; off >>= 1) v += __shfl_xor_sync(SCD_FULL_MASK, v, off);
    return v;
}

__device__ __forceinline__ float warp_max(float v) {
    for (int off = SCD_WARP / 2; off > 0; off >>= 1)
        v = fmaxf(v, __shfl_xor_sync(SCD_FULL_MASK, v, off));
    return v;
}

// Sum over a 1-D block (blockDim.x a multiple of 32, at most 1024). Every thread gets the
// result. `scratch` is __shared__ float[32]. Fixed order, so deterministic.
__device__ __forceinline__ float block_sum(float v, float* scratch) {
    const int lane = threadIdx.x % SCD_WARP;
    const int warp = threadIdx.x / SCD_WARP;
    const int n_warps = blockDim.x / SCD_WARP;
    v = warp_sum(v);
    __syncthreads();  // scratch may still be read by a previous call
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    v = (lane < n_warps) ? scratch[lane] : 0.0f;
    return warp_sum(v);
}

__device__ __forceinline__ float block_max(float v, float* scratch) {
    const int lane = threadIdx.x % SCD_WARP;
    const int warp = threadIdx.x / SCD_WARP;
    const int n_warps = blockDim.x / SCD_WARP;
    v = warp_max(v);
    __syncthreads();
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    v = (lane < n_warps) ? scratch[lane] : SCD_NEG_INF;
    return warp_max(v);
}

// ---------------------------------------------------------------- stable math

// softplus(x) = ln(1 + e^x) without overflow: max(x,0) + log1p(exp(-|x|)).
__device__ __forceinline__ float softplus(float x) {
    return fmaxf(x, 0.0f) + log1pf(expf(-fabsf(x)));
}

// sigmoid(x) = d softplus / dx, stable on both tails.
__device__ __forceinline__ float sigmoid(float x) {
    if (x >= 0.0f) {
        return 1.0f / (1.0f + expf(-x));
    }
    const float e = expf(x);
    return e / (1.0f + e);
}

// ln Gamma(x) for x > 0. CUDA's lgammaf is accurate to a few ulps; the CPU op uses the same
// function of the same argument (mirrors ops::special::lgamma).
__device__ __forceinline__ float scd_lgamma(float x) { return lgammaf(x); }

// digamma(x) for x > 0: shift up to x >= 6 with psi(x) = psi(x+1) - 1/x, then the asymptotic
// series. Mirrors ops::special::digamma (same shift, same series, same order of operations).
__device__ __forceinline__ float scd_digamma(float x) {
    float r = 0.0f;
    while (x < 6.0f) {
        r -= 1.0f / x;
        x += 1.0f;
    }
    const float f = 1.0f / (x * x);
    const float series =
        f * (1.0f / 12.0f - f * (1.0f / 120.0f - f * (1.0f / 252.0f - f * (1.0f / 240.0f - f * (1.0f / 132.0f)))));
    return r + logf(x) - 0.5f / x - series;
}

// ---------------------------------------------------------------- counter-based RNG

// A stateless hash RNG (splitmix64 finaliser over seed and element index): the backward pass
// recomputes the same dropout mask instead of storing it, and the CPU op computes the same bits.
// Mirrors backend::rng::uniform_at(seed, index).
__device__ __forceinline__ u64 splitmix64(u64 z) {
    z += 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

// Uniform in [0, 1) with 24 random bits.
__device__ __forceinline__ float uniform_at(u64 seed, u64 index) {
    const u64 h = splitmix64(seed ^ splitmix64(index));
    return (float)(h >> 40) * (1.0f / 16777216.0f);
}

// ---------------------------------------------------------------- activations

// Activation codes shared with backend::Activation (keep in sync).
#define ACT_IDENTITY 0
#define ACT_RELU 1
#define ACT_LEAKY_RELU 2
#define ACT_SIGMOID 3
#define ACT_EXP 4
#define ACT_SOFTPLUS 5
#define ACT_TANH 6

__device__ __forceinline__ float act_forward(int act, float x, float slope) {
    switch (act) {
        case ACT_RELU: return fmaxf(x, 0.0f);
        case ACT_LEAKY_RELU: return x > 0.0f ? x : slope * x;
        case ACT_SIGMOID: return sigmoid(x);
        case ACT_EXP: return expf(x);
        case ACT_SOFTPLUS: return softplus(x);
        case ACT_TANH: return tanhf(x);
        default: return x;
    }
}

// d act / d pre, written in terms of the activation OUTPUT y (so the forward stores only y).
__device__ __forceinline__ float act_grad_from_output(int act, float y, float slope) {
    switch (act) {
        case ACT_RELU: return y > 0.0f ? 1.0f : 0.0f;
        case ACT_LEAKY_RELU: return y > 0.0f ? 1.0f : slope;
        case ACT_SIGMOID: return y * (1.0f - y);
        case ACT_EXP: return y;
        case ACT_SOFTPLUS: return -expm1f(-y);  // sigmoid(x) = 1 - exp(-softplus(x))
        case ACT_TANH: return 1.0f - y * y;
        default: return 1.0f;
    }
}
