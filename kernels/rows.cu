// Row-structured kernels of the CUDA Backend: row gather, row broadcast products, column
// concatenation, and f64 reductions (row sums, full sums, sum of squares).
//
// CPU reference: src/backend/cpu/elementwise.rs and reduce.rs. *_bwd kernels ADD into their
// gradients. Reductions accumulate in f64 like the CPU (fixed order per launch: deterministic).
#include "common.cuh"

#define ROWS_BLOCK 256
#define ROWS_WARPS_PER_BLOCK (ROWS_BLOCK / SCD_WARP)
// Blocks of the first stage of sum_f64 (fixed: the order of the partials does not depend on n).
#define SUM_F64_BLOCKS 256

// out[i, :] = x[i, :] + table[idx[i], :]; an index >= n_table gives a NaN row (the CPU panics;
// a NaN reaches the trainer's non-finite guard instead of reading out of bounds).
// Mirrors cpu::elementwise::gather_add_rows.
extern "C" __global__ void __launch_bounds__(ROWS_BLOCK)
gather_add_rows(const float* __restrict__ x, const float* __restrict__ table,
                const unsigned int* __restrict__ idx, int n_table, int cols,
                float* __restrict__ out, long long n) {
    GRID_STRIDE(i, n) {
        const long long r = i / cols;
        const int c = (int)(i - r * cols);
        const unsigned int t = idx[r];
        out[i] = t < (unsigned int)n_table ? x[i] + table[(size_t)t * cols + c]
                                           : __int_as_float(0x7fc00000);
    }
}

// out[i, :] = x[i, :] * c[i]. Mirrors cpu::elementwise::mul_rows.
extern "C" __global__ void __launch_bounds__(ROWS_BLOCK)
mul_rows(const float* __restrict__ x, const float* __restrict__ c, int cols,
         float* __restrict__ out, long long n) {
    GRID_STRIDE(i, n) out[i] = x[i] * c[i / cols];
}

// dx[i, :] += dy[i, :] * c[i].
extern "C" __global__ void __launch_bounds__(ROWS_BLOCK)
mul_rows_bwd_x(const float* __restrict__ c, const float* __restrict__ dy, int cols,
               float* __restrict__ dx, long long n) {
    GRID_STRIDE(i, n) dx[i] = __fadd_rn(dx[i], __fmul_rn(dy[i], c[i / cols]));
}

// dc[r] += sum_j dy[r, j] * x[r, j]; one warp per row.
extern "C" __global__ void __launch_bounds__(ROWS_BLOCK)
mul_rows_bwd_c(const float* __restrict__ x, const float* __restrict__ dy, long long rows,
               int cols, float* __restrict__ dc) {
    const int lane = threadIdx.x % SCD_WARP;
    WARP_ROWS(r, rows, ROWS_WARPS_PER_BLOCK) {
        const size_t base = (size_t)r * cols;
        double s = 0.0;
        for (int j = lane; j < cols; j += SCD_WARP) s += (double)dy[base + j] * (double)x[base + j];
        s = warp_sum_f64(s);
        if (lane == 0) dc[r] = __fadd_rn(dc[r], (float)s);
    }
}

// out = [a | b] with a [n, ca], b [n, cb]. Mirrors cpu::elementwise::concat_cols.
extern "C" __global__ void __launch_bounds__(ROWS_BLOCK)
concat_cols(const float* __restrict__ a, int ca, const float* __restrict__ b, int cb,
            float* __restrict__ out, long long n) {
    const int w = ca + cb;
    GRID_STRIDE(i, n) {
        const long long r = i / w;
        const int j = (int)(i - r * w);
        out[i] = j < ca ? a[(size_t)r * ca + j] : b[(size_t)r * cb + (j - ca)];
    }
}

// d[i] += dy[(i / width) * w + offset + i % width]: the backward of one side of concat_cols
// (a: width ca, offset 0; b: width cb, offset ca). Mirrors cpu::elementwise::concat_cols_bwd.
extern "C" __global__ void __launch_bounds__(ROWS_BLOCK)
concat_cols_bwd_side(const float* __restrict__ dy, int w, int offset, int width,
                     float* __restrict__ d, long long n) {
    GRID_STRIDE(i, n) {
        const long long r = i / width;
        const int j = (int)(i - r * width);
        d[i] = __fadd_rn(d[i], dy[(size_t)r * w + offset + j]);
    }
}

// out[r] = sum_j x[r, j] in f64 (overwrites); one warp per row. Mirrors cpu::reduce::sum_rows.
extern "C" __global__ void __launch_bounds__(ROWS_BLOCK)
sum_rows_f64(const float* __restrict__ x, long long rows, int cols, float* __restrict__ out) {
    const int lane = threadIdx.x % SCD_WARP;
    WARP_ROWS(r, rows, ROWS_WARPS_PER_BLOCK) {
        const size_t base = (size_t)r * cols;
        double s = 0.0;
        for (int j = lane; j < cols; j += SCD_WARP) s += (double)x[base + j];
        s = warp_sum_f64(s);
        if (lane == 0) out[r] = (float)s;
    }
}

// First stage of a full f64 sum (of x, or of x^2 when `square`): partials[blockIdx.x].
// Launch with at most SUM_F64_BLOCKS blocks of ROWS_BLOCK threads, then sum_f64_finish over
// that many partials.
extern "C" __global__ void __launch_bounds__(ROWS_BLOCK)
sum_f64_partials(const float* __restrict__ x, long long n, int square,
                 double* __restrict__ partials) {
    __shared__ double scratch[ROWS_WARPS_PER_BLOCK];
    double s = 0.0;
    GRID_STRIDE(i, n) {
        const double v = (double)x[i];
        s += square ? v * v : v;
    }
    const double t = block_sum_f64_thread0(s, scratch, ROWS_WARPS_PER_BLOCK);
    if (threadIdx.x == 0) partials[blockIdx.x] = t;
}

// Second stage (one thread, fixed order): out_f32[0] = (float)total when out_f32 is given,
// out_f64[0] = total when out_f64 is given. Mirrors cpu::reduce::sum_all / sq_norm.
extern "C" __global__ void sum_f64_finish(const double* __restrict__ partials, int n_partials,
                                          float* __restrict__ out_f32,
                                          double* __restrict__ out_f64) {
    if (blockIdx.x != 0 || threadIdx.x != 0) return;
    double t = 0.0;
    for (int k = 0; k < n_partials; k++) t += partials[k];
    if (out_f32) out_f32[0] = (float)t;
    if (out_f64) out_f64[0] = t;
}
