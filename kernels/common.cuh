// Shared device helpers for every scdreamer kernel (included in memory by NVRTC as
// "common.cuh"; NVRTC has no standard headers, so nothing here includes any).
//
// Conventions (llm.c style):
// - every kernel names the CPU op it mirrors; the CPU op is the reference in tests/cuda_ops.rs;
// - block sizes are compile-time constants, launches use them (the host repeats the numbers in
//   src/backend/cuda/ops/*.rs, keep both in sync);
// - element loops are grid-stride, so any grid size is correct;
// - reductions are deterministic: fixed-order tree reductions, partials per block and a second
//   small kernel instead of float atomics, so a run is bit-for-bit repeatable on one GPU.
#pragma once

#define SCD_WARP 32
#define SCD_FULL_MASK 0xffffffffu
#define SCD_NEG_INF (__int_as_float(0xff800000))

typedef unsigned int u32;
typedef unsigned long long u64;

// ---------------------------------------------------------------- loops

// Grid-stride loop: `i` runs over [0, n) whatever the grid size.
#define GRID_STRIDE(i, n)                                                              \
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < (n);      \
         i += (long long)gridDim.x * blockDim.x)

// One warp per row: `r` runs over rows (`lane` = threadIdx.x % SCD_WARP over the row's
// columns); `warps_per_block` is the launch's blockDim.x / SCD_WARP.
#define WARP_ROWS(r, rows, warps_per_block)                                                 \
    for (long long r = (long long)blockIdx.x * (warps_per_block) + threadIdx.x / SCD_WARP;  \
         r < (rows); r += (long long)gridDim.x * (warps_per_block))

// ---------------------------------------------------------------- reductions

__device__ __forceinline__ float warp_sum(float v) {
    for (int off = SCD_WARP / 2; off > 0; off >>= 1) v += __shfl_xor_sync(SCD_FULL_MASK, v, off);
    return v;
}

