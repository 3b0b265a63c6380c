// The device-resident training step: minibatch gathers from per-cell tables uploaded once, and
// the training log's running sums (f64 accumulators read by the host once in a while).
//
// CPU reference: backend::cpu::step (the same f64 sums and the same argmax tie rule as the
// host code they replace). Single-block kernels reduce in a fixed order: deterministic.
#include "common.cuh"

#define STEP_BLOCK 256
#define STEP_UNLABELLED 0xffffffffu

// out[i] = table[idx[i]]; an index outside the table gives STEP_UNLABELLED (never a read out of
// bounds). Mirrors cpu::step::gather.
extern "C" __global__ void __launch_bounds__(STEP_BLOCK)
gather_u32(const u32* __restrict__ table, int n_table, const u32* __restrict__ idx,
           u32* __restrict__ out, int n) {
    GRID_STRIDE(i, n) {
        const u32 t = idx[i];
        out[i] = t < (u32)n_table ? table[t] : STEP_UNLABELLED;
    }
}

// out[i] = table[idx[i]]; NaN for an index outside the table. Mirrors cpu::step::gather.
extern "C" __global__ void __launch_bounds__(STEP_BLOCK)
gather_f32(const float* __restrict__ table, int n_table, const u32* __restrict__ idx,
           float* __restrict__ out, int n) {
    GRID_STRIDE(i, n) {
        const u32 t = idx[i];
        out[i] = t < (u32)n_table ? table[t] : __int_as_float(0x7fc00000);
    }
}

// labels[i] = the code (0 when unlabelled), mask[i] = the cell's label-loss weight (0 for an
// unlabelled cell; NaN for an index outside the tables, as gather_f32). Mirrors
// cpu::step::gather_labels.
extern "C" __global__ void __launch_bounds__(STEP_BLOCK)
gather_labels(const u32* __restrict__ codes, const float* __restrict__ weights, int n_table,
              const u32* __restrict__ idx, u32* __restrict__ labels, float* __restrict__ mask,
              int n) {
    GRID_STRIDE(i, n) {
        const u32 t = idx[i];
        const bool in = t < (u32)n_table;
        const u32 code = in ? codes[t] : STEP_UNLABELLED;
        labels[i] = code == STEP_UNLABELLED ? 0u : code;
        mask[i] = in ? weights[t] : __int_as_float(0x7fc00000);
    }
}

// acc[s_k] += (double)p_k[0] for k < count (one thread, in order). Unused pointers are null.
extern "C" __global__ void acc_values(double* __restrict__ acc, int count, int s0,
                                      const float* p0, int s1, const float* p1, int s2,
                                      const float* p2, int s3, const float* p3, int s4,
                                      const float* p4, int s5, const float* p5, int s6,
                                      const float* p6, int s7, const float* p7) {
    if (blockIdx.x != 0 || threadIdx.x != 0) return;
    const int slots[8] = {s0, s1, s2, s3, s4, s5, s6, s7};
    const float* ptrs[8] = {p0, p1, p2, p3, p4, p5, p6, p7};
    for (int k = 0; k < count && k < 8; k++) acc[slots[k]] += (double)ptrs[k][0];
}

// Block-wide integer sum (fixed order); every thread gets the result.
__device__ __forceinline__ long long block_count(long long v, long long* scratch) {
    for (int off = SCD_WARP / 2; off > 0; off >>= 1) v += __shfl_xor_sync(SCD_FULL_MASK, v, off);
    const int lane = threadIdx.x % SCD_WARP, warp = threadIdx.x / SCD_WARP;
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    long long t = 0;
    for (int k = 0; k < STEP_BLOCK / SCD_WARP; k++) t += scratch[k];
    __syncthreads();
    return t;
}

// acc[slot] += #(a[i] > b[i]) / n. One block. Mirrors cpu::step::greater_frac.
extern "C" __global__ void __launch_bounds__(STEP_BLOCK)
acc_greater_frac(double* __restrict__ acc, int slot, const float* __restrict__ a,
                 const float* __restrict__ b, int n) {
    __shared__ long long scratch[STEP_BLOCK / SCD_WARP];
    long long wins = 0;
    for (int i = threadIdx.x; i < n; i += STEP_BLOCK) wins += a[i] > b[i];
    wins = block_count(wins, scratch);
    if (threadIdx.x == 0) acc[slot] += (double)wins / (double)(n > 0 ? n : 1);
}

// f32::total_cmp's order as a signed integer key.
__device__ __forceinline__ int total_key(float x) {
    const int bits = __float_as_int(x);
    return bits ^ (int)(((unsigned int)(bits >> 31)) >> 1);
}

// acc[slot] += hits / counted over rows with mask != 0 (all rows when mask is null; nothing when
// none counts); a hit: the row's last maximum (total_cmp order) is at its label. One block.
// Mirrors cpu::step::argmax_hit_frac.
extern "C" __global__ void __launch_bounds__(STEP_BLOCK)
acc_argmax_hits(double* __restrict__ acc, int slot, const float* __restrict__ logits,
                const u32* __restrict__ labels, const float* __restrict__ mask, int rows,
                int cols) {
    __shared__ long long scratch[STEP_BLOCK / SCD_WARP];
    long long hits = 0, counted = 0;
    for (int r = threadIdx.x; r < rows; r += STEP_BLOCK) {
        if (mask && mask[r] == 0.0f) continue;
        counted++;
        const float* row = logits + (size_t)r * cols;
        int best = 0, best_key = cols > 0 ? total_key(row[0]) : 0;
        for (int j = 1; j < cols; j++) {
            const int k = total_key(row[j]);
            if (k >= best_key) {
                best_key = k;
                best = j;
            }
        }
        hits += (u32)best == labels[r];
    }
    hits = block_count(hits, scratch);
    counted = block_count(counted, scratch);
    if (threadIdx.x == 0 && counted > 0) acc[slot] += (double)hits / (double)counted;
}

// out[0] = clip / (norm + 1e-6) when norm = sqrt(acc[slot]) > clip, else 1. Mirrors
// cpu::step::clip_scale.
extern "C" __global__ void clip_scale(const double* __restrict__ acc, int slot, float clip,
                                      float* __restrict__ out) {
    if (blockIdx.x != 0 || threadIdx.x != 0) return;
    const double n = sqrt(acc[slot]);
    out[0] = n > (double)clip ? (float)((double)clip / (n + 1e-6)) : 1.0f;
}
