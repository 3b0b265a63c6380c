// Counters of the emulated device: launches per kernel, copies in each direction (count and
// bytes), synchronisations and allocations, in total and per training step (the host marks
// step boundaries with scdEmuMarkStep). With SCDREAMER_EMULATE_CUDA_STATS=FILE they are written
// as JSON when the process exits (or at scdEmuWriteStats). They are how the GPU efficiency of
// the host code is judged without a GPU.
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <vector>

#include "internal.h"

namespace emu {
namespace {

struct Tally {
    unsigned long long h2d = 0, h2d_bytes = 0, d2h = 0, d2h_bytes = 0, d2d = 0, d2d_bytes = 0,
                       syncs = 0, launches = 0, allocs = 0, frees = 0, memsets = 0;
};

// One kernel's launches within training steps, with the bytes and FLOPs count_launch was told.
struct KernelTally {
    unsigned long long launches = 0, bytes = 0, flops = 0;
};

struct Stats {
    std::map<std::string, unsigned long long> kernels;
    // Per kernel, over the closed training steps only (setup and inference excluded): the
    // performance model's input (bench/gpu_model.py).
    std::map<std::string, KernelTally> step_kernels, open_step_kernels;
    Tally total;
    Tally step;
    std::vector<Tally> steps;
    bool stepping = false;
};

// Leaked on purpose: the at-exit writer runs after function-local statics are destroyed.
Stats& stats() {
    static Stats* s = new Stats();
    return *s;
}

void add(Tally& t, Counter c, size_t bytes) {
    switch (c) {
        case Counter::H2D: t.h2d++, t.h2d_bytes += bytes; break;
        case Counter::D2H: t.d2h++, t.d2h_bytes += bytes; break;
        case Counter::D2D: t.d2d++, t.d2d_bytes += bytes; break;
        case Counter::Sync: t.syncs++; break;
        case Counter::Alloc: t.allocs++; break;
        case Counter::Free: t.frees++; break;
        case Counter::Memset: t.memsets++; break;
    }
}

void write_tally(FILE* f, const Tally& t) {
    fprintf(f,
            "{\"h2d\": %llu, \"h2d_bytes\": %llu, \"d2h\": %llu, \"d2h_bytes\": %llu, "
            "\"d2d\": %llu, \"d2d_bytes\": %llu, \"syncs\": %llu, \"launches\": %llu, "
            "\"allocs\": %llu, \"frees\": %llu, \"memsets\": %llu}",
            t.h2d, t.h2d_bytes, t.d2h, t.d2h_bytes, t.d2d, t.d2d_bytes, t.syncs, t.launches,
            t.allocs, t.frees, t.memsets);
}

struct WriteAtExit {
    ~WriteAtExit() { write_stats_if_asked(); }
} write_at_exit;

}  // namespace

void count(Counter c, size_t bytes) {
    Stats& s = stats();
    add(s.total, c, bytes);
    add(s.step, c, bytes);
}

void count_launch(const std::string& kernel, unsigned long long bytes,
                  unsigned long long flops) {
    Stats& s = stats();
    s.kernels[kernel]++;
    s.total.launches++;
    s.step.launches++;
    if (s.stepping) {
        KernelTally& t = s.open_step_kernels[kernel];
        t.launches++;
        t.bytes += bytes;
        t.flops += flops;
    }
}

bool counting_step_kernels() {
    // Nobody reads the per-kernel bytes unless the stats file is asked for.
    static const bool asked = getenv("SCDREAMER_EMULATE_CUDA_STATS") != nullptr;
    return asked && stats().stepping;
}

// The first mark opens step 1; each later one closes the step before it.
void mark_step() {
    Stats& s = stats();
    if (s.stepping) {
        s.steps.push_back(s.step);
        for (auto& [name, t] : s.open_step_kernels) {
            KernelTally& all = s.step_kernels[name];
            all.launches += t.launches;
            all.bytes += t.bytes;
            all.flops += t.flops;
        }
    }
    s.open_step_kernels.clear();
    s.stepping = true;
    s.step = Tally{};
}

void write_stats_if_asked() {
    const char* path = getenv("SCDREAMER_EMULATE_CUDA_STATS");
    if (!path || !*path) return;
    std::lock_guard<std::recursive_mutex> lock(device_lock());
    Stats& s = stats();
    const std::string tmp = std::string(path) + ".tmp";
    FILE* f = fopen(tmp.c_str(), "w");
    if (!f) {
        report(std::string("cannot write the stats file ") + path);
        return;
    }
    fprintf(f, "{\"kernels\": {");
    bool first = true;
    for (auto& [name, n] : s.kernels) {
        fprintf(f, "%s\"%s\": %llu", first ? "" : ", ", name.c_str(), n);
        first = false;
    }
    fprintf(f, "},\n \"step_kernels\": {");
    first = true;
    for (auto& [name, t] : s.step_kernels) {
        fprintf(f, "%s\"%s\": {\"launches\": %llu, \"bytes\": %llu, \"flops\": %llu}",
                first ? "" : ", ", name.c_str(), t.launches, t.bytes, t.flops);
        first = false;
    }
    fprintf(f, "},\n \"totals\": ");
    write_tally(f, s.total);
    fprintf(f, ",\n \"after_last_step\": ");
    write_tally(f, s.step);
    fprintf(f, ",\n \"steps\": [");
    for (size_t i = 0; i < s.steps.size(); i++) {
        fprintf(f, "%s\n  ", i ? "," : "");
        write_tally(f, s.steps[i]);
    }
    fprintf(f, "]}\n");
    fclose(f);
    rename(tmp.c_str(), path);
}

}  // namespace emu

SCD_EXPORT void scdEmuMarkStep(void) {
    std::lock_guard<std::recursive_mutex> lock(emu::device_lock());
    emu::mark_step();
}

SCD_EXPORT void scdEmuWriteStats(void) { emu::write_stats_if_asked(); }
