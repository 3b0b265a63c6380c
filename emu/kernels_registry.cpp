// The registry of the kernels library: every module's kernels (appended by the registrars of
// the generated translation units at load time) and the bounds of the static shared memory
// section, which the launcher poisons before every block.
#include <vector>

#include "kernels_module.h"

static std::vector<scd_emu_kernel>& all_kernels() {
    static std::vector<scd_emu_kernel> kernels;
    return kernels;
}

scd_emu_registrar::scd_emu_registrar(const scd_emu_kernel* kernels, std::size_t n) {
    all_kernels().insert(all_kernels().end(), kernels, kernels + n);
}

// Keeps the section present even if no kernel declares __shared__ memory.
__attribute__((section("scd_emu_shared"), used)) static unsigned char section_anchor[16];

extern "C" unsigned char __start_scd_emu_shared[];
extern "C" unsigned char __stop_scd_emu_shared[];

extern "C" __attribute__((visibility("default"))) void scd_emu_registry(
    const scd_emu_kernel** kernels, std::size_t* n) {
    *kernels = all_kernels().data();
    *n = all_kernels().size();
}

extern "C" __attribute__((visibility("default"))) void scd_emu_shared_section(
    unsigned char** begin, unsigned char** end) {
    (void)section_anchor;
    *begin = __start_scd_emu_shared;
    *end = __stop_scd_emu_shared;
}
