// The built-in kernels: cuModuleGetFunction hands them out by name, and a launch really reads
// and writes the memory its pointer parameters name, so work on memory the device may not
// touch fails as on a GPU.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace mockcuda {

struct KernelParam {
    size_t offset;
    size_t size;
};

// Whether the device may touch [ptr, ptr + bytes).
using RangeCheck = std::function<bool(uint64_t ptr, uint64_t bytes)>;

struct Kernel {
    const char* name;
    std::vector<KernelParam> params;  // the layout cuFuncGetParamInfo reports
    // Runs on the packed parameter values: checks every range it touches, then computes;
    // false, with nothing written, when a check fails.
    bool (*run)(const unsigned char* args, const RangeCheck& check);

    size_t args_size() const { return params.back().offset + params.back().size; }
};

// The built-in kernel called `name`, or nullptr.
const Kernel* find_kernel(const std::string& name);

}  // namespace mockcuda
