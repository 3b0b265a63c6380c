// The CUDA driver API entry points that cudarc calls for scdreamer, on the emulated device: one
// device of compute capability 9.0, one context, streams and events that execute in call order
// (every call completes before it returns, which is one valid schedule of a single stream).
// Copies check both ends against the device allocations; every call is counted (stats.cpp).
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "internal.h"

typedef int CUresult;
typedef int CUdevice;
typedef unsigned long long CUdeviceptr;
typedef void* CUcontext;
typedef void* CUstream;
typedef void* CUevent;
typedef void* CUmodule;
typedef void* CUfunction;

namespace emu {
namespace {

int the_context;  // the address is the one context handle
std::string last_message;
Result sticky_error = OK;
bool initialised = false;

constexpr size_t DEVICE_MEMORY = 16ull << 30;

}  // namespace

std::recursive_mutex& device_lock() {
    static std::recursive_mutex* m = new std::recursive_mutex();
    return *m;
}

void report(const std::string& message) {
    last_message = message;
    fprintf(stderr, "scdreamer CUDA emulator: %s\n", message.c_str());
}

std::string last_error() { return last_message; }
void set_sticky(Result r) { sticky_error = r; }
Result sticky() { return sticky_error; }

}  // namespace emu

using emu::Counter;
using Lock = std::lock_guard<std::recursive_mutex>;

#define GUARD()                            \
    Lock lock_(emu::device_lock());        \
    if (!emu::initialised) return emu::NOT_INITIALIZED

#define GUARD_STICKY()                                  \
    GUARD();                                            \
    if (emu::sticky() != emu::OK) return emu::sticky()

// A driver call the emulated device answers with `guard`'s checks alone (one context, one
// stream, events that are always complete, no cache to configure).
#define SCD_EMU_CHECKS_ONLY(guard, name, ...) \
    SCD_EXPORT CUresult name(__VA_ARGS__) {   \
        guard();                              \
        return emu::OK;                       \
    }

namespace {

CUresult check_range(CUdeviceptr p, size_t bytes, const char* call) {
    if (!emu::find((uintptr_t)p, bytes)) {
        char b[200];
        snprintf(b, sizeof b, "%s: [0x%llx, +%zu bytes) is not inside one device allocation", call,
                 p, bytes);
        emu::report(b);
        return emu::INVALID_VALUE;
    }
    return emu::OK;
}

CUresult htod(CUdeviceptr dst, const void* src, size_t n) {
    GUARD_STICKY();
    if (CUresult r = check_range(dst, n, "cuMemcpyHtoD")) return r;
    std::memcpy((void*)dst, src, n);
    emu::count(Counter::H2D, n);
    return emu::OK;
}

CUresult dtoh(void* dst, CUdeviceptr src, size_t n) {
    GUARD_STICKY();
    if (CUresult r = check_range(src, n, "cuMemcpyDtoH")) return r;
    std::memcpy(dst, (const void*)src, n);
    emu::count(Counter::D2H, n);
    return emu::OK;
}

CUresult dtod(CUdeviceptr dst, CUdeviceptr src, size_t n) {
    GUARD_STICKY();
    if (CUresult r = check_range(src, n, "cuMemcpyDtoD source")) return r;
    if (CUresult r = check_range(dst, n, "cuMemcpyDtoD destination")) return r;
    std::memmove((void*)dst, (const void*)src, n);
    emu::count(Counter::D2D, n);
    return emu::OK;
}

CUresult memset8(CUdeviceptr dst, unsigned char v, size_t n) {
    GUARD_STICKY();
    if (CUresult r = check_range(dst, n, "cuMemsetD8")) return r;
    std::memset((void*)dst, v, n);
    emu::count(Counter::Memset);
    return emu::OK;
}

CUresult memset32(CUdeviceptr dst, unsigned v, size_t n) {
    GUARD_STICKY();
    if (CUresult r = check_range(dst, n * 4, "cuMemsetD32")) return r;
    unsigned* p = (unsigned*)dst;
    for (size_t i = 0; i < n; i++) p[i] = v;
    emu::count(Counter::Memset);
    return emu::OK;
}

CUresult alloc(CUdeviceptr* out, size_t bytes) {
    GUARD_STICKY();
    if (!out) return emu::INVALID_VALUE;
    if (emu::bytes_in_use() + bytes > emu::DEVICE_MEMORY) return emu::OUT_OF_MEMORY;
    uintptr_t p = 0;
    CUresult r = emu::allocate(bytes, &p);
    if (r == emu::OK) {
        *out = p;
        emu::count(Counter::Alloc);
    }
    return r;
}

CUresult free_ptr(CUdeviceptr p) {
    GUARD();
    if (p == 0) return emu::OK;
    CUresult r = emu::release((uintptr_t)p);
    if (r == emu::OK) emu::count(Counter::Free);
    return r;
}

CUresult sync_point() {
    GUARD_STICKY();
    emu::count(Counter::Sync);
    return emu::OK;
}

// Streams and events are handles only: work is done when its call returns.
int stream_token, event_token;

}  // namespace

