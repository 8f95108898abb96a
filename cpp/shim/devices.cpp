#include "devices.h"

#include <strings.h>

#include <array>
#include <atomic>
#include <new>

#include "real.h"

namespace tf::shim {
namespace {

constexpr int kDevicesUnknown = -2;  // not asked yet, or the driver was not ready to answer
constexpr int kSeveralDevices = -1;

// The sole visible device (0), kSeveralDevices, or kDevicesUnknown.
std::atomic<int> g_sole_device{kDevicesUnknown};

// The NVML handle of each CUDA ordinal (null: none carries its UUID). Built once, then only
// read: published through g_nvml_of_ordinal, never freed.
struct NvmlHandles {
  std::array<nvmlDevice_t, kMaxDevices> of_ordinal{};
};
std::atomic<const NvmlHandles*> g_nvml_of_ordinal{nullptr};

constexpr unsigned int kUuidSize = NVML_DEVICE_UUID_V2_BUFFER_SIZE;
using UuidText = std::array<char, kUuidSize>;

// A driver UUID as NVML writes a GPU's: "GPU-" then 32 hex digits grouped 8-4-4-4-12.
UuidText nvml_text(const CUuuid& uuid) noexcept {
  constexpr char kHex[] = "0123456789abcdef";
  UuidText text{'G', 'P', 'U', '-'};
  std::size_t at = 4;
  for (std::size_t i = 0; i < sizeof uuid.bytes; ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) {
      text[at++] = '-';
    }
    const auto byte = static_cast<unsigned char>(uuid.bytes[i]);
    text[at++] = kHex[byte >> 4];
    text[at++] = kHex[byte & 0xf];
  }
  return text;  // zero-filled past the last digit
}

// The NVML device whose UUID is `uuid`, or null.
nvmlDevice_t nvml_device_of(const CUuuid& uuid, unsigned int nvml_count) noexcept {
  const UuidText wanted = nvml_text(uuid);
  for (unsigned int index = 0; index < nvml_count; ++index) {
    nvmlDevice_t handle = nullptr;
    UuidText text{};
    if (plain().nvmlDeviceGetHandleByIndex_v2(index, &handle) == NVML_SUCCESS &&
        plain().nvmlDeviceGetUUID(handle, text.data(), kUuidSize) == NVML_SUCCESS &&
        strcasecmp(text.data(), wanted.data()) == 0) {
      return handle;
    }
  }
  return nullptr;
}

// Matches every visible CUDA device to its NVML device; null while the driver or NVML cannot
// say (not initialised, or lacking a function).
const NvmlHandles* match_devices() noexcept {
  const Plain& real = plain();
  // cuDeviceGetUuid names the physical GPU, as NVML's handles do (_v2 names a MIG instance).
  const cuDeviceGetUuid_fn uuid_of =
      real.cuDeviceGetUuid != nullptr ? real.cuDeviceGetUuid : real.cuDeviceGetUuid_v2;
  int cuda_count = 0;
  unsigned int nvml_count = 0;
  if (uuid_of == nullptr || real.cuDeviceGetCount == nullptr ||
      real.nvmlDeviceGetCount_v2 == nullptr || real.nvmlDeviceGetHandleByIndex_v2 == nullptr ||
      real.nvmlDeviceGetUUID == nullptr || real.cuDeviceGetCount(&cuda_count) != CUDA_SUCCESS ||
      real.nvmlDeviceGetCount_v2(&nvml_count) != NVML_SUCCESS) {
    return nullptr;
  }
  auto* matched = new (std::nothrow) NvmlHandles();
  if (matched == nullptr) {
    return nullptr;
  }
  for (int ordinal = 0; ordinal < cuda_count && ordinal < kMaxDevices; ++ordinal) {
    CUuuid uuid{};
    if (uuid_of(&uuid, ordinal) == CUDA_SUCCESS) {  // a CUdevice is its ordinal
      matched->of_ordinal[static_cast<std::size_t>(ordinal)] = nvml_device_of(uuid, nvml_count);
    }
  }
  return matched;
}

// The match, made on first use; no lock: racing threads each match, the first to publish wins.
const NvmlHandles* nvml_handles() noexcept {
  const NvmlHandles* known = g_nvml_of_ordinal.load(std::memory_order_acquire);
  if (known != nullptr) {
    return known;
  }
  const NvmlHandles* matched = match_devices();
  if (matched == nullptr) {
    return nullptr;  // asked again next time
  }
  if (g_nvml_of_ordinal.compare_exchange_strong(known, matched, std::memory_order_acq_rel,
                                                std::memory_order_acquire)) {
    return matched;
  }
  delete matched;  // another thread published the same answer first
  return known;
}

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
  const NvmlHandles* handles = nvml_handles();
  if (handles == nullptr || device == nullptr) {
    return -1;
  }
  for (std::size_t ordinal = 0; ordinal < handles->of_ordinal.size(); ++ordinal) {
    if (handles->of_ordinal[ordinal] == device) {
      return static_cast<int>(ordinal);
    }
  }
  return -1;
}

}  // namespace tf::shim
