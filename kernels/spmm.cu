// The encoder's first layer on sparse counts: Y = T(X[rows]) W and dW = T(X[rows])^T dY,
// with the input transform T applied on the fly (the transformed matrix is never stored).
//
// The dataset lives on the GPU twice, uploaded once: CSR (for Y, a row per minibatch cell) and
// CSC (for dW, a column per gene). A minibatch is a list of dataset rows, `batch_rows[b]`.
// dW needs, per gene g, the minibatch cells with a non-zero in g: one block per gene
// binary-searches each minibatch cell in the gene's CSC column (sorted row indices), compacts
// the hits in shared memory in minibatch order, and writes dW[g, :] once. No atomics, no
// per-step transpose, deterministic; cost ~ genes x batch x log(nnz per gene) searches.
#include "common.cuh"

#define SPMM_BLOCK 128
#define SPMM_GRAD_BLOCK 128

// Input transforms shared with backend::InputTransform (keep in sync).
#define TRANSFORM_IDENTITY 0
#define TRANSFORM_LOG1P 1
#define TRANSFORM_LOG1P_SCALED 2      // log1p(x * row_scale[cell])
#define TRANSFORM_LOG2_LOG1P_SCALED 3 // log2(1 + log1p(x * row_scale[cell])), the authors' double log

// T(x) * value_scale; row_scale may be null for transforms that do not read it.
__device__ __forceinline__ float transform_value(int transform, float v, const float* row_scale,
                                                 unsigned int cell, float value_scale) {
    switch (transform) {
        case TRANSFORM_LOG1P: v = log1pf(v); break;
        case TRANSFORM_LOG1P_SCALED: v = log1pf(v * row_scale[cell]); break;
        case TRANSFORM_LOG2_LOG1P_SCALED: v = log2f(1.0f + log1pf(v * row_scale[cell])); break;
        default: break;
    }
    return v * value_scale;
}

// Y[b, h] (+)= sum_k T(X[cell_b, k]) * keep[k] * W[k, h] for b < n_batch, h < hidden.
// CPU reference: ops::sparse::csr_matmul_transformed.
// Grid (n_batch, ceil(hidden / SPMM_BLOCK)); a block stages SPMM_BLOCK non-zeros of its row in
// shared memory, then each thread walks them for its own output column (W reads coalesced).
// col_keep (per gene, 0 or 1) may be null: it zeroes the masked genes of the consistency term.
extern "C" __global__ void __launch_bounds__(SPMM_BLOCK)
csr_spmm_transform(const unsigned long long* __restrict__ indptr,
                   const unsigned int* __restrict__ indices, const float* __restrict__ data,
                   const float* __restrict__ row_scale, const unsigned int* __restrict__ batch_rows,
                   int n_batch, const float* __restrict__ col_keep, int transform,
                   float value_scale, const float* __restrict__ w, int hidden,
                   float* __restrict__ y, int accumulate) {
    __shared__ unsigned int s_col[SPMM_BLOCK];
    __shared__ float s_val[SPMM_BLOCK];
    const int h = blockIdx.y * SPMM_BLOCK + threadIdx.x;
    for (int b = blockIdx.x; b < n_batch; b += gridDim.x) {
        const unsigned int cell = batch_rows[b];
        const unsigned long long begin = indptr[cell];
        const unsigned long long end = indptr[cell + 1];
        float acc = 0.0f;
        for (unsigned long long chunk = begin; chunk < end; chunk += SPMM_BLOCK) {
            const unsigned long long k = chunk + threadIdx.x;
            __syncthreads();  // the previous chunk is fully consumed
            if (k < end) {
                const unsigned int g = indices[k];
                float v = transform_value(transform, data[k], row_scale, cell, value_scale);
                if (col_keep) v *= col_keep[g];
                s_col[threadIdx.x] = g;
                s_val[threadIdx.x] = v;
            }
            __syncthreads();
            const int n_chunk = (int)min((unsigned long long)SPMM_BLOCK, end - chunk);
            if (h < hidden) {
                for (int j = 0; j < n_chunk; j++) acc += s_val[j] * w[(size_t)s_col[j] * hidden + h];
            }
        }
        if (h < hidden) {
            const size_t o = (size_t)b * hidden + h;
            y[o] = accumulate ? y[o] + acc : acc;
        }
    }
}