SCD_EXPORT CUresult cuInit(unsigned int) {
    Lock lock_(emu::device_lock());
    if (!emu::initialised) {
        emu::initialised = true;
        const char* quiet = getenv("SCDREAMER_EMU_QUIET");
        if (!quiet || !*quiet)
            fprintf(stderr,
                    "scdreamer CUDA emulator: the emulated CUDA device is in use "
                    "(SCDREAMER_EMULATE_CUDA): kernels run on the CPU\n");
    }
    return emu::OK;
}

SCD_EXPORT CUresult cuDriverGetVersion(int* v) {
    *v = 13000;
    return emu::OK;
}

SCD_EXPORT CUresult cuDeviceGetCount(int* n) {
    GUARD();
    *n = 1;
    return emu::OK;
}

SCD_EXPORT CUresult cuDeviceGet(CUdevice* d, int ordinal) {
    GUARD();
    if (ordinal != 0) return emu::INVALID_DEVICE;
    *d = 0;
    return emu::OK;
}

SCD_EXPORT CUresult cuDeviceGetName(char* name, int len, CUdevice) {
    GUARD();
    snprintf(name, (size_t)len, "scdreamer emulated CUDA device (CPU)");
    return emu::OK;
}

SCD_EXPORT CUresult cuDeviceGetAttribute(int* v, int attribute, CUdevice dev) {
    GUARD();
    if (dev != 0) return emu::INVALID_DEVICE;
    switch (attribute) {
        case 1: *v = 1024; break;                   // max threads per block
        case 2: case 3: *v = 1024; break;           // max block dim x, y
        case 4: *v = 64; break;                     // max block dim z
        case 5: *v = 2147483647; break;             // max grid dim x
        case 6: case 7: *v = 65535; break;          // max grid dim y, z
        case 8: *v = 48 * 1024; break;              // shared memory per block
        case 10: *v = 32; break;                    // warp size
        case 16: *v = 4; break;                     // multiprocessors
        case 39: *v = 2048; break;                  // threads per multiprocessor
        case 41: *v = 1; break;                     // unified addressing
        case 75: *v = 9; break;                     // compute capability major
        case 76: *v = 0; break;                     // compute capability minor
        case 97: *v = 227 * 1024; break;            // shared memory per block, opt-in
        case 115: *v = 1; break;                    // memory pools (cuMemAllocAsync)
        default: *v = 0; break;
    }
    return emu::OK;
}

SCD_EXPORT CUresult cuDeviceTotalMem_v2(size_t* bytes, CUdevice) {
    GUARD();
    *bytes = emu::DEVICE_MEMORY;
    return emu::OK;
}

SCD_EXPORT CUresult cuDeviceGetUuid(char* uuid, CUdevice) {
    GUARD();
    std::memcpy(uuid, "scdreamer-emu-00", 16);
    return emu::OK;
}

SCD_EXPORT CUresult cuDeviceGetUuid_v2(char* uuid, CUdevice d) { return cuDeviceGetUuid(uuid, d); }

SCD_EXPORT CUresult cuDevicePrimaryCtxRetain(CUcontext* ctx, CUdevice) {
    GUARD();
    *ctx = &emu::the_context;
    return emu::OK;
}

SCD_EMU_CHECKS_ONLY(GUARD, cuDevicePrimaryCtxRelease_v2, CUdevice)

SCD_EMU_CHECKS_ONLY(GUARD, cuCtxSetCurrent, CUcontext)

SCD_EXPORT CUresult cuCtxGetCurrent(CUcontext* ctx) {
    GUARD();
    *ctx = &emu::the_context;
    return emu::OK;
}

SCD_EXPORT CUresult cuCtxGetDevice(CUdevice* d) {
    GUARD();
    *d = 0;
    return emu::OK;
}

SCD_EXPORT CUresult cuCtxSynchronize(void) { return sync_point(); }

SCD_EXPORT CUresult cuCtxGetStreamPriorityRange(int* least, int* greatest) {
    GUARD();
    if (least) *least = 0;
    if (greatest) *greatest = -5;
    return emu::OK;
}

SCD_EXPORT CUresult cuStreamCreate(CUstream* s, unsigned) {
    GUARD();
    *s = &stream_token;
    return emu::OK;
}

