// Counter-based random numbers of the CUDA Backend: element i of a draw depends only on
// (seed, i). This is the CPU's generator bit for bit (src/backend/cpu/random.rs: splitmix64 of
// seed ^ i * golden, top 24 bits to (0, 1]): the dropout masks are identical on both devices;
// normal draws agree to a few ulps (logf/cosf vs Rust's ln/cos on the same f32 inputs).
#include "common.cuh"

#define RNG_BLOCK 256

// mask[i] = inv_keep where unit <= keep, else 0 (inv_keep = 1 / keep computed on the host in
// f32, as the CPU). Mirrors cpu::random::dropout_mask.
extern "C" __global__ void __launch_bounds__(RNG_BLOCK)
dropout_mask(u64 seed, float keep, float inv_keep, float* __restrict__ mask, long long n) {
    GRID_STRIDE(i, n) mask[i] = rng_unit((u32)rng_mix(seed, (u64)i)) <= keep ? inv_keep : 0.0f;
}

// out[i] ~ N(0, 1) by Box-Muller on the two halves of one hash. Mirrors cpu::random::normal.
extern "C" __global__ void __launch_bounds__(RNG_BLOCK)
normal_fill(u64 seed, float* __restrict__ out, long long n) {
    const float tau = 6.28318530717958647692f;
    GRID_STRIDE(i, n) {
        const u64 r = rng_mix(seed, (u64)i);
        const float u1 = rng_unit((u32)r);
        const float u2 = rng_unit((u32)(r >> 32));
        out[i] = __fmul_rn(sqrtf(__fmul_rn(-2.0f, logf(u1))), cosf(__fmul_rn(tau, u2)));
    }
}