// dW[g, h] (+)= sum_b T(X[cell_b, g]) * keep[g] * dY[b, h] for every gene g < n_genes.
// CPU reference: ops::sparse::csr_matmul_transformed_weight_grad.
// One block per gene (grid-stride), dynamic shared memory 2 * n_batch * 4 bytes.
extern "C" __global__ void __launch_bounds__(SPMM_GRAD_BLOCK)
csc_spmm_transform_weight_grad(const unsigned long long* __restrict__ colptr,
                               const unsigned int* __restrict__ row_idx,
                               const float* __restrict__ data, const float* __restrict__ row_scale,
                               const unsigned int* __restrict__ batch_rows, int n_batch,
                               const float* __restrict__ col_keep, int transform,
                               float value_scale, const float* __restrict__ dy, int hidden,
                               int n_genes, float* __restrict__ dw, int accumulate) {
    extern __shared__ unsigned char smem[];
    float* hit_val = (float*)smem;
    int* hit_b = (int*)(hit_val + n_batch);
    __shared__ int warp_counts[SPMM_GRAD_BLOCK / SCD_WARP];
    __shared__ int n_hits;
    const int lane = threadIdx.x % SCD_WARP;
    const int warp = threadIdx.x / SCD_WARP;

    for (int g = blockIdx.x; g < n_genes; g += gridDim.x) {
        const unsigned long long begin = colptr[g];
        const unsigned long long end = colptr[g + 1];
        const float keep = col_keep ? col_keep[g] : 1.0f;
        __syncthreads();  // hit arrays of the previous gene are fully read
        if (threadIdx.x == 0) n_hits = 0;
        __syncthreads();
        if (keep != 0.0f && end > begin) {
            for (int start = 0; start < n_batch; start += SPMM_GRAD_BLOCK) {
                const int b = start + threadIdx.x;
                float v = 0.0f;
                if (b < n_batch) {
                    const unsigned int cell = batch_rows[b];
                    // lower_bound of cell in the sorted row indices of column g
                    unsigned long long lo = begin, hi = end;
                    while (lo < hi) {
                        const unsigned long long mid = lo + (hi - lo) / 2;
                        if (row_idx[mid] < cell) lo = mid + 1; else hi = mid;
                    }
                    if (lo < end && row_idx[lo] == cell)
                        v = transform_value(transform, data[lo], row_scale, cell, value_scale) * keep;
                }
                // Compact the non-zero hits in minibatch order (ballot + per-warp prefix).
                const bool hit = v != 0.0f;
                const unsigned int mask = __ballot_sync(SCD_FULL_MASK, hit);
                if (lane == 0) warp_counts[warp] = __popc(mask);
                __syncthreads();
                int offset = n_hits;
                for (int w = 0; w < warp; w++) offset += warp_counts[w];
                offset += __popc(mask & ((1u << lane) - 1u));
                if (hit) {
                    hit_val[offset] = v;
                    hit_b[offset] = b;
                }
                __syncthreads();
                if (threadIdx.x == 0) {
                    int total = 0;
                    for (int w = 0; w < SPMM_GRAD_BLOCK / SCD_WARP; w++) total += warp_counts[w];
                    n_hits += total;
                }
                __syncthreads();
            }
        }
        const int hits = n_hits;
        for (int h = threadIdx.x; h < hidden; h += SPMM_GRAD_BLOCK) {
            float acc = 0.0f;
            for (int j = 0; j < hits; j++) acc += hit_val[j] * dy[(size_t)hit_b[j] * hidden + h];
            const size_t o = (size_t)g * hidden + h;
            dw[o] = accumulate ? dw[o] + acc : acc;
        }
    }
}

// Its weight gradient: dW[s, c] (+)= sum_{b : index[b] == s} dY[b, c], for s < n_classes.
// One thread per (s, c) walking the minibatch in order: deterministic, no atomics; the
// minibatch is small (hundreds) so the redundant index reads cost nothing.
// CPU reference: ops::scatter_rows_add.
extern "C" __global__ void __launch_bounds__(SPMM_BLOCK)
scatter_rows_grad(const float* __restrict__ dy, const unsigned int* __restrict__ index, int n,
                  int cols, int n_classes, float* __restrict__ dw, int accumulate) {
    const long long total = (long long)n_classes * cols;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < total;
         i += (long long)gridDim.x * blockDim.x) {
        const unsigned int s = (unsigned int)(i / cols);
        const int c = (int)(i % cols);
        // Starting from dw itself adds the rows one by one in row order, exactly as the CPU's
        // scatter_add_rows (bit-identical sums).
        float acc = accumulate ? dw[i] : 0.0f;
        for (int b = 0; b < n; b++)
            if (index[b] == s) acc += dy[(size_t)b * cols + c];
        dw[i] = acc;
    }
}

// out[b, :] = T(X[cell_b, :]) densely ([n_batch, n_cols], overwritten): one block per minibatch
// row zeroes its output row, then scatters the row's stored values (column indices are unique
// within a row, so no two threads write the same element). CPU reference:
// cpu::csr::csr_gather_dense.
extern "C" __global__ void __launch_bounds__(SPMM_BLOCK)
csr_gather_dense(const unsigned long long* __restrict__ indptr,
                 const unsigned int* __restrict__ indices, const float* __restrict__ data,
                 const float* __restrict__ row_scale, const unsigned int* __restrict__ batch_rows,
                 int n_batch, int transform, int n_cols, float* __restrict__ out) {
    for (int b = blockIdx.x; b < n_batch; b += gridDim.x) {
        float* o = out + (size_t)b * n_cols;
        for (int j = threadIdx.x; j < n_cols; j += blockDim.x) o[j] = 0.0f;
        __syncthreads();  // zeros land before the scatter
        const unsigned int cell = batch_rows[b];
        const unsigned long long end = indptr[cell + 1];
        for (unsigned long long k = indptr[cell] + threadIdx.x; k < end; k += blockDim.x)
            o[indices[k]] = transform_value(transform, data[k], row_scale, cell, 1.0f);
        __syncthreads();  // the next row's zeroing is not ordered against this scatter otherwise
    }
}
