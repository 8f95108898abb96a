// The real driver and NVML behind the hooks, resolved without the hooks ever seeing each other.
#pragma once

#include "config.h"
#include "hooks.h"

namespace tf::shim {

// glibc's dlsym, found with dlvsym so the override in lookup.cpp never calls itself.
void* real_dlsym(void* handle, const char* name) noexcept;

// Opens the real libraries named by `config` and resolves the real function of every hook.
// A library that cannot be opened is reported once; its hooks then answer "not found".
void resolve_real(const Config& config);

// What a hook returns when the real library lacks the function it stands in for.
inline constexpr CUresult kMissingReal = CUDA_ERROR_NOT_FOUND;

// The real function behind `hook`, or null when the library lacks it.
void* real_fn(Hook hook) noexcept;

// Driver and NVML functions the shim calls but does not hook (null when absent).
struct Plain {
  cuCtxGetDevice_fn cuCtxGetDevice = nullptr;
  cuDeviceGetCount_fn cuDeviceGetCount = nullptr;
  cuDeviceGetUuid_fn cuDeviceGetUuid = nullptr;
  cuDeviceGetUuid_fn cuDeviceGetUuid_v2 = nullptr;
  cuEventCreate_fn cuEventCreate = nullptr;
  cuEventDestroy_fn cuEventDestroy_v2 = nullptr;
  cuEventRecord_fn cuEventRecord = nullptr;
  cuEventRecord_fn cuEventRecord_ptsz = nullptr;
  cuEventQuery_fn cuEventQuery = nullptr;
  cuEventElapsedTime_fn cuEventElapsedTime = nullptr;
  // VRAM paging
  cuCtxGetCurrent_fn cuCtxGetCurrent = nullptr;
  cuCtxSetCurrent_fn cuCtxSetCurrent = nullptr;
  cuStreamCreate_fn cuStreamCreate = nullptr;
  cuStreamIsCapturing_fn cuStreamIsCapturing = nullptr;
  cuFuncGetParamInfo_fn cuFuncGetParamInfo = nullptr;
  cuMemGetAllocationGranularity_fn cuMemGetAllocationGranularity = nullptr;
  cuMemAddressReserve_fn cuMemAddressReserve = nullptr;
  cuMemAddressFree_fn cuMemAddressFree = nullptr;
  cuMemMap_fn cuMemMap = nullptr;
  cuMemUnmap_fn cuMemUnmap = nullptr;
  cuMemSetAccess_fn cuMemSetAccess = nullptr;
  cuMemHostAlloc_fn cuMemHostAlloc = nullptr;
  nvmlDeviceGetCount_v2_fn nvmlDeviceGetCount_v2 = nullptr;
  nvmlDeviceGetHandleByIndex_v2_fn nvmlDeviceGetHandleByIndex_v2 = nullptr;
  nvmlDeviceGetUUID_fn nvmlDeviceGetUUID = nullptr;
};
const Plain& plain() noexcept;

}  // namespace tf::shim
