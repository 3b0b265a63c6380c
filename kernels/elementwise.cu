// Elementwise kernels of the CUDA Backend (src/backend/cuda/backend.rs): fill, axpy, the unary
// and binary functions and their backward passes, reparameterisation (Adam: multi_tensor.cu).
//
// CPU reference: src/backend/cpu/elementwise.rs, random.rs (reparam), reduce.rs (sum_rows_bwd).
// Every *_bwd kernel ADDS into its gradient (the Backend's accumulation convention).
// Lengths are long long and loops grid-stride, so any grid size is correct.
#include "common.cuh"

#define EW_BLOCK 256

// ---------------------------------------------------------------- unary

// Codes shared with backend::cuda::backend::unary_code (keep in sync).
#define UN_RELU 0
#define UN_LEAKY_RELU 1
#define UN_SOFTPLUS 2
#define UN_SIGMOID 3
#define UN_EXP 4
#define UN_LOG 5
#define UN_SQRT 6
#define UN_SQUARE 7
#define UN_SCALE 8
#define UN_ADD_SCALAR 9
#define UN_CLAMP 10
#define UN_LGAMMA 11

// Mirrors cpu::elementwise::unary_f. p0/p1: the variant's parameters (slope, scale, lo/hi).
__device__ __forceinline__ float unary_f(int f, float x, float p0, float p1) {
    switch (f) {
        case UN_RELU: return fmaxf(x, 0.0f);  // fmaxf(NaN, 0) = 0, as Rust's f32::max
        case UN_LEAKY_RELU: return x > 0.0f ? x : p0 * x;
        case UN_SOFTPLUS: return softplus(x);
        case UN_SIGMOID: return sigmoid(x);
        case UN_EXP: return expf(x);
        case UN_LOG: return logf(x);
        case UN_SQRT: return sqrtf(x);
        case UN_SQUARE: return x * x;
        case UN_SCALE: return p0 * x;
        case UN_ADD_SCALAR: return x + p0;
        case UN_CLAMP: return x < p0 ? p0 : (x > p1 ? p1 : x);  // NaN stays NaN (Rust clamp)
        case UN_LGAMMA: return (float)scd_lgamma_d((double)x);
        default: return x;
    }
}

// dy/dx given x and y = f(x). Mirrors cpu::elementwise::unary_df.
__device__ __forceinline__ float unary_df(int f, float x, float y, float p0, float p1) {
    switch (f) {
        case UN_RELU: return x > 0.0f ? 1.0f : 0.0f;
        case UN_LEAKY_RELU: return x > 0.0f ? 1.0f : p0;
        case UN_SOFTPLUS: return sigmoid(x);
        case UN_SIGMOID: return y * (1.0f - y);
        case UN_EXP: return y;
        case UN_LOG: return 1.0f / x;
        case UN_SQRT: return 0.5f / y;
        case UN_SQUARE: return 2.0f * x;
        case UN_SCALE: return p0;
        case UN_ADD_SCALAR: return 1.0f;
        case UN_CLAMP: return (x >= p0 && x <= p1) ? 1.0f : 0.0f;
        case UN_LGAMMA: return (float)scd_digamma_d((double)x);
        default: return 1.0f;
    }
}

extern "C" __global__ void __launch_bounds__(EW_BLOCK)
unary_fwd(int f, float p0, float p1, const float* __restrict__ x, float* __restrict__ y,
          long long n) {
    GRID_STRIDE(i, n) y[i] = unary_f(f, x[i], p0, p1);
}

// dx += dy * f'(x). Written as a separate product then add (no FMA contraction), as the CPU.
extern "C" __global__ void __launch_bounds__(EW_BLOCK)
unary_bwd(int f, float p0, float p1, const float* __restrict__ x, const float* __restrict__ y,
          const float* __restrict__ dy, float* __restrict__ dx, long long n) {
    GRID_STRIDE(i, n) {
        const float g = __fmul_rn(dy[i], unary_df(f, x[i], y[i], p0, p1));
        dx[i] = __fadd_rn(dx[i], g);
    }
}

// ---------------------------------------------------------------- binary

