// Kernel modules on the emulated device. The host loads the PTX that NVRTC made from
// kernels/*.cu (unchanged: cudarc's cuModuleLoadData); the emulator reads from it each kernel's
// name, parameter sizes, __launch_bounds__ (.maxntid) and static shared memory, and maps the
// name to the same kernel compiled for the CPU (the kernels library, SCDREAMER_EMU_KERNELS or
// the one build.rs made). CUBIN images are declined with CUDA_ERROR_NO_BINARY_FOR_GPU, so the
// host falls back to the PTX as it would on a GPU without a matching CUBIN.
#include <dlfcn.h>

#include <cctype>
#include <cstdlib>
#include <cstring>
#include <map>
#include <sstream>
#include <string>

#include "internal.h"

#ifndef SCD_EMU_KERNELS_PATH
#define SCD_EMU_KERNELS_PATH "libscd_emu_kernels.so"
#endif

namespace emu {
namespace {

struct KernelsLibrary {
    std::map<std::string, const scd_emu_kernel*> by_name;
    scd_emu_shared_section_fn shared = nullptr;
    std::string error;
};

KernelsLibrary& kernels_library() {
    static KernelsLibrary lib = [] {
        KernelsLibrary l;
        const char* env = getenv("SCDREAMER_EMU_KERNELS");
        const char* path = env && *env ? env : SCD_EMU_KERNELS_PATH;
        void* h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
        if (!h) {
            l.error = std::string("cannot load the CPU-compiled kernels ") + path + ": " + dlerror();
            return l;
        }
        auto registry = (scd_emu_registry_fn)dlsym(h, "scd_emu_registry");
        l.shared = (scd_emu_shared_section_fn)dlsym(h, "scd_emu_shared_section");
        if (!registry || !l.shared) {
            l.error = std::string(path) + " is not a kernels library of the emulator";
            return l;
        }
        const scd_emu_kernel* ks = nullptr;
        size_t n = 0;
        registry(&ks, &n);
        for (size_t i = 0; i < n; i++) l.by_name[ks[i].name] = &ks[i];
        return l;
    }();
    return lib;
}

unsigned type_bytes(const std::string& t) {
    if (t.size() < 3) return 0;
    const std::string bits = t.substr(2);
    if (bits == "8") return 1;
    if (bits == "16") return 2;
    if (bits == "32") return 4;
    if (bits == "64") return 8;
    if (bits == "128") return 16;
    return 0;
}

// Bytes of a declaration like ".param .align 8 .b8 name[16]" or ".shared .align 4 .f32 s[8][33]".
unsigned long long declared_bytes(const std::string& line) {
    std::istringstream in(line);
    std::string tok, type;
    unsigned long long count = 1;
    while (in >> tok) {
        if (tok == ".align") {
            in >> tok;
            continue;
        }
        if (tok.size() >= 3 && tok[0] == '.' && (tok[1] == 'u' || tok[1] == 's' || tok[1] == 'b' ||
                                                 tok[1] == 'f') &&
            std::isdigit((unsigned char)tok[2]))
            type = tok;
    }
    for (size_t p = line.find('['); p != std::string::npos; p = line.find('[', p + 1))
        count *= strtoull(line.c_str() + p + 1, nullptr, 10);
    return type_bytes(type) * count;
}

// "_ZZ8sum_rowsE7scratch" belongs to kernel "sum_rows".
std::string owner_of_mangled(const std::string& name) {
    if (name.rfind("_ZZ", 0) != 0) return "";
    size_t i = 3;
    size_t len = 0;
    while (i < name.size() && std::isdigit((unsigned char)name[i])) len = len * 10 + (name[i++] - '0');
    if (len == 0 || i + len > name.size()) return "";
    return name.substr(i, len);
}

std::string last_identifier(const std::string& decl) {
    std::string s = decl.substr(0, decl.find('['));
    while (!s.empty() && (s.back() == ';' || s.back() == ',' || std::isspace((unsigned char)s.back())))
        s.pop_back();
    size_t b = s.size();
    while (b > 0 && (std::isalnum((unsigned char)s[b - 1]) || s[b - 1] == '_' || s[b - 1] == '$'))
        b--;
    return s.substr(b);
}

Result parse_ptx(const char* text, std::map<std::string, KernelInfo>* out) {
    std::istringstream in(text);
    std::string line;
    KernelInfo* entry = nullptr;
    bool in_params = false;
    int depth = 0;
    std::map<std::string, size_t> module_shared;
    while (std::getline(in, line)) {
        const size_t first = line.find_first_not_of(" \t");
        if (first == std::string::npos) continue;
        const std::string s = line.substr(first);
        if (s.rfind("//", 0) == 0) continue;
        const size_t e = s.find(".entry ");
        if (e != std::string::npos && depth == 0) {
            size_t name_begin = e + 7;
            size_t name_end = s.find('(', name_begin);
            std::string name = s.substr(name_begin, name_end - name_begin);
            while (!name.empty() && std::isspace((unsigned char)name.back())) name.pop_back();
            entry = &(*out)[name];
            entry->name = name;
            in_params = name_end != std::string::npos && s.find(')', name_end) == std::string::npos;
            continue;
        }
        if (in_params) {
            if (s.rfind(".param", 0) == 0) entry->ptx_param_sizes.push_back((unsigned)declared_bytes(s));
            if (s.find(')') != std::string::npos) in_params = false;
            continue;
        }
        if (entry && depth == 0 && (s.rfind(".maxntid", 0) == 0 || s.rfind(".reqntid", 0) == 0)) {
            unsigned long long product = 1;
            std::string nums = s.substr(8);
            for (char* p = &nums[0]; *p;) {
                char* end;
                unsigned long long v = strtoull(p, &end, 10);
                if (end == p) {
                    p++;
                    continue;
                }
                product *= v;
                p = end;
            }
            entry->max_threads = (unsigned)product;
            continue;
        }
        if (entry && depth > 0) {
            for (const char* op : {"bar.", "barrier.", "shfl.", "vote.", "match.", "redux.", "call"})
                if (s.find(op) != std::string::npos) entry->may_wait = true;
        }
        if (s.rfind(".shared", 0) == 0 || s.rfind(".visible .shared", 0) == 0) {
            const unsigned long long bytes = declared_bytes(s);
            if (depth > 0 && entry) {
                entry->static_shared += bytes;
            } else {
                module_shared[owner_of_mangled(last_identifier(s))] += bytes;
            }
        }
        for (char c : s) {
            if (c == '{') depth++;
            if (c == '}' && --depth == 0) entry = nullptr;
        }
    }
    for (auto& [owner, bytes] : module_shared) {
        auto it = out->find(owner);
        if (it != out->end()) it->second.static_shared += bytes;
    }
    return out->empty() ? INVALID_IMAGE : OK;
}

}  // namespace

void shared_section(unsigned char** begin, unsigned char** end) {
    kernels_library().shared(begin, end);
}

Result load_module(const void* image, Module** out) {
    const char* bytes = (const char*)image;
    if (std::memcmp(bytes, "\x7f" "ELF", 4) == 0) return NO_BINARY_FOR_GPU;
    KernelsLibrary& lib = kernels_library();
    if (!lib.error.empty()) {
        report(lib.error);
        return NOT_FOUND;
    }
    std::map<std::string, KernelInfo> parsed;
    if (parse_ptx(bytes, &parsed) != OK) {
        report("cuModuleLoadData: the image is neither a CUBIN nor PTX with kernels");
        return INVALID_IMAGE;
    }
    Module* m = new Module();
    for (auto& [name, info] : parsed) {
        auto it = lib.by_name.find(name);
        if (it == lib.by_name.end()) {
            report("kernel " + name + " is in the loaded PTX but not in the CPU-compiled kernels");
            delete m;
            return NOT_FOUND;
        }
        KernelInfo* k = new KernelInfo(info);
        k->cpu = it->second;
        m->kernels.push_back(k);
    }
    *out = m;
    return OK;
}

Result module_function(Module* m, const char* name, KernelInfo** out) {
    for (KernelInfo* k : m->kernels) {
        if (k->name == name) {
            *out = k;
            return OK;
        }
    }
    return NOT_FOUND;
}

void unload_module(Module* m) {
    for (KernelInfo* k : m->kernels) delete k;
    delete m;
}

}  // namespace emu
