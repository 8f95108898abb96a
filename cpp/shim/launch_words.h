// Which 8-byte words of a launch's parameters could be device pointers, so the allocations a
// kernel touches can be made resident before it runs.
#pragma once

#include <cstddef>
#include <cstdint>

#include "cuda_abi.h"

namespace tf::shim {

struct LaunchWords {
  // 4 KiB of parameters; a launch with more (CUDA >= 12.1 allows 32 KiB) takes the fallback.
  static constexpr std::size_t kMax = 512;
  std::uint64_t words[kMax];
  std::size_t count = 0;
};

// Fills `out` from `extra`'s parameter buffer, or from `params` laid out as cuFuncGetParamInfo
// says. False when the layout cannot be known (a driver before 12.4, a handle it does not
// describe): the caller must then assume the kernel may touch anything.
bool launch_words(CUfunction f, void** params, void** extra, LaunchWords& out);

}  // namespace tf::shim