#define BIN_ADD 0
#define BIN_SUB 1
#define BIN_MUL 2

extern "C" __global__ void __launch_bounds__(EW_BLOCK)
binary_fwd(int f, const float* __restrict__ a, const float* __restrict__ b,
           float* __restrict__ out, long long n) {
    GRID_STRIDE(i, n) {
        const float av = a[i], bv = b[i];
        out[i] = f == BIN_ADD ? av + bv : (f == BIN_SUB ? av - bv : av * bv);
    }
}

// One side of the backward: side 0 is da += dy * d(out)/da, side 1 is db += dy * d(out)/db.
// `other` is the operand the product needs (b for side 0, a for side 1); unused otherwise.
extern "C" __global__ void __launch_bounds__(EW_BLOCK)
binary_bwd_side(int f, int side, const float* __restrict__ other, const float* __restrict__ dy,
                float* __restrict__ d, long long n) {
    GRID_STRIDE(i, n) {
        float g;
        if (f == BIN_MUL) g = __fmul_rn(dy[i], other[i]);
        else if (f == BIN_SUB && side == 1) g = -dy[i];
        else g = dy[i];
        d[i] = __fadd_rn(d[i], g);
    }
}

// ---------------------------------------------------------------- basic

extern "C" __global__ void __launch_bounds__(EW_BLOCK)
fill_value(float* __restrict__ dst, float value, long long n) {
    GRID_STRIDE(i, n) dst[i] = value;
}

// dst *= s (gemm with k = 0 and beta != 0: C = beta C).
extern "C" __global__ void __launch_bounds__(EW_BLOCK)
scale_inplace(float* __restrict__ dst, float s, long long n) {
    GRID_STRIDE(i, n) dst[i] = dst[i] * s;
}

// y += alpha * x. Mirrors Cpu::axpy.
extern "C" __global__ void __launch_bounds__(EW_BLOCK)
axpy(float alpha, const float* __restrict__ x, float* __restrict__ y, long long n) {
    GRID_STRIDE(i, n) y[i] = __fadd_rn(y[i], __fmul_rn(alpha, x[i]));
}

// dst += scale * g[0] (g: a device scalar). Mirrors Cpu::broadcast_acc.
extern "C" __global__ void __launch_bounds__(EW_BLOCK)
broadcast_acc(const float* __restrict__ g, float scale, float* __restrict__ dst, long long n) {
    const float v = __fmul_rn(scale, g[0]);
    GRID_STRIDE(i, n) dst[i] = __fadd_rn(dst[i], v);
}

// dx[i] += dy[i / cols]. Mirrors cpu::reduce::sum_rows_bwd.
extern "C" __global__ void __launch_bounds__(EW_BLOCK)
sum_rows_bwd(const float* __restrict__ dy, int cols, float* __restrict__ dx, long long n) {
    GRID_STRIDE(i, n) dx[i] = __fadd_rn(dx[i], dy[i / cols]);
}

// ---------------------------------------------------------------- reparameterisation

// z = mean + sqrt(var) * eps. Mirrors cpu::random::reparam.
extern "C" __global__ void __launch_bounds__(EW_BLOCK)
reparam_fwd(const float* __restrict__ mean, const float* __restrict__ var,
            const float* __restrict__ eps, float* __restrict__ z, long long n) {
    GRID_STRIDE(i, n) z[i] = __fadd_rn(mean[i], __fmul_rn(sqrtf(var[i]), eps[i]));
}

// dvar += dz * eps * 0.5 / sqrt(var) (dmean += dz is axpy). Mirrors cpu::random::reparam_bwd.
extern "C" __global__ void __launch_bounds__(EW_BLOCK)
reparam_bwd_var(const float* __restrict__ var, const float* __restrict__ eps,
                const float* __restrict__ dz, float* __restrict__ dvar, long long n) {
    GRID_STRIDE(i, n) {
        const float g = __fdiv_rn(__fmul_rn(__fmul_rn(dz[i], eps[i]), 0.5f), sqrtf(var[i]));
        dvar[i] = __fadd_rn(dvar[i], g);
    }
}
