// The interface between the emulated driver (libcuda.so of emu/, which schedules CUDA threads)
// and the kernels compiled for the CPU (libscd_emu_kernels.so, built from kernels/*.cu with
// cuda_builtins.h). Plain C, so both sides agree on the layout whatever compiles them.
#pragma once

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

struct scd_emu_dim3 {
    unsigned int x, y, z;
};

// One CUDA thread as the kernel code sees it.
struct scd_emu_thread_view {
    struct scd_emu_dim3 thread_idx;
};

// The launch as the kernel code sees it (one block at a time runs).
struct scd_emu_launch_view {
    struct scd_emu_dim3 block_idx;
    struct scd_emu_dim3 block_dim;
    struct scd_emu_dim3 grid_dim;
};

// Defined by the driver: the running thread and launch.
extern struct scd_emu_thread_view* scd_emu_current;
extern struct scd_emu_launch_view scd_emu_launch;

// Barrier of the whole block.
void scd_emu_syncthreads(void);
// One warp-wide exchange: every lane of `mask` arrives with `value`; returns the value the
// operation gives this lane (see SCD_EMU_* below).
unsigned long long scd_emu_warp_shuffle(unsigned mask, unsigned long long value, int kind, int arg);
// The launch's dynamic shared memory (`extern __shared__`).
void* scd_emu_dynamic_shared(void);

#define SCD_EMU_SHFL_XOR 0
#define SCD_EMU_SHFL_IDX 1
#define SCD_EMU_SHFL_DOWN 2
#define SCD_EMU_SHFL_UP 3
#define SCD_EMU_BALLOT 4

// One kernel of the kernels library: its name, a trampoline that calls it with the launch's
// `void** params`, and its C++ prototype (parameter count, sizes, which are pointers).
struct scd_emu_kernel {
    const char* module;
    const char* name;
    void (*call)(void** params);
    unsigned n_params;
    const unsigned* param_sizes;
    const unsigned char* param_is_pointer;
};

// Exported by the kernels library.
typedef void (*scd_emu_registry_fn)(const struct scd_emu_kernel** kernels, size_t* n);
typedef void (*scd_emu_shared_section_fn)(unsigned char** begin, unsigned char** end);

#ifdef __cplusplus
}
#endif
