// Kernel launches on the emulated device. Each CUDA thread of a block is a fiber with its own
// stack; the scheduler runs the block's fibers in turn, each until it finishes or waits at a
// barrier (__syncthreads, a warp operation), so barriers are real rendezvous points and a
// thread that reads before its block arrives sees what was there before. Blocks run one after
// the other, forward or reversed (SCDREAMER_EMU_ORDER / scdEmuSetOrder), so a kernel whose
// result depends on block order shows it. Checked at every launch: the grid and block limits,
// __launch_bounds__, shared memory above 48 KiB without the opt-in attribute, the arguments
// against the kernel's prototype (count, sizes, device pointers where it takes pointers); during
// it: out-of-bounds accesses (guard pages, canaries), full-mask warp operations with absent or
// exited lanes, lanes of a warp at different warp operations, deadlocks, and a time limit.
#include <algorithm>
#include <setjmp.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <set>
#include <string>
#include <vector>

#include "internal.h"

// ------------------------------------------------------------------ fibers (x86-64 System V)

extern "C" void scd_emu_switch(void** save_sp, void* load_sp);
extern "C" void scd_emu_fiber_start();

asm(R"(
.text
.globl scd_emu_switch
.hidden scd_emu_switch
.type scd_emu_switch,@function
scd_emu_switch:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
.size scd_emu_switch, .-scd_emu_switch

.globl scd_emu_fiber_start
.hidden scd_emu_fiber_start
.type scd_emu_fiber_start,@function
scd_emu_fiber_start:
    andq $-16, %rsp
    call scd_emu_fiber_main
    ud2
.size scd_emu_fiber_start, .-scd_emu_fiber_start
)");

extern "C" {
__attribute__((visibility("default"))) scd_emu_thread_view* scd_emu_current = nullptr;
__attribute__((visibility("default"))) scd_emu_launch_view scd_emu_launch = {};
}

