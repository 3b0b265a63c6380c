// Shared declarations of the emulated CUDA driver (not seen by kernels or by the host).
#pragma once

#include <cstddef>
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include "emu_abi.h"

#define SCD_EXPORT extern "C" __attribute__((visibility("default")))

namespace emu {

// CUresult values the emulator returns (cuda.h numbering).
enum Result : int {
    OK = 0,
    INVALID_VALUE = 1,
    OUT_OF_MEMORY = 2,
    NOT_INITIALIZED = 3,
    INVALID_DEVICE = 101,
    NO_BINARY_FOR_GPU = 209,
    INVALID_IMAGE = 200,
    INVALID_HANDLE = 400,
    NOT_FOUND = 500,
    ILLEGAL_ADDRESS = 700,
    LAUNCH_OUT_OF_RESOURCES = 701,
    LAUNCH_TIMEOUT = 702,
    LAUNCH_FAILED = 719,
    NOT_SUPPORTED = 801,
    UNKNOWN = 999,
};

// One big lock: the emulated device runs one call at a time (kernels, copies, GEMMs), so a
// launch sees a consistent memory and the counters need no atomics.
std::recursive_mutex& device_lock();

// Say what went wrong (stderr, one line prefixed with the emulator's name) and remember it.
void report(const std::string& message);
std::string last_error();
// A fault inside a kernel poisons the context (as on a GPU): every later call fails.
void set_sticky(Result r);
Result sticky();

// ------------------------------------------------------------------ memory (memory.cpp)

struct Allocation {
    uintptr_t begin;  // device pointer = host address of the data
    size_t size;      // bytes asked for
    uintptr_t region;  // mmap'd region: guard page, canary padding, data, guard page
    size_t region_size;
};

Result allocate(size_t bytes, uintptr_t* out);
Result release(uintptr_t ptr);
// The allocation holding [ptr, ptr + bytes), or null.
const Allocation* find(uintptr_t ptr, size_t bytes);
// The allocation whose guard pages or padding hold `addr` (for fault messages), or null.
const Allocation* near(uintptr_t addr, bool* below, bool* above);
// Check every allocation's canary padding; returns a message for the first one written.
std::string check_canaries();
// Same for one allocation: "" when its padding is intact.
std::string check_canaries_of(const Allocation& a);
size_t bytes_in_use();
size_t page_size();

// ------------------------------------------------------------------ modules (modules.cpp)

struct KernelInfo {
    std::string name;
    const scd_emu_kernel* cpu = nullptr;     // the CPU-compiled kernel
    std::vector<unsigned> ptx_param_sizes;   // from the loaded image
    unsigned max_threads = 1024;             // __launch_bounds__ (.maxntid)
    size_t static_shared = 0;                // bytes of static __shared__ in the image
    int max_dynamic_shared = 48 * 1024;      // cuFuncSetAttribute opt-in
    // The image has a barrier, warp operation or call: its threads need fibers. Without any,
    // a thread cannot wait for another, and the launcher runs threads one after the other.
    bool may_wait = false;
};

struct Module {
    std::vector<KernelInfo*> kernels;
};

Result load_module(const void* image, Module** out);
Result module_function(Module* m, const char* name, KernelInfo** out);
void unload_module(Module* m);
// The static shared memory section of the kernels library.
void shared_section(unsigned char** begin, unsigned char** end);

// ------------------------------------------------------------------ launches (launch.cpp)

struct LaunchConfig {
    scd_emu_dim3 grid, block;
    unsigned dynamic_shared;
};

Result launch(KernelInfo* k, const LaunchConfig& cfg, void** params);
// Block (and thread) order: 0 forward, 1 reversed; SCDREAMER_EMU_ORDER or scdEmuSetOrder.
void set_order(int order);

// ------------------------------------------------------------------ counters (stats.cpp)

enum class Counter { H2D, D2H, D2D, Sync, Alloc, Free, Memset };
void count(Counter c, size_t bytes = 0);
// `bytes`: the sizes of the allocations the launch was passed (each once: an upper bound on the
// memory it moves); `flops`: floating-point operations where known (cuBLAS), else 0.
void count_launch(const std::string& kernel, unsigned long long bytes = 0,
                  unsigned long long flops = 0);
void mark_step();
// True within training steps when the stats file is asked for: only then are a launch's bytes
// kept (stats.cpp).
bool counting_step_kernels();
void write_stats_if_asked();

}  // namespace emu