SCD_EXPORT CUresult cuStreamCreateWithPriority(CUstream* s, unsigned f, int) {
    return cuStreamCreate(s, f);
}

SCD_EMU_CHECKS_ONLY(GUARD, cuStreamDestroy_v2, CUstream)

SCD_EXPORT CUresult cuStreamSynchronize(CUstream) { return sync_point(); }

SCD_EMU_CHECKS_ONLY(GUARD_STICKY, cuStreamQuery, CUstream)

SCD_EMU_CHECKS_ONLY(GUARD_STICKY, cuStreamWaitEvent, CUstream, CUevent, unsigned)

SCD_EXPORT CUresult cuStreamIsCapturing(CUstream, int* status) {
    GUARD();
    *status = 0;
    return emu::OK;
}

SCD_EXPORT CUresult cuEventCreate(CUevent* e, unsigned) {
    GUARD();
    *e = &event_token;
    return emu::OK;
}

SCD_EMU_CHECKS_ONLY(GUARD_STICKY, cuEventRecord, CUevent, CUstream)

SCD_EMU_CHECKS_ONLY(GUARD_STICKY, cuEventQuery, CUevent)

SCD_EXPORT CUresult cuEventSynchronize(CUevent) { return sync_point(); }

SCD_EMU_CHECKS_ONLY(GUARD, cuEventDestroy_v2, CUevent)

SCD_EXPORT CUresult cuEventElapsedTime(float* ms, CUevent, CUevent) {
    GUARD();
    *ms = 0.0f;
    return emu::OK;
}

SCD_EXPORT CUresult cuEventElapsedTime_v2(float* ms, CUevent a, CUevent b) {
    return cuEventElapsedTime(ms, a, b);
}

SCD_EXPORT CUresult cuMemAlloc_v2(CUdeviceptr* p, size_t bytes) { return alloc(p, bytes); }
SCD_EXPORT CUresult cuMemAllocAsync(CUdeviceptr* p, size_t bytes, CUstream) {
    return alloc(p, bytes);
}
SCD_EXPORT CUresult cuMemFree_v2(CUdeviceptr p) { return free_ptr(p); }
SCD_EXPORT CUresult cuMemFreeAsync(CUdeviceptr p, CUstream) { return free_ptr(p); }

SCD_EXPORT CUresult cuMemGetInfo_v2(size_t* free_bytes, size_t* total) {
    GUARD();
    *total = emu::DEVICE_MEMORY;
    *free_bytes = emu::DEVICE_MEMORY - emu::bytes_in_use();
    return emu::OK;
}

SCD_EXPORT CUresult cuMemcpyHtoD_v2(CUdeviceptr d, const void* s, size_t n) {
    CUresult r = htod(d, s, n);
    return r == emu::OK ? sync_point() : r;
}
SCD_EXPORT CUresult cuMemcpyHtoDAsync_v2(CUdeviceptr d, const void* s, size_t n, CUstream) {
    return htod(d, s, n);
}
SCD_EXPORT CUresult cuMemcpyDtoH_v2(void* d, CUdeviceptr s, size_t n) {
    CUresult r = dtoh(d, s, n);
    return r == emu::OK ? sync_point() : r;
}
SCD_EXPORT CUresult cuMemcpyDtoHAsync_v2(void* d, CUdeviceptr s, size_t n, CUstream) {
    return dtoh(d, s, n);
}
SCD_EXPORT CUresult cuMemcpyDtoD_v2(CUdeviceptr d, CUdeviceptr s, size_t n) {
    return dtod(d, s, n);
}
SCD_EXPORT CUresult cuMemcpyDtoDAsync_v2(CUdeviceptr d, CUdeviceptr s, size_t n, CUstream) {
    return dtod(d, s, n);
}
SCD_EXPORT CUresult cuMemsetD8_v2(CUdeviceptr d, unsigned char v, size_t n) {
    return memset8(d, v, n);
}
SCD_EXPORT CUresult cuMemsetD8Async(CUdeviceptr d, unsigned char v, size_t n, CUstream) {
    return memset8(d, v, n);
}
SCD_EXPORT CUresult cuMemsetD32_v2(CUdeviceptr d, unsigned v, size_t n) {
    return memset32(d, v, n);
}
SCD_EXPORT CUresult cuMemsetD32Async(CUdeviceptr d, unsigned v, size_t n, CUstream) {
    return memset32(d, v, n);
}

SCD_EXPORT CUresult cuModuleLoadData(CUmodule* m, const void* image) {
    GUARD_STICKY();
    emu::Module* module = nullptr;
    CUresult r = emu::load_module(image, &module);
    if (r == emu::OK) *m = module;
    return r;
}