namespace emu {
namespace {

constexpr size_t STACK_BYTES = 256 * 1024;
constexpr unsigned WARP = 32;

enum class State { Ready, WaitSync, WaitWarp, Done };

struct Thread {
    scd_emu_thread_view view;
    State state;
    void* sp;
    unsigned linear;
};

struct Warp {
    unsigned present = 0;
    unsigned arrived = 0;
    int kind = 0;
    int exited_lane = -1;
    unsigned long long values[WARP];
    unsigned long long snapshot[WARP];
};

const char* op_name(int kind) {
    switch (kind) {
        case SCD_EMU_SHFL_XOR: return "__shfl_xor_sync";
        case SCD_EMU_SHFL_IDX: return "__shfl_sync";
        case SCD_EMU_SHFL_DOWN: return "__shfl_down_sync";
        case SCD_EMU_SHFL_UP: return "__shfl_up_sync";
        default: return "__ballot_sync/__syncwarp";
    }
}

// The launch in progress (one at a time, under the device lock).
struct Running {
    KernelInfo* kernel = nullptr;
    void** params = nullptr;
    std::vector<Thread> threads;
    std::vector<Warp> warps;
    unsigned live = 0;
    unsigned sync_arrived = 0;
    Thread* cur = nullptr;
    void* scheduler_sp = nullptr;
    std::string error;
    scd_emu_dim3 block_idx = {};
    unsigned char* dynamic_shared = nullptr;
    size_t dynamic_bytes = 0;
    bool direct = false;  // threads run one after the other (run_block_direct)
};
Running run;
std::vector<unsigned char*> stacks;
int block_order = -1;

// Faults inside a kernel jump back to the launch (set while a launch runs on this thread).
thread_local sigjmp_buf fault_jump;
thread_local volatile sig_atomic_t in_kernel = 0;
volatile sig_atomic_t fault_signal = 0;
volatile uintptr_t fault_address = 0;
struct sigaction previous[65];
constexpr int TIMEOUT_SIGNAL_OFFSET = 3;

std::string hex(uintptr_t v) {
    char b[32];
    snprintf(b, sizeof b, "0x%lx", (unsigned long)v);
    return b;
}

std::string where() {
    const Thread* t = run.cur;
    char b[160];
    snprintf(b, sizeof b, "block (%u,%u,%u) thread (%u,%u,%u)", run.block_idx.x, run.block_idx.y,
             run.block_idx.z, t ? t->view.thread_idx.x : 0, t ? t->view.thread_idx.y : 0,
             t ? t->view.thread_idx.z : 0);
    return b;
}

void yield_to_scheduler() { scd_emu_switch(&run.cur->sp, run.scheduler_sp); }

[[noreturn]] void fail(const std::string& message) {
    run.error = message + " (" + where() + ")";
    run.cur->state = State::Done;
    yield_to_scheduler();
    abort();  // never resumed
}

void release_sync() {
    for (Thread& t : run.threads)
        if (t.state == State::WaitSync) t.state = State::Ready;
    run.sync_arrived = 0;
}

void on_signal(int sig, siginfo_t* info, void* uctx) {
    if (in_kernel) {
        fault_signal = sig;
        fault_address = (uintptr_t)info->si_addr;
        siglongjmp(fault_jump, 1);
    }
    // Not ours: hand the signal to whoever handled it before.
    struct sigaction& old = previous[sig];
    if (old.sa_flags & SA_SIGINFO) {
        if (old.sa_sigaction) {
            old.sa_sigaction(sig, info, uctx);
            return;
        }
    } else if (old.sa_handler != SIG_DFL && old.sa_handler != SIG_IGN) {
        old.sa_handler(sig);
        return;
    }
    sigaction(sig, &old, nullptr);  // default action on return (the fault repeats)
}

void install_handlers() {
    static bool done = false;
    if (done) return;
    done = true;
    struct sigaction sa;
    std::memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_signal;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    for (int sig : {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGRTMIN + TIMEOUT_SIGNAL_OFFSET})
        sigaction(sig, &sa, &previous[sig]);
}

// Signal handlers need a stack of their own (a fiber's may be the one that overflowed).
void ensure_alt_stack() {
    stack_t current;
    if (sigaltstack(nullptr, &current) == 0 && !(current.ss_flags & SS_DISABLE)) return;
    static thread_local std::vector<unsigned char> alt(256 * 1024);
    stack_t s;
    s.ss_sp = alt.data();
    s.ss_size = alt.size();
    s.ss_flags = 0;
    sigaltstack(&s, nullptr);
}

unsigned char* stack_for(size_t i) {
    while (stacks.size() <= i) {
        void* p = mmap(nullptr, STACK_BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                       -1, 0);
        if (p == MAP_FAILED) return nullptr;
        mprotect(p, page_size(), PROT_NONE);  // overflow faults instead of corrupting
        stacks.push_back((unsigned char*)p);
    }
    return stacks[i];
}

// A fresh fiber whose first switch enters scd_emu_fiber_start. (The kernels never change the
// floating-point control registers, so the switch does not save them.)
void* initial_sp(unsigned char* stack, unsigned i) {
    // Stack tops 256 KiB apart would all map to the same cache sets: stagger them.
    uintptr_t top = ((uintptr_t)stack + STACK_BYTES - (i % 64) * 64 - 64) & ~(uintptr_t)15;
    uint64_t* sp = (uint64_t*)(top - 7 * 8);
    for (int i = 0; i < 6; i++) sp[i] = 0;  // r15 r14 r13 r12 rbx rbp
    sp[6] = (uint64_t)(uintptr_t)&scd_emu_fiber_start;
    return sp;
}

bool readable(const void* p, size_t n) {
    if (!p) return false;
    unsigned char buf[16];
    struct iovec local = {buf, n};
    struct iovec remote = {const_cast<void*>(p), n};
    return process_vm_readv(getpid(), &local, 1, &remote, 1, 0) == (ssize_t)n;
}

// The arguments against the prototype; the allocations they point into.
Result check_params(KernelInfo* k, void** params, std::vector<const Allocation*>* touched) {
    const scd_emu_kernel* cpu = k->cpu;
    const std::string name = k->name;
    if (k->ptx_param_sizes.size() != cpu->n_params) {
        report("kernel " + name + ": the loaded image declares " +
               std::to_string(k->ptx_param_sizes.size()) + " parameters, the CPU build " +
               std::to_string(cpu->n_params) + " (stale image?)");
        return INVALID_IMAGE;
    }
    if (cpu->n_params > 0 && params == nullptr) {
        report("kernel " + name + ": launched without its " + std::to_string(cpu->n_params) +
               " arguments");
        return INVALID_VALUE;
    }
    for (unsigned i = 0; i < cpu->n_params; i++) {
        const unsigned size = cpu->param_sizes[i];
        if (k->ptx_param_sizes[i] != size) {
            report("kernel " + name + ": parameter " + std::to_string(i) + " is " +
                   std::to_string(k->ptx_param_sizes[i]) + " bytes in the image and " +
                   std::to_string(size) + " in the CPU build");
            return INVALID_IMAGE;
        }
        if (!readable(&params[i], sizeof(void*)) || !readable(params[i], size)) {
            report("kernel " + name + ": argument " + std::to_string(i) + " of " +
                   std::to_string(cpu->n_params) +
                   " is not readable host memory (the launch passed too few arguments?)");
            return INVALID_VALUE;
        }
        uint64_t value = 0;
        if (cpu->param_is_pointer[i]) {
            std::memcpy(&value, params[i], 8);
            if (value == 0) continue;
            const Allocation* a = find((uintptr_t)value, 0);
            if (!a) {
                report("kernel " + name + ": argument " + std::to_string(i) +
                       " is a pointer parameter but " + hex(value) +
                       " is not device memory (an argument missing, swapped or of the wrong "
                       "type?)");
                return INVALID_VALUE;
            }
            touched->push_back(a);
        } else if (size < 8 && readable(params[i], 8)) {
            std::memcpy(&value, params[i], 8);
            const Allocation* a = find((uintptr_t)value, 0);
            if (a && a->begin == value) {
                report("kernel " + name + ": argument " + std::to_string(i) + " is a " +
                       std::to_string(size) + "-byte value but the launch passed the device "
                       "pointer " + hex(value) + " (arguments swapped?)");
                return INVALID_VALUE;
            }
        }
    }
    return OK;
}

Result check_config(KernelInfo* k, const LaunchConfig& c) {
    const std::string name = k->name;
    const unsigned long long threads = (unsigned long long)c.block.x * c.block.y * c.block.z;
    char b[256];
    if (c.block.x == 0 || c.block.y == 0 || c.block.z == 0 || c.grid.x == 0 || c.grid.y == 0 ||
        c.grid.z == 0) {
        report("kernel " + name + ": a grid or block dimension is 0");
        return INVALID_VALUE;
    }
    if (c.block.x > 1024 || c.block.y > 1024 || c.block.z > 64 || threads > 1024) {
        snprintf(b, sizeof b, "kernel %s: block (%u,%u,%u) exceeds the device's 1024 threads",
                 name.c_str(), c.block.x, c.block.y, c.block.z);
        report(b);
        return INVALID_VALUE;
    }
    if (threads > k->max_threads) {
        snprintf(b, sizeof b,
                 "kernel %s: block of %llu threads above its __launch_bounds__ of %u",
                 name.c_str(), threads, k->max_threads);
        report(b);
        return LAUNCH_OUT_OF_RESOURCES;
    }
    if (c.grid.x > 2147483647u || c.grid.y > 65535 || c.grid.z > 65535) {
        snprintf(b, sizeof b, "kernel %s: grid (%u,%u,%u) exceeds the device limits", name.c_str(),
                 c.grid.x, c.grid.y, c.grid.z);
        report(b);
        return INVALID_VALUE;
    }
    const size_t total_shared = k->static_shared + c.dynamic_shared;
    if (total_shared > 48 * 1024 && (int)c.dynamic_shared > k->max_dynamic_shared) {
        snprintf(b, sizeof b,
                 "kernel %s: %zu bytes of shared memory (%zu static + %u dynamic) need "
                 "cuFuncSetAttribute(CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES) above 48 KiB",
                 name.c_str(), total_shared, k->static_shared, c.dynamic_shared);
        report(b);
        return INVALID_VALUE;
    }
    if (total_shared > 227 * 1024) {
        report("kernel " + name + ": more shared memory than the device's 227 KiB per block");
        return INVALID_VALUE;
    }
    return OK;
}

// A block of a kernel that cannot wait (no barrier, warp operation or call in its image): its
// threads run one after the other on this stack.
void run_block_direct(unsigned n_threads, bool reversed) {
    run.direct = true;
    const scd_emu_dim3 bd = scd_emu_launch.block_dim;
    Thread t{};
    run.cur = &t;
    scd_emu_current = &t.view;
    for (unsigned j = 0; j < n_threads; j++) {
        const unsigned i = reversed ? n_threads - 1 - j : j;
        t.linear = i;
        t.view.thread_idx = {i % bd.x, (i / bd.x) % bd.y, i / (bd.x * bd.y)};
        run.kernel->cpu->call(run.params);
    }
    run.direct = false;
}

// A kernel run directly reached a barrier: its image (which has none) and the CPU build differ.
[[noreturn]] void direct_violation() {
    fault_signal = 0;
    fault_address = 0;
    siglongjmp(fault_jump, 1);
}

// Runs one block to completion; false with run.error set on a failure.
bool run_block(unsigned n_threads, bool reversed) {
    unsigned char *shared_begin, *shared_end;
    shared_section(&shared_begin, &shared_end);
    std::memset(shared_begin, 0xFF, shared_end - shared_begin);
    if (run.dynamic_shared) std::memset(run.dynamic_shared, 0xFF, run.dynamic_bytes);
    if (!run.kernel->may_wait) {
        run_block_direct(n_threads, reversed);
        return true;
    }
    const scd_emu_dim3 bd = scd_emu_launch.block_dim;
    run.threads.resize(n_threads);
    for (unsigned i = 0; i < n_threads; i++) {
        Thread& t = run.threads[i];
        t.linear = i;
        t.view.thread_idx = {i % bd.x, (i / bd.x) % bd.y, i / (bd.x * bd.y)};
        t.state = State::Ready;
        unsigned char* stack = stack_for(i);
        if (!stack) {
            run.error = "cannot map fiber stacks";
            return false;
        }
        t.sp = initial_sp(stack, i);
    }
    const unsigned n_warps = (n_threads + WARP - 1) / WARP;
    run.warps.assign(n_warps, Warp{});
    for (unsigned w = 0; w < n_warps; w++)
        run.warps[w].present = std::min(WARP, n_threads - w * WARP);
    run.live = n_threads;
    run.sync_arrived = 0;
    while (run.live > 0) {
        bool ran = false;
        for (unsigned j = 0; j < n_threads; j++) {
            Thread& t = run.threads[reversed ? n_threads - 1 - j : j];
            if (t.state != State::Ready) continue;
            run.cur = &t;
            scd_emu_current = &t.view;
            scd_emu_switch(&run.scheduler_sp, t.sp);
            ran = true;
            if (!run.error.empty()) return false;
        }
        if (!ran && run.live > 0) {
            unsigned at_sync = 0, at_warp = 0;
            for (const Thread& t : run.threads) {
                at_sync += t.state == State::WaitSync;
                at_warp += t.state == State::WaitWarp;
            }
            run.cur = nullptr;
            run.error = "deadlock: " + std::to_string(at_sync) + " threads wait at __syncthreads, " +
                        std::to_string(at_warp) + " at a warp operation, " +
                        std::to_string(n_threads - run.live) + " exited (block (" +
                        std::to_string(run.block_idx.x) + "," + std::to_string(run.block_idx.y) +
                        "," + std::to_string(run.block_idx.z) + "))";
            return false;
        }
    }
    return true;
}

int order_from_env() {
    const char* e = getenv("SCDREAMER_EMU_ORDER");
    return (e && std::strcmp(e, "reverse") == 0) ? 1 : 0;
}

timer_t arm_timeout(bool* armed) {
    timer_t timer{};
    *armed = false;
    const char* e = getenv("SCDREAMER_EMU_TIMEOUT_S");
    const long seconds = e ? atol(e) : 300;
    if (seconds <= 0) return timer;
    struct sigevent ev;
    std::memset(&ev, 0, sizeof ev);
    ev.sigev_notify = SIGEV_THREAD_ID;
    ev.sigev_signo = SIGRTMIN + TIMEOUT_SIGNAL_OFFSET;
    ev._sigev_un._tid = gettid();
    if (timer_create(CLOCK_MONOTONIC, &ev, &timer) != 0) return timer;
    struct itimerspec spec;
    std::memset(&spec, 0, sizeof spec);
    spec.it_value.tv_sec = seconds;
    timer_settime(timer, 0, &spec, nullptr);
    *armed = true;
    return timer;
}

std::string describe_fault(int sig, uintptr_t addr) {
    if (sig == 0)
        return "reached a barrier or warp operation that its loaded image does not have (the "
               "image and the CPU build of the kernel differ)";
    if (sig == SIGRTMIN + TIMEOUT_SIGNAL_OFFSET)
        return "did not finish within SCDREAMER_EMU_TIMEOUT_S (an endless loop?)";
    if (sig == SIGFPE) return "raised an arithmetic exception (integer division by zero?)";
    bool below = false, above = false;
    const Allocation* a = near(addr, &below, &above);
    if (a) {
        const long long off = (long long)addr - (long long)a->begin;
        return "accessed byte offset " + std::to_string(off) + " of a " +
               std::to_string(a->size) + "-byte device allocation (" +
               (above ? "past the end" : "before the start") + "; out of bounds)";
    }
    for (unsigned char* s : stacks)
        if (addr >= (uintptr_t)s && addr < (uintptr_t)s + page_size())
            return "overflowed its thread stack";
    return "accessed " + hex(addr) + ", which is not device memory (illegal address)";
}

}  // namespace

void set_order(int order) { block_order = order; }

Result launch(KernelInfo* k, const LaunchConfig& cfg, void** params) {
    if (sticky() != OK) return sticky();
    Result r = check_config(k, cfg);
    if (r != OK) return r;
    std::vector<const Allocation*> touched;
    r = check_params(k, params, &touched);
    if (r != OK) return r;
    if (!counting_step_kernels()) {
        count_launch(k->name);
    } else {
        // Bytes of the buffers the launch passes, and of the buffers a small pointer table
        // among them lists (multi_tensor.cu reads its tensors' addresses from one): a word of
        // the table equal to the start of a live allocation counts that allocation. Only
        // within training steps, the only place the bytes are kept.
        unsigned long long bytes = 0;
        std::vector<const Allocation*> seen;
        auto add = [&](const Allocation* a) {
            if (std::find(seen.begin(), seen.end(), a) != seen.end()) return;
            seen.push_back(a);
            bytes += a->size;
        };
        for (const Allocation* a : touched) add(a);
        for (const Allocation* a : touched) {
            if (a->size % 8 != 0 || a->size > 4096) continue;
            const uint64_t* words = (const uint64_t*)a->begin;
            for (size_t w = 0; w < a->size / 8; w++) {
                const Allocation* t = find((uintptr_t)words[w], 1);
                if (t && t->begin == (uintptr_t)words[w]) add(t);
            }
        }
        count_launch(k->name, bytes, 0);
    }
    install_handlers();
    ensure_alt_stack();
    const bool reversed = (block_order < 0 ? order_from_env() : block_order) == 1;

    run = Running{};
    run.kernel = k;
    run.params = params;
    uintptr_t dyn = 0;
    if (cfg.dynamic_shared > 0) {
        if (allocate(cfg.dynamic_shared, &dyn) != OK) return OUT_OF_MEMORY;
        run.dynamic_shared = (unsigned char*)dyn;
        run.dynamic_bytes = cfg.dynamic_shared;
    }
    scd_emu_launch.grid_dim = cfg.grid;
    scd_emu_launch.block_dim = cfg.block;
    const unsigned n_threads = cfg.block.x * cfg.block.y * cfg.block.z;
    const unsigned long long n_blocks = (unsigned long long)cfg.grid.x * cfg.grid.y * cfg.grid.z;

    bool armed = false;
    timer_t timer = arm_timeout(&armed);
    bool ok = true;
    if (sigsetjmp(fault_jump, 1) == 0) {
        in_kernel = 1;
        for (unsigned long long j = 0; j < n_blocks && ok; j++) {
            const unsigned long long b = reversed ? n_blocks - 1 - j : j;
            run.block_idx = {(unsigned)(b % cfg.grid.x), (unsigned)((b / cfg.grid.x) % cfg.grid.y),
                             (unsigned)(b / ((unsigned long long)cfg.grid.x * cfg.grid.y))};
            scd_emu_launch.block_idx = run.block_idx;
            ok = run_block(n_threads, reversed);
        }
        in_kernel = 0;
    } else {
        in_kernel = 0;
        ok = false;
        run.error = describe_fault(fault_signal, fault_address) + " (" + where() + ")";
    }
    if (armed) timer_delete(timer);
    scd_emu_current = nullptr;
    if (dyn) release(dyn);
    if (ok) {
        for (const Allocation* a : touched) {
            std::string m = check_canaries_of(*a);
            if (!m.empty()) {
                run.error = m;
                ok = false;
                break;
            }
        }
    }
    if (!ok) {
        report("kernel " + k->name + ": " + run.error);
        set_sticky(run.error.find("out of bounds") != std::string::npos ||
                           run.error.find("illegal address") != std::string::npos ||
                           run.error.find("before the start") != std::string::npos
                       ? ILLEGAL_ADDRESS
                       : LAUNCH_FAILED);
        return sticky();
    }
    return OK;
}

}  // namespace emu

