// Every function the shim replaces: exported under the real name (link-time path) and handed
// out by dlsym and cuGetProcAddress in place of the real one.
#pragma once

#include <cstddef>

#include "cuda_abi.h"

// X(name, library): the hooked functions, one per exported symbol.
#define TF_SHIM_HOOKS(X)                    \
  X(cuGetProcAddress, driver)               \
  X(cuGetProcAddress_v2, driver)            \
  X(cuMemAlloc_v2, driver)                  \
  X(cuMemAllocPitch_v2, driver)             \
  X(cuMemAllocManaged, driver)              \
  X(cuMemAllocAsync, driver)                \
  X(cuMemAllocAsync_ptsz, driver)           \
  X(cuMemAllocFromPoolAsync, driver)        \
  X(cuMemAllocFromPoolAsync_ptsz, driver)   \
  X(cuMemFree_v2, driver)                   \
  X(cuMemFreeAsync, driver)                 \
  X(cuMemFreeAsync_ptsz, driver)            \
  X(cuArrayCreate_v2, driver)               \
  X(cuArray3DCreate_v2, driver)             \
  X(cuArrayDestroy, driver)                 \
  X(cuMemPoolCreate, driver)                \
  X(cuMemPoolDestroy, driver)               \
  X(cuDeviceGetDefaultMemPool, driver)      \
  X(cuDeviceGetMemPool, driver)             \
  X(cuMemCreate, driver)                    \
  X(cuMemRelease, driver)                   \
  X(cuMemGetInfo_v2, driver)                \
  X(cuDeviceTotalMem_v2, driver)            \
  X(cuLaunchKernel, driver)                 \
  X(cuLaunchKernel_ptsz, driver)            \
  X(cuLaunchKernelEx, driver)               \
  X(cuLaunchKernelEx_ptsz, driver)          \
  X(cuLaunchCooperativeKernel, driver)      \
  X(cuLaunchCooperativeKernel_ptsz, driver) \
  X(cuGraphLaunch, driver)                  \
  X(cuGraphLaunch_ptsz, driver)             \
  X(cuMemcpy, driver)                       \
  X(cuMemcpy_ptds, driver)                  \
  X(cuMemcpyHtoD_v2, driver)                \
  X(cuMemcpyHtoD_v2_ptds, driver)           \
  X(cuMemcpyDtoH_v2, driver)                \
  X(cuMemcpyDtoH_v2_ptds, driver)           \
  X(cuMemcpyDtoD_v2, driver)                \
  X(cuMemcpyDtoD_v2_ptds, driver)           \
  X(cuMemcpyAsync, driver)                  \
  X(cuMemcpyAsync_ptsz, driver)             \
  X(cuMemcpyHtoDAsync_v2, driver)           \
  X(cuMemcpyHtoDAsync_v2_ptsz, driver)      \
  X(cuMemcpyDtoHAsync_v2, driver)           \
  X(cuMemcpyDtoHAsync_v2_ptsz, driver)      \
  X(cuMemcpyDtoDAsync_v2, driver)           \
  X(cuMemcpyDtoDAsync_v2_ptsz, driver)      \
  X(cuMemsetD8_v2, driver)                  \
  X(cuMemsetD8_v2_ptds, driver)             \
  X(cuMemsetD16_v2, driver)                 \
  X(cuMemsetD16_v2_ptds, driver)            \
  X(cuMemsetD32_v2, driver)                 \
  X(cuMemsetD32_v2_ptds, driver)            \
  X(cuMemsetD8Async, driver)                \
  X(cuMemsetD8Async_ptsz, driver)           \
  X(cuMemsetD16Async, driver)               \
  X(cuMemsetD16Async_ptsz, driver)          \
  X(cuMemsetD32Async, driver)               \
  X(cuMemsetD32Async_ptsz, driver)          \
  X(cuMemcpy2D_v2, driver)                  \
  X(cuMemcpy2D_v2_ptds, driver)             \
  X(cuMemcpy2DUnaligned_v2, driver)         \
  X(cuMemcpy2DUnaligned_v2_ptds, driver)    \
  X(cuMemcpy2DAsync_v2, driver)             \
  X(cuMemcpy2DAsync_v2_ptsz, driver)        \
  X(cuMemsetD2D8_v2, driver)                \
  X(cuMemsetD2D8_v2_ptds, driver)           \
  X(cuMemsetD2D16_v2, driver)               \
  X(cuMemsetD2D16_v2_ptds, driver)          \
  X(cuMemsetD2D32_v2, driver)               \
  X(cuMemsetD2D32_v2_ptds, driver)          \
  X(cuMemsetD2D8Async, driver)              \
  X(cuMemsetD2D8Async_ptsz, driver)         \
  X(cuMemsetD2D16Async, driver)             \
  X(cuMemsetD2D16Async_ptsz, driver)        \
  X(cuMemsetD2D32Async, driver)             \
  X(cuMemsetD2D32Async_ptsz, driver)        \
  X(cuMemcpyPeer, driver)                   \
  X(cuMemcpyPeer_ptds, driver)              \
  X(cuMemcpyPeerAsync, driver)              \
  X(cuMemcpyPeerAsync_ptsz, driver)         \
  X(cuStreamBeginCapture, driver)           \
  X(cuStreamBeginCapture_ptsz, driver)      \
  X(cuStreamBeginCapture_v2, driver)        \
  X(cuStreamBeginCapture_v2_ptsz, driver)   \
  X(cuStreamEndCapture, driver)             \
  X(cuStreamEndCapture_ptsz, driver)        \
  X(cuIpcGetMemHandle, driver)              \
  X(cuCtxSynchronize, driver)               \
  X(cuStreamSynchronize, driver)            \
  X(cuStreamSynchronize_ptsz, driver)       \
  X(cuEventSynchronize, driver)             \
  X(nvmlDeviceGetMemoryInfo, nvml)          \
  X(nvmlDeviceGetMemoryInfo_v2, nvml)       \
  X(nvmlDeviceGetUtilizationRates, nvml)