__device__ __forceinline__ double warp_sum_f64(double v) {
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

// Sum over a 1-D block of `n_warps` warps in f64, for thread 0 (the other threads get an
// unspecified value). `scratch` is __shared__ double[n_warps]. Fixed order, so deterministic.
__device__ __forceinline__ double block_sum_f64_thread0(double v, double* scratch, int n_warps) {
    v = warp_sum_f64(v);
    const int lane = threadIdx.x % SCD_WARP, warp = threadIdx.x / SCD_WARP;
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    double t = 0.0;
    if (threadIdx.x == 0)
        for (int w = 0; w < n_warps; w++) t += scratch[w];
    return t;
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

// ---------------------------------------------------------------- counter-based RNG
// Element i of a draw depends only on (seed, i): a backward pass can recompute a dropout mask
// instead of storing it, and the CPU draws the same bits (src/backend/cpu/random.rs: splitmix64
// of seed ^ i * golden, top 24 bits to (0, 1]).

// Mirrors cpu::random::mix.
__device__ __forceinline__ u64 rng_mix(u64 seed, u64 i) {
    u64 z = seed ^ (i * 0x9E3779B97F4A7C15ull);
    z += 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

// Uniform in (0, 1] from the top 24 bits (exact in f32). Mirrors cpu::random::unit.
__device__ __forceinline__ float rng_unit(u32 bits) {
    return __fmul_rn((float)(bits >> 8) + 1.0f, 1.0f / 16777216.0f);
}

// ---------------------------------------------------------------- f64 lgamma / digamma
// Port of ops::losses::special::{lgamma, lgamma_digamma} (f64): shift up to z >= 10 with the
// recurrence, then the Stirling / de Moivre series. Same constants, same order of operations.
// Negative, NaN or -inf arguments return NaN at once (no endless shift loop).

#define SCD_HALF_LN_2PI 0.9189385332046728
#define SCD_ASYMPTOTIC_FROM 10.0

__device__ __forceinline__ double stirling_tail_d(double z) {
    const double w = 1.0 / z;
    const double w2 = w * w;
    return w * (1.0 / 12.0 +
                w2 * (-1.0 / 360.0 +
                      w2 * (1.0 / 1260.0 +
                            w2 * (-1.0 / 1680.0 +
                                  w2 * (1.0 / 1188.0 +
                                        w2 * (-691.0 / 360360.0 + w2 * (1.0 / 156.0)))))));
}

__device__ __forceinline__ double digamma_tail_d(double z) {
    const double w2 = 1.0 / (z * z);
    return w2 * (-1.0 / 12.0 +
                 w2 * (1.0 / 120.0 +
                       w2 * (-1.0 / 252.0 +
                             w2 * (1.0 / 240.0 +
                                   w2 * (-1.0 / 132.0 +
                                         w2 * (691.0 / 32760.0 + w2 * (-1.0 / 12.0)))))));
}

// ln Gamma(z) for z > 0; +inf at 0, NaN below or for NaN (as the CPU).
__device__ __forceinline__ double scd_lgamma_d(double z) {
    if (z != z || z <= 0.0) return z == 0.0 ? __longlong_as_double(0x7ff0000000000000ll) : __longlong_as_double(0x7ff8000000000000ll);
    double prod = 1.0, w = z;
    while (w < SCD_ASYMPTOTIC_FROM) {
        prod *= w;
        w += 1.0;
    }
    double lg = (w - 0.5) * log(w) - w + SCD_HALF_LN_2PI + stirling_tail_d(w);
    if (w != z) lg -= log(prod);
    return lg;
}

// psi(z) for z > 0; -inf at 0, NaN below or for NaN (as the CPU).
__device__ __forceinline__ double scd_digamma_d(double z) {
    if (z != z || z <= 0.0) return z == 0.0 ? __longlong_as_double(0xfff0000000000000ll) : __longlong_as_double(0x7ff8000000000000ll);
    double prod = 1.0, num = 0.0, w = z;
    while (w < SCD_ASYMPTOTIC_FROM) {
        num = num * w + prod;
        prod *= w;
        w += 1.0;
    }
    double dg = log(w) - 0.5 / w + digamma_tail_d(w);
    if (w != z) dg -= num / prod;
    return dg;
}

// (lgamma(t + x) - lgamma(t), digamma(t + x) - digamma(t)) for x >= 0 without cancellation at
// large t. Port of ops::losses::special::GammaShift (per-gene constants computed once).
struct ScdGammaShift {
    double t;
    bool large;
    double a;  // large: ln t; else lgamma(t)
    double b;  // large: stirling_tail(t); else digamma(t)
    double c;  // large: digamma_tail(t)
};

__device__ __forceinline__ ScdGammaShift scd_gamma_shift(double t) {
    ScdGammaShift g;
    g.t = t;
    g.large = t >= SCD_ASYMPTOTIC_FROM;
    if (g.large) {
        g.a = log(t);
        g.b = stirling_tail_d(t);
        g.c = digamma_tail_d(t);
    } else {
        g.a = scd_lgamma_d(t);
        g.b = scd_digamma_d(t);
        g.c = 0.0;
    }
    return g;
}

__device__ __forceinline__ void scd_lgamma_digamma_diff(const ScdGammaShift& g, double x,
                                                        double* lg, double* dg) {
    if (g.large) {
        const double tx = g.t + x;
        const double l1 = log1p(x / g.t);
        *lg = (tx - 0.5) * l1 + x * g.a - x + (stirling_tail_d(tx) - g.b);
        *dg = l1 + x / (2.0 * g.t * tx) + (digamma_tail_d(tx) - g.c);
    } else {
        *lg = scd_lgamma_d(g.t + x) - g.a;
        *dg = scd_digamma_d(g.t + x) - g.b;
    }
}

// ln(1+u) - u/(1+u) >= 0 given both terms; the Taylor series where they cancel (|u| < 1e-3).
// Mirrors ops::losses::nb::log1p_minus_ratio.
__device__ __forceinline__ double scd_log1p_minus_ratio(double u, double ln1p_u, double ratio) {
    if (fabs(u) < 1e-3) {
        const double u2 = u * u;
        return u2 * (0.5 + u * (-2.0 / 3.0 + u * (0.75 + u * (-0.8 + u * (5.0 / 6.0)))));
    }
    return ln1p_u - ratio;
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
