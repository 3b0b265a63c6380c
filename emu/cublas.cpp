// cuBLAS on the emulated device: the calls scdreamer makes, with cuBLAS's documented
// column-major semantics exactly (op(A) is m x k, op(B) k x n, C m x n, element (i, j) of a
// matrix at ptr[i + j * ld]; lda >= rows of A as stored, ...; beta == 0 means C is not read).
// Every matrix's full extent must lie inside one device allocation, so a row/column-major slip
// or a wrong leading dimension in the host code is an error or a wrong result, never silently
// right. FP32 throughout: cublasSetMathMode(TF32) is accepted and computes in FP32.
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "internal.h"

namespace {

enum Status : int {
    SUCCESS = 0,
    NOT_INITIALIZED = 1,
    INVALID_VALUE = 7,
    EXECUTION_FAILED = 13,
};

struct Handle {
    void* stream = nullptr;
    int math_mode = 0;
};

const char* op_name(int op) { return op == 0 ? "N" : op == 1 ? "T" : "C"; }

// The matrix of `rows` x `cols` (as stored) at `p` with leading dimension `ld` lies inside one
// allocation.
bool inside(const float* p, long rows, long cols, long ld) {
    if (rows == 0 || cols == 0) return true;
    const size_t elements = (size_t)(cols - 1) * (size_t)ld + (size_t)rows;
    return emu::find((uintptr_t)p, elements * sizeof(float)) != nullptr;
}

int fail(const std::string& message, int status) {
    emu::report("cuBLAS: " + message);
    return status;
}

}  // namespace

SCD_EXPORT int cublasCreate_v2(Handle** h) {
    *h = new Handle();
    return SUCCESS;
}

SCD_EXPORT int cublasDestroy_v2(Handle* h) {
    delete h;
    return SUCCESS;
}

SCD_EXPORT int cublasSetStream_v2(Handle* h, void* stream) {
    h->stream = stream;
    return SUCCESS;
}

SCD_EXPORT int cublasGetStream_v2(Handle* h, void** stream) {
    *stream = h->stream;
    return SUCCESS;
}

SCD_EXPORT int cublasSetMathMode(Handle* h, int mode) {
    h->math_mode = mode;
    return SUCCESS;
}

SCD_EXPORT int cublasGetMathMode(Handle* h, int* mode) {
    *mode = h->math_mode;
    return SUCCESS;
}

SCD_EXPORT int cublasSgemm_v2(Handle* h, int transa, int transb, int m, int n, int k,
                              const float* alpha, const float* A, int lda, const float* B, int ldb,
                              const float* beta, float* C, int ldc) {
    std::lock_guard<std::recursive_mutex> lock(emu::device_lock());
    if (!h) return NOT_INITIALIZED;
    if (emu::sticky() != emu::OK) return EXECUTION_FAILED;
    char b[300];
    const bool ta = transa != 0, tb = transb != 0;
    const long a_rows = ta ? k : m, a_cols = ta ? m : k;
    const long b_rows = tb ? n : k, b_cols = tb ? k : n;
    if (m < 0 || n < 0 || k < 0 || transa < 0 || transa > 2 || transb < 0 || transb > 2 ||
        lda < (a_rows > 1 ? a_rows : 1) || ldb < (b_rows > 1 ? b_rows : 1) ||
        ldc < (m > 1 ? m : 1)) {
        snprintf(b, sizeof b,
                 "cublasSgemm(%s, %s, m=%d, n=%d, k=%d, lda=%d, ldb=%d, ldc=%d): invalid "
                 "dimensions (column-major: lda >= %ld, ldb >= %ld, ldc >= %d)",
                 op_name(transa), op_name(transb), m, n, k, lda, ldb, ldc, a_rows, b_rows, m);
        return fail(b, INVALID_VALUE);
    }
    if (m == 0 || n == 0) return SUCCESS;
    if (!inside(A, a_rows, a_cols, lda) || !inside(B, b_rows, b_cols, ldb) ||
        !inside(C, m, n, ldc)) {
        snprintf(b, sizeof b,
                 "cublasSgemm(%s, %s, m=%d, n=%d, k=%d, lda=%d, ldb=%d, ldc=%d): a matrix "
                 "extends past its device allocation (A %s, B %s, C %s)",
                 op_name(transa), op_name(transb), m, n, k, lda, ldb, ldc,
                 inside(A, a_rows, a_cols, lda) ? "ok" : "OUT OF BOUNDS",
                 inside(B, b_rows, b_cols, ldb) ? "ok" : "OUT OF BOUNDS",
                 inside(C, m, n, ldc) ? "ok" : "OUT OF BOUNDS");
        return fail(b, INVALID_VALUE);
    }
    {
        // A read, B read, C written (and read when beta != 0); 2mnk FLOPs.
        const unsigned long long mm = m, nn = n, kk = k;
        const unsigned long long bytes =
            4ull * (mm * kk + kk * nn + mm * nn * (*beta != 0.0f ? 2ull : 1ull));
        emu::count_launch("cublasSgemm_v2", bytes, 2ull * mm * nn * kk);
    }
    const float al = *alpha, be = *beta;
    std::vector<float> acc((size_t)m);
    for (long j = 0; j < n; j++) {
        std::fill(acc.begin(), acc.end(), 0.0f);
        if (al != 0.0f) {
            for (long p = 0; p < k; p++) {
                const float bpj = tb ? B[j + p * (long)ldb] : B[p + j * (long)ldb];
                if (ta) {
                    for (long i = 0; i < m; i++) acc[i] += A[p + i * (long)lda] * bpj;
                } else {
                    const float* col = A + p * (long)lda;
                    for (long i = 0; i < m; i++) acc[i] += col[i] * bpj;
                }
            }
        }
        float* c = C + j * (long)ldc;
        for (long i = 0; i < m; i++) c[i] = be == 0.0f ? al * acc[i] : al * acc[i] + be * c[i];
    }
    return SUCCESS;
}