#define TF_SHIM_EXPORT __attribute__((visibility("default")))
// For thread_locals read on a hot path: a direct offset from the thread pointer instead of a
// __tls_get_addr call. Fits a library loaded at start-up (LD_PRELOAD), and a few bytes of it
// also fit the static TLS glibc keeps spare for libraries opened later.
#define TF_SHIM_TLS __attribute__((tls_model("initial-exec")))

extern "C" {
TF_SHIM_EXPORT CUresult cuGetProcAddress(const char* symbol, void** pfn, int cudaVersion,
                                         cuuint64_t flags);
TF_SHIM_EXPORT CUresult cuGetProcAddress_v2(const char* symbol, void** pfn, int cudaVersion,
                                            cuuint64_t flags,
                                            CUdriverProcAddressQueryResult* symbolStatus);
TF_SHIM_EXPORT CUresult cuMemAlloc_v2(CUdeviceptr* dptr, std::size_t bytesize);
TF_SHIM_EXPORT CUresult cuMemAllocPitch_v2(CUdeviceptr* dptr, std::size_t* pPitch,
                                           std::size_t WidthInBytes, std::size_t Height,
                                           unsigned int ElementSizeBytes);
TF_SHIM_EXPORT CUresult cuMemAllocManaged(CUdeviceptr* dptr, std::size_t bytesize,
                                          unsigned int flags);
TF_SHIM_EXPORT CUresult cuMemAllocAsync(CUdeviceptr* dptr, std::size_t bytesize,
                                        CUstream hStream);
TF_SHIM_EXPORT CUresult cuMemAllocAsync_ptsz(CUdeviceptr* dptr, std::size_t bytesize,
                                             CUstream hStream);
TF_SHIM_EXPORT CUresult cuMemAllocFromPoolAsync(CUdeviceptr* dptr, std::size_t bytesize,
                                                CUmemoryPool pool, CUstream hStream);
TF_SHIM_EXPORT CUresult cuMemAllocFromPoolAsync_ptsz(CUdeviceptr* dptr, std::size_t bytesize,
                                                     CUmemoryPool pool, CUstream hStream);
TF_SHIM_EXPORT CUresult cuMemFree_v2(CUdeviceptr dptr);
TF_SHIM_EXPORT CUresult cuMemFreeAsync(CUdeviceptr dptr, CUstream hStream);
TF_SHIM_EXPORT CUresult cuMemFreeAsync_ptsz(CUdeviceptr dptr, CUstream hStream);
TF_SHIM_EXPORT CUresult cuArrayCreate_v2(CUarray* pHandle,
                                         const CUDA_ARRAY_DESCRIPTOR* pAllocateArray);
TF_SHIM_EXPORT CUresult cuArray3DCreate_v2(CUarray* pHandle,
                                           const CUDA_ARRAY3D_DESCRIPTOR* pAllocateArray);
TF_SHIM_EXPORT CUresult cuArrayDestroy(CUarray hArray);
TF_SHIM_EXPORT CUresult cuMemPoolCreate(CUmemoryPool* pool, const CUmemPoolProps* poolProps);
TF_SHIM_EXPORT CUresult cuMemPoolDestroy(CUmemoryPool pool);
TF_SHIM_EXPORT CUresult cuDeviceGetDefaultMemPool(CUmemoryPool* pool_out, CUdevice dev);
TF_SHIM_EXPORT CUresult cuDeviceGetMemPool(CUmemoryPool* pool, CUdevice dev);
TF_SHIM_EXPORT CUresult cuMemCreate(CUmemGenericAllocationHandle* handle, std::size_t size,
                                    const CUmemAllocationProp* prop, unsigned long long flags);
TF_SHIM_EXPORT CUresult cuMemRelease(CUmemGenericAllocationHandle handle);
TF_SHIM_EXPORT CUresult cuMemGetInfo_v2(std::size_t* free, std::size_t* total);
TF_SHIM_EXPORT CUresult cuDeviceTotalMem_v2(std::size_t* bytes, CUdevice dev);
TF_SHIM_EXPORT CUresult cuLaunchKernel(CUfunction f, unsigned int gridDimX, unsigned int gridDimY,
                                       unsigned int gridDimZ, unsigned int blockDimX,
                                       unsigned int blockDimY, unsigned int blockDimZ,
                                       unsigned int sharedMemBytes, CUstream hStream,
                                       void** kernelParams, void** extra);
TF_SHIM_EXPORT CUresult cuLaunchKernel_ptsz(CUfunction f, unsigned int gridDimX,
                                            unsigned int gridDimY, unsigned int gridDimZ,
                                            unsigned int blockDimX, unsigned int blockDimY,
                                            unsigned int blockDimZ, unsigned int sharedMemBytes,
                                            CUstream hStream, void** kernelParams, void** extra);
TF_SHIM_EXPORT CUresult cuLaunchKernelEx(const CUlaunchConfig* config, CUfunction f,
                                         void** kernelParams, void** extra);
TF_SHIM_EXPORT CUresult cuLaunchKernelEx_ptsz(const CUlaunchConfig* config, CUfunction f,
                                              void** kernelParams, void** extra);
TF_SHIM_EXPORT CUresult cuLaunchCooperativeKernel(CUfunction f, unsigned int gridDimX,
                                                  unsigned int gridDimY, unsigned int gridDimZ,
                                                  unsigned int blockDimX, unsigned int blockDimY,
                                                  unsigned int blockDimZ,
                                                  unsigned int sharedMemBytes, CUstream hStream,
                                                  void** kernelParams);
TF_SHIM_EXPORT CUresult cuLaunchCooperativeKernel_ptsz(
    CUfunction f, unsigned int gridDimX, unsigned int gridDimY, unsigned int gridDimZ,
    unsigned int blockDimX, unsigned int blockDimY, unsigned int blockDimZ,
    unsigned int sharedMemBytes, CUstream hStream, void** kernelParams);
TF_SHIM_EXPORT CUresult cuGraphLaunch(CUgraphExec hGraphExec, CUstream hStream);
TF_SHIM_EXPORT CUresult cuGraphLaunch_ptsz(CUgraphExec hGraphExec, CUstream hStream);
// Copies and sets: the synchronous ones have a per-thread "_ptds" form, the async "_ptsz".
#define TF_SHIM_COPY_PROTOTYPES(suffix, async_suffix)                                          \
  TF_SHIM_EXPORT CUresult cuMemcpy##suffix(CUdeviceptr dst, CUdeviceptr src, std::size_t bytes); \
  TF_SHIM_EXPORT CUresult cuMemcpyHtoD_v2##suffix(CUdeviceptr dst, const void* src,            \
                                                  std::size_t bytes);                           \
  TF_SHIM_EXPORT CUresult cuMemcpyDtoH_v2##suffix(void* dst, CUdeviceptr src, std::size_t bytes); \
  TF_SHIM_EXPORT CUresult cuMemcpyDtoD_v2##suffix(CUdeviceptr dst, CUdeviceptr src,            \
                                                  std::size_t bytes);                           \
  TF_SHIM_EXPORT CUresult cuMemcpyAsync##async_suffix(CUdeviceptr dst, CUdeviceptr src,         \
                                                      std::size_t bytes, CUstream stream);      \
  TF_SHIM_EXPORT CUresult cuMemcpyHtoDAsync_v2##async_suffix(                                   \
      CUdeviceptr dst, const void* src, std::size_t bytes, CUstream stream);                    \
  TF_SHIM_EXPORT CUresult cuMemcpyDtoHAsync_v2##async_suffix(void* dst, CUdeviceptr src,       \
                                                             std::size_t bytes, CUstream stream); \
  TF_SHIM_EXPORT CUresult cuMemcpyDtoDAsync_v2##async_suffix(                                   \
      CUdeviceptr dst, CUdeviceptr src, std::size_t bytes, CUstream stream);                    \
  TF_SHIM_EXPORT CUresult cuMemsetD8_v2##suffix(CUdeviceptr dst, unsigned char value,          \
                                                std::size_t count);                             \
  TF_SHIM_EXPORT CUresult cuMemsetD16_v2##suffix(CUdeviceptr dst, unsigned short value,        \
                                                 std::size_t count);                            \
  TF_SHIM_EXPORT CUresult cuMemsetD32_v2##suffix(CUdeviceptr dst, unsigned int value,          \
                                                 std::size_t count);                            \
  TF_SHIM_EXPORT CUresult cuMemsetD8Async##async_suffix(CUdeviceptr dst, unsigned char value,  \
                                                        std::size_t count, CUstream stream);    \
  TF_SHIM_EXPORT CUresult cuMemsetD16Async##async_suffix(                                       \
      CUdeviceptr dst, unsigned short value, std::size_t count, CUstream stream);               \
  TF_SHIM_EXPORT CUresult cuMemsetD32Async##async_suffix(CUdeviceptr dst, unsigned int value,  \
                                                         std::size_t count, CUstream stream);
