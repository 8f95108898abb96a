// The virtual device every memory query reports: total = the limit, used = the worker's
// charged bytes, free = what is left of the limit (never more than the card really has free).
#include <algorithm>
#include <type_traits>

#include "charging.h"

namespace {

using tf::shim::Budget;
using tf::shim::nvml_ordinal;
using tf::shim::state;

struct Virtual {
  std::uint64_t total;
  std::uint64_t used;
  std::uint64_t free;
};

Virtual virtual_view(Budget& budget, std::uint64_t real_free) {
  const std::uint64_t total = budget.limit();
  const std::uint64_t used = budget.used();
  return Virtual{total, used, std::min(total - std::min(used, total), real_free)};
}

// Either NVML memory query, rewritten to the virtual device when the device is limited.
template <typename Memory>
nvmlReturn_t nvml_memory(nvmlReturn_t (*real)(nvmlDevice_t, Memory*), nvmlDevice_t device,
                         Memory* memory) {
  if (real == nullptr) {
    return NVML_ERROR_FUNCTION_NOT_FOUND;
  }
  const nvmlReturn_t result = real(device, memory);
  Budget* budget = state().enforced(nvml_ordinal(device));
  if (result == NVML_SUCCESS && budget != nullptr) {
    const Virtual view = virtual_view(*budget, memory->free);
    memory->total = view.total;
    memory->free = view.free;
    memory->used = view.used;
    if constexpr (std::is_same_v<Memory, nvmlMemory_v2_t>) {
      memory->reserved = 0;  // the driver's reservation is outside the worker's limit
    }
  }
  return result;
}

}  // namespace

extern "C" {

CUresult cuMemGetInfo_v2(std::size_t* free, std::size_t* total) {
  const auto real = TF_REAL(cuMemGetInfo_v2);
  if (real == nullptr) {
    return tf::shim::kMissingReal;
  }
  const CUresult result = real(free, total);
  Budget* budget = state().enforced(tf::shim::current_device());
  if (result == CUDA_SUCCESS && budget != nullptr) {
    const Virtual view = virtual_view(*budget, *free);
    *free = view.free;
    *total = view.total;
  }
  return result;
}

CUresult cuDeviceTotalMem_v2(std::size_t* bytes, CUdevice dev) {
  const auto real = TF_REAL(cuDeviceTotalMem_v2);
  if (real == nullptr) {
    return tf::shim::kMissingReal;
  }
  const CUresult result = real(bytes, dev);
  Budget* budget = state().enforced(dev);
  if (result == CUDA_SUCCESS && budget != nullptr) {
    *bytes = budget->limit();
  }
  return result;
}

nvmlReturn_t nvmlDeviceGetMemoryInfo(nvmlDevice_t device, nvmlMemory_t* memory) {
  return nvml_memory(TF_REAL(nvmlDeviceGetMemoryInfo), device, memory);
}

nvmlReturn_t nvmlDeviceGetMemoryInfo_v2(nvmlDevice_t device, nvmlMemory_v2_t* memory) {
  return nvml_memory(TF_REAL(nvmlDeviceGetMemoryInfo_v2), device, memory);
}

}  // extern "C"
