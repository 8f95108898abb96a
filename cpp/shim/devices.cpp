#include "devices.h"

#include <atomic>

#include "real.h"

namespace tf::shim {
namespace {

constexpr int kDevicesUnknown = -2;  // not asked yet, or the driver was not ready to answer
constexpr int kSeveralDevices = -1;

// The sole visible device (0), kSeveralDevices, or kDevicesUnknown.
std::atomic<int> g_sole_device{kDevicesUnknown};

}  // namespace

int current_device() noexcept {
  const cuCtxGetDevice_fn get = plain().cuCtxGetDevice;
  CUdevice device = -1;
  return (get != nullptr && get(&device) == CUDA_SUCCESS) ? device : -1;
}

int launch_device() noexcept {
  int sole = g_sole_device.load(std::memory_order_relaxed);
  if (sole == kDevicesUnknown) {
    // Benign race: every thread reaches the same answer.
    const cuDeviceGetCount_fn count_of = plain().cuDeviceGetCount;
    int count = 0;
    if (count_of != nullptr && count_of(&count) == CUDA_SUCCESS) {
      sole = count == 1 ? 0 : kSeveralDevices;
      g_sole_device.store(sole, std::memory_order_relaxed);
    }
  }
  return sole >= 0 ? sole : current_device();
}

int nvml_ordinal(nvmlDevice_t device) noexcept {
  const auto count_of = plain().nvmlDeviceGetCount_v2;
  const auto handle_of = plain().nvmlDeviceGetHandleByIndex_v2;
  unsigned int count = 0;
  if (count_of == nullptr || handle_of == nullptr || count_of(&count) != NVML_SUCCESS) {
    return -1;
  }
  for (unsigned int index = 0; index < count; ++index) {
    nvmlDevice_t handle = nullptr;
    if (handle_of(index, &handle) == NVML_SUCCESS && handle == device) {
      return static_cast<int>(index);
    }
  }
  return -1;
}

}  // namespace tf::shim