TF_SHIM_COPY_PROTOTYPES(, )
TF_SHIM_COPY_PROTOTYPES(_ptds, _ptsz)
#undef TF_SHIM_COPY_PROTOTYPES
// 2D copies and sets, and copies between devices.
#define TF_SHIM_COPY_2D_PROTOTYPES(suffix, async_suffix)                                        \
  TF_SHIM_EXPORT CUresult cuMemcpy2D_v2##suffix(const CUDA_MEMCPY2D* copy);                     \
  TF_SHIM_EXPORT CUresult cuMemcpy2DUnaligned_v2##suffix(const CUDA_MEMCPY2D* copy);            \
  TF_SHIM_EXPORT CUresult cuMemcpy2DAsync_v2##async_suffix(const CUDA_MEMCPY2D* copy,           \
                                                           CUstream stream);                    \
  TF_SHIM_EXPORT CUresult cuMemsetD2D8_v2##suffix(CUdeviceptr dst, std::size_t pitch,           \
                                                  unsigned char value, std::size_t width,       \
                                                  std::size_t height);                          \
  TF_SHIM_EXPORT CUresult cuMemsetD2D16_v2##suffix(CUdeviceptr dst, std::size_t pitch,          \
                                                   unsigned short value, std::size_t width,     \
                                                   std::size_t height);                         \
  TF_SHIM_EXPORT CUresult cuMemsetD2D32_v2##suffix(CUdeviceptr dst, std::size_t pitch,          \
                                                   unsigned int value, std::size_t width,       \
                                                   std::size_t height);                         \
  TF_SHIM_EXPORT CUresult cuMemsetD2D8Async##async_suffix(                                      \
      CUdeviceptr dst, std::size_t pitch, unsigned char value, std::size_t width,               \
      std::size_t height, CUstream stream);                                                     \
  TF_SHIM_EXPORT CUresult cuMemsetD2D16Async##async_suffix(                                     \
      CUdeviceptr dst, std::size_t pitch, unsigned short value, std::size_t width,              \
      std::size_t height, CUstream stream);                                                     \
  TF_SHIM_EXPORT CUresult cuMemsetD2D32Async##async_suffix(                                     \
      CUdeviceptr dst, std::size_t pitch, unsigned int value, std::size_t width,                \
      std::size_t height, CUstream stream);                                                     \
  TF_SHIM_EXPORT CUresult cuMemcpyPeer##suffix(CUdeviceptr dst, CUcontext dst_context,          \
                                               CUdeviceptr src, CUcontext src_context,          \
                                               std::size_t bytes);                              \
  TF_SHIM_EXPORT CUresult cuMemcpyPeerAsync##async_suffix(                                      \
      CUdeviceptr dst, CUcontext dst_context, CUdeviceptr src, CUcontext src_context,           \
      std::size_t bytes, CUstream stream);
