// Registration of the CPU-compiled kernels of one kernels/*.cu file (included after it by the
// generated translation unit, see emu/builder.rs). The trampoline and the prototype (parameter
// count, sizes, pointer or not) come from the kernel's own C++ type, so the launcher checks a
// launch against what the kernel really takes.
#pragma once

#include <cstddef>
#include <type_traits>
#include <utility>
#include <vector>

#include "emu_abi.h"

template <typename F>
struct scd_emu_sig;

template <typename... A>
struct scd_emu_sig<void(A...)> {
    template <void (*F)(A...), std::size_t... I>
    static void invoke(void** p, std::index_sequence<I...>) {
        F(*static_cast<std::remove_reference_t<A>*>(p[I])...);
    }
    template <void (*F)(A...)>
    static void call(void** p) {
        invoke<F>(p, std::index_sequence_for<A...>{});
    }
    static constexpr unsigned n = sizeof...(A);
    static constexpr unsigned sizes[sizeof...(A) + 1] = {(unsigned)sizeof(A)..., 0u};
    static constexpr unsigned char pointers[sizeof...(A) + 1] = {
        (unsigned char)std::is_pointer<A>::value..., 0};
};

#define SCD_EMU_KERNEL(module, name)                                                        \
    scd_emu_kernel {                                                                         \
        module, #name, &scd_emu_sig<decltype(name)>::call<name>, scd_emu_sig<decltype(name)>::n, \
            scd_emu_sig<decltype(name)>::sizes, scd_emu_sig<decltype(name)>::pointers         \
    }

// Appends a module's kernels to the library's registry at load time.
struct scd_emu_registrar {
    scd_emu_registrar(const scd_emu_kernel* kernels, std::size_t n);
};
