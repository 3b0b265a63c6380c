// The CUDA built-ins that kernels/*.cu use, for compiling those same sources as C++ on the CPU
// (the emulated CUDA device, see emu/README.md). Every CUDA thread of a block runs as a fiber of
// the emulator's scheduler (emu/launch.cpp), so __syncthreads and the warp intrinsics below are
// real rendezvous points: a thread waits there until its block (or warp) arrives.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#include "emu_abi.h"

// ---------------------------------------------------------------- qualifiers

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __noinline__
#define __restrict__ __restrict
#define __launch_bounds__(...)
// Static shared memory is one static object per kernel in a section of its own: blocks run one
// at a time, and the launcher fills the whole section with 0xFF before every block, so a read of
// shared memory that no thread of this block wrote (a missing __syncthreads) reads NaN / -1.
#define __shared__ __attribute__((section("scd_emu_shared"))) static

// ---------------------------------------------------------------- indices

struct scd_uint3 {
    unsigned int x, y, z;
};
typedef scd_uint3 uint3;
typedef scd_uint3 dim3;

#define threadIdx (scd_emu_current->thread_idx)
#define blockIdx (scd_emu_launch.block_idx)
#define blockDim (scd_emu_launch.block_dim)
#define gridDim (scd_emu_launch.grid_dim)
#define warpSize 32

// ---------------------------------------------------------------- synchronisation

inline void __syncthreads() { scd_emu_syncthreads(); }

template <typename T>
inline T scd_emu_shuffle(unsigned mask, T v, int kind, int arg) {
    static_assert(sizeof(T) <= 8, "warp shuffles move at most 8 bytes");
    unsigned long long bits = 0;
    std::memcpy(&bits, &v, sizeof(T));
    bits = scd_emu_warp_shuffle(mask, bits, kind, arg);
    T out;
    std::memcpy(&out, &bits, sizeof(T));
    return out;
}

template <typename T>
inline T __shfl_xor_sync(unsigned mask, T v, int lane_mask, int = 32) {
    return scd_emu_shuffle(mask, v, SCD_EMU_SHFL_XOR, lane_mask);
}
template <typename T>
inline T __shfl_sync(unsigned mask, T v, int src_lane, int = 32) {
    return scd_emu_shuffle(mask, v, SCD_EMU_SHFL_IDX, src_lane);
}
template <typename T>
inline T __shfl_down_sync(unsigned mask, T v, unsigned delta, int = 32) {
    return scd_emu_shuffle(mask, v, SCD_EMU_SHFL_DOWN, (int)delta);
}
template <typename T>
inline T __shfl_up_sync(unsigned mask, T v, unsigned delta, int = 32) {
    return scd_emu_shuffle(mask, v, SCD_EMU_SHFL_UP, (int)delta);
}
inline unsigned __ballot_sync(unsigned mask, int pred) {
    return (unsigned)scd_emu_warp_shuffle(mask, pred != 0, SCD_EMU_BALLOT, 0);
}
inline int __all_sync(unsigned mask, int pred) {
    return __ballot_sync(mask, pred) == mask;
}
inline int __any_sync(unsigned mask, int pred) { return __ballot_sync(mask, pred) != 0; }
inline void __syncwarp(unsigned mask = 0xffffffffu) {
    scd_emu_warp_shuffle(mask, 0, SCD_EMU_BALLOT, 0);
}

// ---------------------------------------------------------------- integer intrinsics

inline int __popc(unsigned x) { return __builtin_popcount(x); }
inline int __popcll(unsigned long long x) { return __builtin_popcountll(x); }
inline int __ffs(int x) { return __builtin_ffs(x); }
inline int __clz(int x) { return x == 0 ? 32 : __builtin_clz((unsigned)x); }

// CUDA's integer and floating min/max overloads.
#define SCD_EMU_MINMAX(T)                                \
    inline T min(T a, T b) { return a < b ? a : b; }     \
    inline T max(T a, T b) { return a > b ? a : b; }
SCD_EMU_MINMAX(int)
SCD_EMU_MINMAX(unsigned)
SCD_EMU_MINMAX(long)
SCD_EMU_MINMAX(unsigned long)
SCD_EMU_MINMAX(long long)
SCD_EMU_MINMAX(unsigned long long)
SCD_EMU_MINMAX(float)
SCD_EMU_MINMAX(double)
#undef SCD_EMU_MINMAX

// ---------------------------------------------------------------- bit casts

// CUDA's bit casts: the bits of `From` reinterpreted as `To` (same size).
#define SCD_EMU_BIT_CAST(name, From, To)                 \
    inline To name(From x) {                             \
        static_assert(sizeof(From) == sizeof(To), #name); \
        To y;                                            \
        std::memcpy(&y, &x, sizeof(To));                 \
        return y;                                        \
    }
SCD_EMU_BIT_CAST(__int_as_float, int, float)
SCD_EMU_BIT_CAST(__float_as_int, float, int)
SCD_EMU_BIT_CAST(__float_as_uint, float, unsigned)
SCD_EMU_BIT_CAST(__uint_as_float, unsigned, float)
SCD_EMU_BIT_CAST(__longlong_as_double, long long, double)
SCD_EMU_BIT_CAST(__double_as_longlong, double, long long)
#undef SCD_EMU_BIT_CAST

// ---------------------------------------------------------------- IEEE-rounded arithmetic
// The kernels compile without -march (no FMA instructions), so these are single roundings.

inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fsub_rn(float a, float b) { return a - b; }
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fdiv_rn(float a, float b) { return a / b; }
inline float __frcp_rn(float a) { return 1.0f / a; }
inline float __fsqrt_rn(float a) { return std::sqrt(a); }
inline double __dadd_rn(double a, double b) { return a + b; }
inline double __dmul_rn(double a, double b) { return a * b; }
inline float __expf(float x) { return std::exp(x); }
inline float __logf(float x) { return std::log(x); }
inline float __fdividef(float a, float b) { return a / b; }
inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }
inline double rsqrt(double x) { return 1.0 / std::sqrt(x); }

// expf, logf, log1pf, lgammaf, ... come from <cmath> (the C library's float functions).
using std::copysign;
using std::exp;
using std::fabs;
using std::fmax;
using std::fmin;
using std::log;
using std::log1p;
using std::sqrt;
