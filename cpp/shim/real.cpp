#include "real.h"

#include <dlfcn.h>

#include <array>
#include <atomic>

#include "log.h"

namespace tf::shim {
namespace {

using DlsymFn = void* (*)(void*, const char*);

// dlsym's public versions, newest first (2.34 moved it into libc; older ones per architecture).
constexpr const char* kDlsymVersions[] = {"GLIBC_2.34", "GLIBC_2.17", "GLIBC_2.2.5"};

DlsymFn find_dlsym() noexcept {
  for (const char* version : kDlsymVersions) {
    if (void* found = dlvsym(RTLD_NEXT, "dlsym", version)) {
      return reinterpret_cast<DlsymFn>(found);
    }
  }
  return nullptr;
}

std::array<void*, kHookCount> g_real{};
Plain g_plain;

void* open_library(const std::string& name, const char* variable) {
  void* handle = dlopen(name.c_str(), RTLD_NOW | RTLD_GLOBAL);
  if (handle == nullptr) {
    const char* why = dlerror();
    warn(std::string(variable) + "=\"" + name + "\" cannot be loaded (" +
         (why != nullptr ? why : "unknown error") + "); its calls pass through unhooked");
  }
  return handle;
}

template <typename Fn>
Fn symbol(void* library, const char* name) {
  return library != nullptr ? reinterpret_cast<Fn>(real_dlsym(library, name)) : nullptr;
}

}  // namespace

void* real_dlsym(void* handle, const char* name) noexcept {
  // Benign race: every thread computes the same pointer.
  static std::atomic<DlsymFn> cached{nullptr};
  DlsymFn fn = cached.load(std::memory_order_acquire);
  if (fn == nullptr) {
    fn = find_dlsym();
    cached.store(fn, std::memory_order_release);
  }
  return fn != nullptr ? fn(handle, name) : nullptr;
}

void resolve_real(const Config& config) {
  void* driver = open_library(config.real_libcuda, "TF_REAL_LIBCUDA");
  // NVML is optional: CUDA-only workloads never load it, so its absence is not reported.
  void* nvml = dlopen(config.real_libnvml.c_str(), RTLD_NOW | RTLD_GLOBAL);
  for (std::size_t i = 0; i < kHookCount; ++i) {
    void* library = kHooks[i].library == Library::driver ? driver : nvml;
    g_real[i] = symbol<void*>(library, kHooks[i].name);
  }
  g_plain.cuCtxGetDevice = symbol<cuCtxGetDevice_fn>(driver, "cuCtxGetDevice");
  g_plain.cuDeviceGetCount = symbol<cuDeviceGetCount_fn>(driver, "cuDeviceGetCount");
  g_plain.cuDeviceGetUuid = symbol<cuDeviceGetUuid_fn>(driver, "cuDeviceGetUuid");
  g_plain.cuDeviceGetUuid_v2 = symbol<cuDeviceGetUuid_fn>(driver, "cuDeviceGetUuid_v2");
  g_plain.cuEventCreate = symbol<cuEventCreate_fn>(driver, "cuEventCreate");
  g_plain.cuEventDestroy_v2 = symbol<cuEventDestroy_fn>(driver, "cuEventDestroy_v2");
  g_plain.cuEventRecord = symbol<cuEventRecord_fn>(driver, "cuEventRecord");
  g_plain.cuEventRecord_ptsz = symbol<cuEventRecord_fn>(driver, "cuEventRecord_ptsz");
  g_plain.cuEventQuery = symbol<cuEventQuery_fn>(driver, "cuEventQuery");
  g_plain.cuEventElapsedTime = symbol<cuEventElapsedTime_fn>(driver, "cuEventElapsedTime");
  g_plain.cuCtxGetCurrent = symbol<cuCtxGetCurrent_fn>(driver, "cuCtxGetCurrent");
  g_plain.cuCtxSetCurrent = symbol<cuCtxSetCurrent_fn>(driver, "cuCtxSetCurrent");
  g_plain.cuStreamCreate = symbol<cuStreamCreate_fn>(driver, "cuStreamCreate");
  g_plain.cuStreamIsCapturing = symbol<cuStreamIsCapturing_fn>(driver, "cuStreamIsCapturing");
  g_plain.cuFuncGetParamInfo = symbol<cuFuncGetParamInfo_fn>(driver, "cuFuncGetParamInfo");
  g_plain.cuMemGetAllocationGranularity =
      symbol<cuMemGetAllocationGranularity_fn>(driver, "cuMemGetAllocationGranularity");
  g_plain.cuMemAddressReserve = symbol<cuMemAddressReserve_fn>(driver, "cuMemAddressReserve");
  g_plain.cuMemAddressFree = symbol<cuMemAddressFree_fn>(driver, "cuMemAddressFree");
  g_plain.cuMemMap = symbol<cuMemMap_fn>(driver, "cuMemMap");
  g_plain.cuMemUnmap = symbol<cuMemUnmap_fn>(driver, "cuMemUnmap");
  g_plain.cuMemSetAccess = symbol<cuMemSetAccess_fn>(driver, "cuMemSetAccess");
  g_plain.cuMemHostAlloc = symbol<cuMemHostAlloc_fn>(driver, "cuMemHostAlloc");
  g_plain.nvmlDeviceGetCount_v2 = symbol<nvmlDeviceGetCount_v2_fn>(nvml, "nvmlDeviceGetCount_v2");
  g_plain.nvmlDeviceGetHandleByIndex_v2 =
      symbol<nvmlDeviceGetHandleByIndex_v2_fn>(nvml, "nvmlDeviceGetHandleByIndex_v2");
  g_plain.nvmlDeviceGetUUID = symbol<nvmlDeviceGetUUID_fn>(nvml, "nvmlDeviceGetUUID");
}

void* real_fn(Hook hook) noexcept { return g_real[static_cast<std::size_t>(hook)]; }

const Plain& plain() noexcept { return g_plain; }

}  // namespace tf::shim
