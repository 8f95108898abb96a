// The subset of the CUDA driver and NVML C ABI the shim intercepts or calls, declared here so
// the shim builds without the CUDA toolkit. Values and layouts follow the driver's headers.
#pragma once

#include <cstddef>
#include <cstdint>

extern "C" {

// --- driver --------------------------------------------------------------------------------
using CUresult = int;
inline constexpr CUresult CUDA_SUCCESS = 0;
inline constexpr CUresult CUDA_ERROR_INVALID_VALUE = 1;
inline constexpr CUresult CUDA_ERROR_OUT_OF_MEMORY = 2;
inline constexpr CUresult CUDA_ERROR_NOT_FOUND = 500;
inline constexpr CUresult CUDA_ERROR_NOT_READY = 600;
inline constexpr CUresult CUDA_ERROR_NOT_SUPPORTED = 801;
inline constexpr CUresult CUDA_ERROR_STREAM_CAPTURE_INVALIDATED = 901;

using CUdevice = int;
using CUdeviceptr = std::uintptr_t;
using CUmemGenericAllocationHandle = unsigned long long;
using cuuint64_t = std::uint64_t;
using CUarray = struct CUarray_st*;
using CUstream = struct CUstream_st*;
using CUmemoryPool = struct CUmemPoolHandle_st*;
using CUfunction = struct CUfunc_st*;
using CUgraphExec = struct CUgraphExec_st*;
using CUevent = struct CUevent_st*;
using CUlaunchAttribute = struct CUlaunchAttribute_st;
using CUgraph = struct CUgraph_st*;
using CUcontext = struct CUctx_st*;
using CUstreamCaptureMode = int;
using CUstreamCaptureStatus = int;
inline constexpr CUstreamCaptureStatus CU_STREAM_CAPTURE_STATUS_NONE = 0;
inline constexpr unsigned int CU_STREAM_NON_BLOCKING = 1;
// cuMemcpy2D's description of a copy; memory types HOST 1, DEVICE 2, ARRAY 3, UNIFIED 4.
inline constexpr int CU_MEMORYTYPE_DEVICE = 2;
inline constexpr int CU_MEMORYTYPE_UNIFIED = 4;
struct CUDA_MEMCPY2D {
  std::size_t srcXInBytes;
  std::size_t srcY;
  int srcMemoryType;
  const void* srcHost;
  CUdeviceptr srcDevice;
  CUarray srcArray;
  std::size_t srcPitch;
  std::size_t dstXInBytes;
  std::size_t dstY;
  int dstMemoryType;
  void* dstHost;
  CUdeviceptr dstDevice;
  CUarray dstArray;
  std::size_t dstPitch;
  std::size_t WidthInBytes;
  std::size_t Height;
};
struct CUipcMemHandle {
  char reserved[64];
};

// cuLaunchKernel's `extra`: key, value pairs ending with CU_LAUNCH_PARAM_END.
#define TF_LAUNCH_PARAM(value) reinterpret_cast<void*>(static_cast<std::uintptr_t>(value))
inline void* const CU_LAUNCH_PARAM_END = TF_LAUNCH_PARAM(0);
inline void* const CU_LAUNCH_PARAM_BUFFER_POINTER = TF_LAUNCH_PARAM(1);
inline void* const CU_LAUNCH_PARAM_BUFFER_SIZE = TF_LAUNCH_PARAM(2);
#undef TF_LAUNCH_PARAM

struct CUlaunchConfig {
  unsigned int gridDimX;
  unsigned int gridDimY;
  unsigned int gridDimZ;
  unsigned int blockDimX;
  unsigned int blockDimY;
  unsigned int blockDimZ;
  unsigned int sharedMemBytes;
  CUstream hStream;
  CUlaunchAttribute* attrs;
  unsigned int numAttrs;
};

// cuGetProcAddress flags: the caller asks for the per-thread default stream variants.
inline constexpr cuuint64_t CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM = 1ULL << 1;
using CUdriverProcAddressQueryResult = int;

using CUarray_format = int;
struct CUDA_ARRAY_DESCRIPTOR {
  std::size_t Width;
  std::size_t Height;
  CUarray_format Format;
  unsigned int NumChannels;
};

struct CUDA_ARRAY3D_DESCRIPTOR {
  std::size_t Width;
  std::size_t Height;
  std::size_t Depth;
  CUarray_format Format;
  unsigned int NumChannels;
  unsigned int Flags;
};

inline constexpr int CU_MEM_LOCATION_TYPE_DEVICE = 1;
inline constexpr int CU_MEM_ALLOCATION_TYPE_PINNED = 1;
inline constexpr int CU_MEM_ALLOC_GRANULARITY_MINIMUM = 0;
inline constexpr unsigned long long CU_MEM_ACCESS_FLAGS_PROT_READWRITE = 3;
inline constexpr unsigned int CU_MEMHOSTALLOC_PORTABLE = 1;
struct CUmemLocation {
  int type;
  int id;
};
struct CUmemPoolProps {
  int allocType;
  int handleTypes;
  CUmemLocation location;
  void* win32SecurityAttributes;
  std::size_t maxSize;
  unsigned short usage;
  unsigned char reserved[54];
};
struct CUmemAllocationProp {
  int type;
  int requestedHandleTypes;
  CUmemLocation location;
  void* win32HandleMetaData;
  struct {
    unsigned char compressionType;
    unsigned char gpuDirectRDMACapable;
    unsigned short usage;
    unsigned char reserved[4];
  } allocFlags;
};

struct CUmemAccessDesc {
  CUmemLocation location;
  unsigned long long flags;
};

struct CUuuid {
  char bytes[16];
};

// Driver functions the shim calls without hooking them.
using cuCtxGetDevice_fn = CUresult (*)(CUdevice*);
using cuDeviceGetCount_fn = CUresult (*)(int*);
using cuDeviceGetUuid_fn = CUresult (*)(CUuuid*, CUdevice);  // also cuDeviceGetUuid_v2
using cuEventCreate_fn = CUresult (*)(CUevent*, unsigned int);
using cuEventDestroy_fn = CUresult (*)(CUevent);
using cuEventRecord_fn = CUresult (*)(CUevent, CUstream);
using cuEventQuery_fn = CUresult (*)(CUevent);
using cuEventElapsedTime_fn = CUresult (*)(float*, CUevent, CUevent);
using cuCtxSynchronize_fn = CUresult (*)();
using cuCtxGetCurrent_fn = CUresult (*)(CUcontext*);
using cuCtxSetCurrent_fn = CUresult (*)(CUcontext);
using cuStreamCreate_fn = CUresult (*)(CUstream*, unsigned int);
using cuStreamSynchronize_fn = CUresult (*)(CUstream);
using cuStreamIsCapturing_fn = CUresult (*)(CUstream, CUstreamCaptureStatus*);
using cuFuncGetParamInfo_fn = CUresult (*)(CUfunction, std::size_t, std::size_t*, std::size_t*);
using cuMemGetAllocationGranularity_fn = CUresult (*)(std::size_t*, const CUmemAllocationProp*,
                                                      int);
using cuMemAddressReserve_fn = CUresult (*)(CUdeviceptr*, std::size_t, std::size_t, CUdeviceptr,
                                            unsigned long long);
using cuMemAddressFree_fn = CUresult (*)(CUdeviceptr, std::size_t);
using cuMemMap_fn = CUresult (*)(CUdeviceptr, std::size_t, std::size_t,
                                 CUmemGenericAllocationHandle, unsigned long long);
using cuMemUnmap_fn = CUresult (*)(CUdeviceptr, std::size_t);
using cuMemSetAccess_fn = CUresult (*)(CUdeviceptr, std::size_t, const CUmemAccessDesc*,
                                       std::size_t);
using cuMemHostAlloc_fn = CUresult (*)(void**, std::size_t, unsigned int);
using cuMemcpyDtoHAsync_fn = CUresult (*)(void*, CUdeviceptr, std::size_t, CUstream);
using cuMemcpyHtoDAsync_fn = CUresult (*)(CUdeviceptr, const void*, std::size_t, CUstream);

// --- NVML ----------------------------------------------------------------------------------
using nvmlReturn_t = int;
inline constexpr nvmlReturn_t NVML_SUCCESS = 0;
inline constexpr nvmlReturn_t NVML_ERROR_FUNCTION_NOT_FOUND = 13;
using nvmlDevice_t = struct nvmlDevice_st*;

struct nvmlMemory_t {
  unsigned long long total;
  unsigned long long free;
  unsigned long long used;
};
struct nvmlUtilization_t {
  unsigned int gpu;     // percent of the sample period a kernel was running
  unsigned int memory;  // percent of it device memory was read or written
};
struct nvmlMemory_v2_t {
  unsigned int version;
  unsigned long long total;
  unsigned long long reserved;
  unsigned long long free;
  unsigned long long used;
};

// Room for any UUID nvmlDeviceGetUUID writes (NVML_DEVICE_UUID_V2_BUFFER_SIZE).
inline constexpr unsigned int NVML_DEVICE_UUID_V2_BUFFER_SIZE = 96;

using nvmlDeviceGetCount_v2_fn = nvmlReturn_t (*)(unsigned int*);
using nvmlDeviceGetHandleByIndex_v2_fn = nvmlReturn_t (*)(unsigned int, nvmlDevice_t*);
using nvmlDeviceGetUUID_fn = nvmlReturn_t (*)(nvmlDevice_t, char*, unsigned int);

}  // extern "C"