SCD_EXPORT CUresult cuModuleUnload(CUmodule m) {
    GUARD();
    emu::unload_module((emu::Module*)m);
    return emu::OK;
}

SCD_EXPORT CUresult cuModuleGetFunction(CUfunction* f, CUmodule m, const char* name) {
    GUARD_STICKY();
    emu::KernelInfo* k = nullptr;
    CUresult r = emu::module_function((emu::Module*)m, name, &k);
    if (r == emu::OK) *f = k;
    return r;
}

SCD_EXPORT CUresult cuFuncGetAttribute(int* v, int attribute, CUfunction f) {
    GUARD();
    auto* k = (emu::KernelInfo*)f;
    switch (attribute) {
        case 0: *v = (int)k->max_threads; break;
        case 1: *v = (int)k->static_shared; break;
        case 8: *v = k->max_dynamic_shared; break;
        default: *v = 0;
    }
    return emu::OK;
}

SCD_EXPORT CUresult cuFuncSetAttribute(CUfunction f, int attribute, int value) {
    GUARD();
    auto* k = (emu::KernelInfo*)f;
    if (attribute == 8) {
        if (value < 0 || value + k->static_shared > 227 * 1024) return emu::INVALID_VALUE;
        k->max_dynamic_shared = value;
    }
    return emu::OK;
}

SCD_EMU_CHECKS_ONLY(GUARD, cuFuncSetCacheConfig, CUfunction, int)

SCD_EXPORT CUresult cuLaunchKernel(CUfunction f, unsigned gx, unsigned gy, unsigned gz,
                                   unsigned bx, unsigned by, unsigned bz, unsigned shared,
                                   CUstream, void** params, void** extra) {
    GUARD_STICKY();
    if (!f) return emu::INVALID_HANDLE;
    if (extra) {
        emu::report("cuLaunchKernel: the `extra` argument form is not emulated");
        return emu::NOT_SUPPORTED;
    }
    emu::LaunchConfig cfg{{gx, gy, gz}, {bx, by, bz}, shared};
    return emu::launch((emu::KernelInfo*)f, cfg, params);
}

SCD_EXPORT CUresult cuGetErrorName(CUresult r, const char** s) {
    switch (r) {
        case emu::OK: *s = "CUDA_SUCCESS"; break;
        case emu::INVALID_VALUE: *s = "CUDA_ERROR_INVALID_VALUE"; break;
        case emu::OUT_OF_MEMORY: *s = "CUDA_ERROR_OUT_OF_MEMORY"; break;
        case emu::NOT_INITIALIZED: *s = "CUDA_ERROR_NOT_INITIALIZED"; break;
        case emu::INVALID_DEVICE: *s = "CUDA_ERROR_INVALID_DEVICE"; break;
        case emu::INVALID_IMAGE: *s = "CUDA_ERROR_INVALID_IMAGE"; break;
        case emu::NO_BINARY_FOR_GPU: *s = "CUDA_ERROR_NO_BINARY_FOR_GPU"; break;
        case emu::INVALID_HANDLE: *s = "CUDA_ERROR_INVALID_HANDLE"; break;
        case emu::NOT_FOUND: *s = "CUDA_ERROR_NOT_FOUND"; break;
        case emu::ILLEGAL_ADDRESS: *s = "CUDA_ERROR_ILLEGAL_ADDRESS"; break;
        case emu::LAUNCH_OUT_OF_RESOURCES: *s = "CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES"; break;
        case emu::LAUNCH_FAILED: *s = "CUDA_ERROR_LAUNCH_FAILED"; break;
        case emu::NOT_SUPPORTED: *s = "CUDA_ERROR_NOT_SUPPORTED"; break;
        default: *s = "CUDA_ERROR_UNKNOWN"; return emu::INVALID_VALUE;
    }
    return emu::OK;
}

SCD_EXPORT CUresult cuGetErrorString(CUresult r, const char** s) {
    static thread_local std::string text;
    const char* name = nullptr;
    cuGetErrorName(r, &name);
    Lock lock_(emu::device_lock());
    text = std::string(name) + (emu::last_error().empty() ? "" : ": " + emu::last_error());
    *s = text.c_str();
    return emu::OK;
}

// Emulator controls (absent from a real libcuda: the host looks them up optionally).
SCD_EXPORT void scdEmuSetOrder(int order) {
    Lock lock_(emu::device_lock());
    emu::set_order(order);
}

SCD_EXPORT const char* scdEmuLastError(void) {
    static thread_local std::string copy;
    Lock lock_(emu::device_lock());
    copy = emu::last_error();
    return copy.c_str();
}

SCD_EXPORT void scdEmuResetError(void) {
    Lock lock_(emu::device_lock());
    emu::set_sticky(emu::OK);
}
