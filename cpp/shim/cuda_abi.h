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
