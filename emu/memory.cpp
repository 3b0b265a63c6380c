// Device memory of the emulated GPU: host memory laid out so that a kernel's out-of-bounds
// access is caught. Each allocation is its own mapping: an inaccessible guard page, canary
// padding, the data ending exactly at a second guard page. Reading or writing one element past
// the end faults (the launcher turns the fault into an error naming the kernel); a write before
// the start lands in the canaries and is found after the launch. New memory is filled with 0xFF
// (NaN as f32, -1 as int), because a GPU does not zero it either.
#include <sys/mman.h>
#include <unistd.h>

#include <cstring>
#include <map>

#include "internal.h"

namespace emu {
namespace {

constexpr unsigned char CANARY = 0xA5;
constexpr unsigned char POISON = 0xFF;

std::map<uintptr_t, Allocation>& table() {
    static auto* t = new std::map<uintptr_t, Allocation>();  // leaked: used until exit
    return *t;
}

size_t round_up(size_t n, size_t to) { return (n + to - 1) / to * to; }

}  // namespace

size_t page_size() {
    static size_t p = (size_t)sysconf(_SC_PAGESIZE);
    return p;
}

Result allocate(size_t bytes, uintptr_t* out) {
    const size_t page = page_size();
    // The data must end exactly at the guard page, so its start is aligned only to the largest
    // power of two dividing its size (at most 256, CUDA's alignment): an f32 array of n elements
    // is 4-aligned and its element n is on the guard page.
    const size_t body = round_up(bytes == 0 ? 1 : bytes, page);
    const size_t region_size = body + 2 * page;
    void* region = mmap(nullptr, region_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                        -1, 0);
    if (region == MAP_FAILED) return OUT_OF_MEMORY;
    const uintptr_t base = (uintptr_t)region;
    mprotect(region, page, PROT_NONE);
    mprotect((void*)(base + page + body), page, PROT_NONE);
    const uintptr_t end = base + page + body;
    const uintptr_t begin = end - bytes;
    std::memset((void*)(base + page), CANARY, begin - (base + page));
    std::memset((void*)begin, POISON, bytes);
    table()[begin] = Allocation{begin, bytes, base, region_size};
    *out = begin;
    return OK;
}

Result release(uintptr_t ptr) {
    auto it = table().find(ptr);
    if (it == table().end()) return INVALID_VALUE;
    munmap((void*)it->second.region, it->second.region_size);
    table().erase(it);
    return OK;
}

const Allocation* find(uintptr_t ptr, size_t bytes) {
    auto& t = table();
    auto it = t.upper_bound(ptr);
    if (it == t.begin()) return nullptr;
    --it;
    const Allocation& a = it->second;
    if (ptr < a.begin || ptr > a.begin + a.size) return nullptr;
    if (bytes > a.begin + a.size - ptr) return nullptr;
    return &a;
}

const Allocation* near(uintptr_t addr, bool* below, bool* above) {
    for (auto& [begin, a] : table()) {
        if (addr >= a.region && addr < a.region + a.region_size) {
            *below = addr < a.begin;
            *above = addr >= a.begin + a.size;
            return &a;
        }
    }
    return nullptr;
}

std::string check_canaries_of(const Allocation& a) {
    const unsigned char* p = (const unsigned char*)(a.region + page_size());
    const unsigned char* end = (const unsigned char*)a.begin;
    for (; p < end; ++p) {
        if (*p != CANARY) {
            return "a write " + std::to_string(end - p) + " bytes before the start of the " +
                   std::to_string(a.size) + "-byte allocation at 0x" +
                   [&] {
                       char b[32];
                       snprintf(b, sizeof b, "%lx", (unsigned long)a.begin);
                       return std::string(b);
                   }();
        }
    }
    return "";
}

std::string check_canaries() {
    for (auto& [begin, a] : table()) {
        std::string m = check_canaries_of(a);
        if (!m.empty()) return m;
    }
    return "";
}

size_t bytes_in_use() {
    size_t n = 0;
    for (auto& [begin, a] : table()) n += a.size;
    return n;
}

}  // namespace emu