using emu::run;

extern "C" __attribute__((visibility("hidden"))) void scd_emu_fiber_main() {
    run.kernel->cpu->call(run.params);
    emu::Thread* t = run.cur;
    t->state = emu::State::Done;
    run.live--;
    emu::Warp& w = run.warps[t->linear / emu::WARP];
    if (w.exited_lane < 0) w.exited_lane = (int)(t->linear % emu::WARP);
    if (w.arrived > 0) {
        run.error = "lane " + std::to_string(t->linear % emu::WARP) + " of warp " +
                    std::to_string(t->linear / emu::WARP) + " exited while " +
                    std::to_string(w.arrived) + " lanes wait at a full-mask " +
                    emu::op_name(w.kind) + " (undefined on a GPU)";
    } else if (run.sync_arrived > 0 && run.sync_arrived == run.live) {
        emu::release_sync();
    }
    scd_emu_switch(&t->sp, run.scheduler_sp);
    abort();
}

SCD_EXPORT void scd_emu_syncthreads(void) {
    if (run.direct) emu::direct_violation();
    run.sync_arrived++;
    if (run.sync_arrived == run.live) {
        emu::release_sync();
        return;
    }
    run.cur->state = emu::State::WaitSync;
    emu::yield_to_scheduler();
}

SCD_EXPORT unsigned long long scd_emu_warp_shuffle(unsigned mask, unsigned long long value,
                                                   int kind, int arg) {
    if (run.direct) emu::direct_violation();
    emu::Thread* t = run.cur;
    const unsigned lane = t->linear % emu::WARP;
    const unsigned warp = t->linear / emu::WARP;
    emu::Warp& w = run.warps[warp];
    if (mask != 0xffffffffu)
        emu::fail(std::string(emu::op_name(kind)) + " with mask " + emu::hex(mask) +
                  ": the emulator implements full-mask warp operations only");
    if (w.present < emu::WARP)
        emu::fail(std::string("full-mask ") + emu::op_name(kind) + " in warp " +
                  std::to_string(warp) + ", which has only " + std::to_string(w.present) +
                  " lanes (block size not a multiple of 32; undefined on a GPU)");
    if (w.exited_lane >= 0)
        emu::fail(std::string("full-mask ") + emu::op_name(kind) + " in warp " +
                  std::to_string(warp) + " after lane " + std::to_string(w.exited_lane) +
                  " exited (undefined on a GPU)");
    if (w.arrived == 0) {
        w.kind = kind;
    } else if (w.kind != kind) {
        emu::fail(std::string("lanes of warp ") + std::to_string(warp) + " reached " +
                  emu::op_name(w.kind) + " and " + emu::op_name(kind) + " (divergent warp)");
    }
    w.values[lane] = value;
    if (++w.arrived == emu::WARP) {
        std::memcpy(w.snapshot, w.values, sizeof w.values);
        w.arrived = 0;
        for (unsigned l = 0; l < emu::WARP; l++) {
            emu::Thread& other = run.threads[warp * emu::WARP + l];
            if (other.state == emu::State::WaitWarp) other.state = emu::State::Ready;
        }
    } else {
        t->state = emu::State::WaitWarp;
        emu::yield_to_scheduler();
    }
    const unsigned long long* s = w.snapshot;
    switch (kind) {
        case SCD_EMU_SHFL_XOR: return s[(lane ^ (unsigned)arg) & 31];
        case SCD_EMU_SHFL_IDX: return s[(unsigned)arg & 31];
        case SCD_EMU_SHFL_DOWN: return lane + (unsigned)arg < emu::WARP ? s[lane + arg] : s[lane];
        case SCD_EMU_SHFL_UP: return lane >= (unsigned)arg ? s[lane - arg] : s[lane];
        default: {
            unsigned long long bits = 0;
            for (unsigned l = 0; l < emu::WARP; l++)
                if (s[l]) bits |= 1ull << l;
            return bits;
        }
    }
}

SCD_EXPORT void* scd_emu_dynamic_shared(void) { return run.dynamic_shared; }