TF_SHIM_COPY_2D_PROTOTYPES(, )
TF_SHIM_COPY_2D_PROTOTYPES(_ptds, _ptsz)
#undef TF_SHIM_COPY_2D_PROTOTYPES
TF_SHIM_EXPORT CUresult cuStreamBeginCapture(CUstream stream);
TF_SHIM_EXPORT CUresult cuStreamBeginCapture_ptsz(CUstream stream);
TF_SHIM_EXPORT CUresult cuStreamBeginCapture_v2(CUstream stream, CUstreamCaptureMode mode);
TF_SHIM_EXPORT CUresult cuStreamBeginCapture_v2_ptsz(CUstream stream, CUstreamCaptureMode mode);
TF_SHIM_EXPORT CUresult cuStreamEndCapture(CUstream stream, CUgraph* graph);
TF_SHIM_EXPORT CUresult cuStreamEndCapture_ptsz(CUstream stream, CUgraph* graph);
TF_SHIM_EXPORT CUresult cuIpcGetMemHandle(CUipcMemHandle* handle, CUdeviceptr dptr);
TF_SHIM_EXPORT CUresult cuCtxSynchronize(void);
TF_SHIM_EXPORT CUresult cuStreamSynchronize(CUstream hStream);
TF_SHIM_EXPORT CUresult cuStreamSynchronize_ptsz(CUstream hStream);
TF_SHIM_EXPORT CUresult cuEventSynchronize(CUevent hEvent);
TF_SHIM_EXPORT nvmlReturn_t nvmlDeviceGetMemoryInfo(nvmlDevice_t device, nvmlMemory_t* memory);
TF_SHIM_EXPORT nvmlReturn_t nvmlDeviceGetMemoryInfo_v2(nvmlDevice_t device,
                                                       nvmlMemory_v2_t* memory);
TF_SHIM_EXPORT nvmlReturn_t nvmlDeviceGetUtilizationRates(nvmlDevice_t device,
                                                          nvmlUtilization_t* utilization);
}

namespace tf::shim {

enum class Library { driver, nvml };

enum class Hook : std::size_t {
#define TF_SHIM_HOOK_ENUM(name, library) name,
  TF_SHIM_HOOKS(TF_SHIM_HOOK_ENUM)
#undef TF_SHIM_HOOK_ENUM
};

#define TF_SHIM_HOOK_COUNT(name, library) +1
inline constexpr std::size_t kHookCount = 0 TF_SHIM_HOOKS(TF_SHIM_HOOK_COUNT);
#undef TF_SHIM_HOOK_COUNT

struct HookInfo {
  const char* name;
  void* hook;
  Library library;
};
// Indexed by Hook.
extern const HookInfo kHooks[kHookCount];

// The hook registered under the exported name `name`, or null.
const HookInfo* find_hook(const char* name) noexcept;

}  // namespace tf::shim
