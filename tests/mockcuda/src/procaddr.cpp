// cuGetProcAddress: the (name, CUDA version) -> entry point map of the real driver for the
// names the mock implements. A caller asking for "cuMemAlloc" at 12.x gets cuMemAlloc_v2; with
// the per-thread flag, the _ptsz/_ptds variant where one exists.
#include <cstring>

#include "config.h"
#include "entry_points.h"
#include "export.h"
#include "mockcuda/mockcuda.h"

namespace {

struct Entry {
    const char* name;
    int version;         // first CUDA version whose callers get `function`
    void* function;      // legacy default stream
    void* per_thread;    // per-thread default stream, or nullptr when the same
};

template <typename F>
void* fn(F* function) {
    return reinterpret_cast<void*>(function);
}

const Entry kEntries[] = {
    {"cuInit", 2000, fn(cuInit), nullptr},
    {"cuDriverGetVersion", 2020, fn(cuDriverGetVersion), nullptr},
    {"cuGetErrorString", 6000, fn(cuGetErrorString), nullptr},
    {"cuGetErrorName", 6000, fn(cuGetErrorName), nullptr},
    {"cuGetProcAddress", 11030, fn(cuGetProcAddress), nullptr},
    {"cuGetProcAddress", 12000, fn(cuGetProcAddress_v2), nullptr},
    {"cuGetExportTable", 3000, fn(cuGetExportTable), nullptr},
    {"cuDeviceGetCount", 2000, fn(cuDeviceGetCount), nullptr},
    {"cuDeviceGet", 2000, fn(cuDeviceGet), nullptr},
    {"cuDeviceGetName", 2000, fn(cuDeviceGetName), nullptr},
    {"cuDeviceGetUuid", 9020, fn(cuDeviceGetUuid), nullptr},
    {"cuDeviceGetUuid", 11040, fn(cuDeviceGetUuid_v2), nullptr},
    {"cuDeviceTotalMem", 3020, fn(cuDeviceTotalMem_v2), nullptr},
    {"cuDeviceGetAttribute", 2000, fn(cuDeviceGetAttribute), nullptr},
    {"cuDevicePrimaryCtxRetain", 7000, fn(cuDevicePrimaryCtxRetain), nullptr},
    {"cuDevicePrimaryCtxRelease", 7000, fn(cuDevicePrimaryCtxRelease), nullptr},
    {"cuDevicePrimaryCtxRelease", 11000, fn(cuDevicePrimaryCtxRelease_v2), nullptr},
    {"cuCtxCreate", 3020, fn(cuCtxCreate_v2), nullptr},
    {"cuCtxCreate", 11040, fn(cuCtxCreate_v3), nullptr},
    {"cuCtxCreate", 12050, fn(cuCtxCreate_v4), nullptr},
    {"cuCtxDestroy", 4000, fn(cuCtxDestroy_v2), nullptr},
    {"cuCtxGetCurrent", 4000, fn(cuCtxGetCurrent), nullptr},
    {"cuCtxSetCurrent", 4000, fn(cuCtxSetCurrent), nullptr},
    {"cuCtxGetDevice", 2000, fn(cuCtxGetDevice), nullptr},
    {"cuCtxSynchronize", 2000, fn(cuCtxSynchronize), nullptr},
    {"cuMemGetInfo", 3020, fn(cuMemGetInfo_v2), nullptr},
    {"cuMemAlloc", 3020, fn(cuMemAlloc_v2), nullptr},
    {"cuMemAllocPitch", 3020, fn(cuMemAllocPitch_v2), nullptr},
    {"cuMemAllocManaged", 6000, fn(cuMemAllocManaged), nullptr},
    {"cuMemAllocAsync", 11020, fn(cuMemAllocAsync), fn(cuMemAllocAsync_ptsz)},
    {"cuMemFreeAsync", 11020, fn(cuMemFreeAsync), fn(cuMemFreeAsync_ptsz)},
    {"cuMemFree", 3020, fn(cuMemFree_v2), nullptr},
    {"cuMemAllocHost", 3020, fn(cuMemAllocHost_v2), nullptr},
    {"cuMemHostAlloc", 2020, fn(cuMemHostAlloc), nullptr},
    {"cuMemFreeHost", 2000, fn(cuMemFreeHost), nullptr},
    {"cuArrayCreate", 3020, fn(cuArrayCreate_v2), nullptr},
    {"cuArray3DCreate", 3020, fn(cuArray3DCreate_v2), nullptr},
    {"cuArrayDestroy", 2000, fn(cuArrayDestroy), nullptr},
    {"cuMemPoolCreate", 11020, fn(cuMemPoolCreate), nullptr},
    {"cuMemPoolDestroy", 11020, fn(cuMemPoolDestroy), nullptr},
    {"cuDeviceGetDefaultMemPool", 11020, fn(cuDeviceGetDefaultMemPool), nullptr},
    {"cuDeviceGetMemPool", 11020, fn(cuDeviceGetMemPool), nullptr},
    {"cuMemAllocFromPoolAsync", 11020, fn(cuMemAllocFromPoolAsync),
     fn(cuMemAllocFromPoolAsync_ptsz)},
    {"cuMemcpyHtoD", 3020, fn(cuMemcpyHtoD_v2), fn(cuMemcpyHtoD_v2_ptds)},
    {"cuMemcpyDtoH", 3020, fn(cuMemcpyDtoH_v2), fn(cuMemcpyDtoH_v2_ptds)},
    {"cuMemcpy", 4000, fn(cuMemcpy), fn(cuMemcpy_ptds)},
    {"cuMemcpyDtoD", 3020, fn(cuMemcpyDtoD_v2), fn(cuMemcpyDtoD_v2_ptds)},
    {"cuMemcpyHtoDAsync", 3020, fn(cuMemcpyHtoDAsync_v2), fn(cuMemcpyHtoDAsync_v2_ptsz)},
    {"cuMemcpyDtoHAsync", 3020, fn(cuMemcpyDtoHAsync_v2), fn(cuMemcpyDtoHAsync_v2_ptsz)},
    {"cuMemcpyDtoDAsync", 3020, fn(cuMemcpyDtoDAsync_v2), fn(cuMemcpyDtoDAsync_v2_ptsz)},
    {"cuMemcpyAsync", 4000, fn(cuMemcpyAsync), fn(cuMemcpyAsync_ptsz)},
    {"cuMemsetD8", 3020, fn(cuMemsetD8_v2), fn(cuMemsetD8_v2_ptds)},
    {"cuMemsetD16", 3020, fn(cuMemsetD16_v2), fn(cuMemsetD16_v2_ptds)},
    {"cuMemsetD32", 3020, fn(cuMemsetD32_v2), fn(cuMemsetD32_v2_ptds)},
    {"cuMemsetD8Async", 3020, fn(cuMemsetD8Async), fn(cuMemsetD8Async_ptsz)},
    {"cuMemsetD16Async", 3020, fn(cuMemsetD16Async), fn(cuMemsetD16Async_ptsz)},
    {"cuMemsetD32Async", 3020, fn(cuMemsetD32Async), fn(cuMemsetD32Async_ptsz)},
    {"cuMemcpy2D", 3020, fn(cuMemcpy2D_v2), fn(cuMemcpy2D_v2_ptds)},
    {"cuMemcpy2DUnaligned", 3020, fn(cuMemcpy2DUnaligned_v2), fn(cuMemcpy2DUnaligned_v2_ptds)},
    {"cuMemcpy2DAsync", 3020, fn(cuMemcpy2DAsync_v2), fn(cuMemcpy2DAsync_v2_ptsz)},
    {"cuMemsetD2D8", 3020, fn(cuMemsetD2D8_v2), fn(cuMemsetD2D8_v2_ptds)},
    {"cuMemsetD2D16", 3020, fn(cuMemsetD2D16_v2), fn(cuMemsetD2D16_v2_ptds)},
    {"cuMemsetD2D32", 3020, fn(cuMemsetD2D32_v2), fn(cuMemsetD2D32_v2_ptds)},
    {"cuMemsetD2D8Async", 3020, fn(cuMemsetD2D8Async), fn(cuMemsetD2D8Async_ptsz)},
    {"cuMemsetD2D16Async", 3020, fn(cuMemsetD2D16Async), fn(cuMemsetD2D16Async_ptsz)},
    {"cuMemsetD2D32Async", 3020, fn(cuMemsetD2D32Async), fn(cuMemsetD2D32Async_ptsz)},
    {"cuMemcpyPeer", 4000, fn(cuMemcpyPeer), fn(cuMemcpyPeer_ptds)},
    {"cuMemcpyPeerAsync", 4000, fn(cuMemcpyPeerAsync), fn(cuMemcpyPeerAsync_ptsz)},
    {"cuIpcGetMemHandle", 4010, fn(cuIpcGetMemHandle), nullptr},
    {"cuPointerGetAttribute", 4000, fn(cuPointerGetAttribute), nullptr},
    {"cuMemGetAllocationGranularity", 10020, fn(cuMemGetAllocationGranularity), nullptr},
    {"cuMemCreate", 10020, fn(cuMemCreate), nullptr},
    {"cuMemRelease", 10020, fn(cuMemRelease), nullptr},
    {"cuMemAddressReserve", 10020, fn(cuMemAddressReserve), nullptr},
    {"cuMemAddressFree", 10020, fn(cuMemAddressFree), nullptr},
    {"cuMemMap", 10020, fn(cuMemMap), nullptr},
    {"cuMemUnmap", 10020, fn(cuMemUnmap), nullptr},
    {"cuMemSetAccess", 10020, fn(cuMemSetAccess), nullptr},
    {"cuStreamCreate", 2000, fn(cuStreamCreate), nullptr},
    {"cuStreamDestroy", 4000, fn(cuStreamDestroy_v2), nullptr},
    {"cuStreamSynchronize", 2000, fn(cuStreamSynchronize), fn(cuStreamSynchronize_ptsz)},
    {"cuStreamQuery", 2000, fn(cuStreamQuery), fn(cuStreamQuery_ptsz)},
    {"cuStreamBeginCapture", 10010, fn(cuStreamBeginCapture_v2),
     fn(cuStreamBeginCapture_v2_ptsz)},
    {"cuStreamEndCapture", 10000, fn(cuStreamEndCapture), fn(cuStreamEndCapture_ptsz)},
    {"cuStreamIsCapturing", 10000, fn(cuStreamIsCapturing), fn(cuStreamIsCapturing_ptsz)},
    {"cuEventCreate", 2000, fn(cuEventCreate), nullptr},
    {"cuEventDestroy", 4000, fn(cuEventDestroy_v2), nullptr},
    {"cuEventRecord", 2000, fn(cuEventRecord), fn(cuEventRecord_ptsz)},
    {"cuEventQuery", 2000, fn(cuEventQuery), nullptr},
    {"cuEventSynchronize", 2000, fn(cuEventSynchronize), nullptr},
    {"cuEventElapsedTime", 2000, fn(cuEventElapsedTime), nullptr},
    {"cuEventElapsedTime", 12080, fn(cuEventElapsedTime_v2), nullptr},
    {"cuModuleLoadData", 2000, fn(cuModuleLoadData), nullptr},
    {"cuModuleUnload", 2000, fn(cuModuleUnload), nullptr},
    {"cuModuleGetFunction", 2000, fn(cuModuleGetFunction), nullptr},
    {"cuFuncGetParamInfo", 12040, fn(cuFuncGetParamInfo), nullptr},
    {"cuLaunchKernel", 4000, fn(cuLaunchKernel), fn(cuLaunchKernel_ptsz)},
    {"cuLaunchKernelEx", 11060, fn(cuLaunchKernelEx), fn(cuLaunchKernelEx_ptsz)},
    {"cuLaunchCooperativeKernel", 9000, fn(cuLaunchCooperativeKernel),
     fn(cuLaunchCooperativeKernel_ptsz)},
    {"cuGraphCreate", 10000, fn(cuGraphCreate), nullptr},
    {"cuGraphDestroy", 10000, fn(cuGraphDestroy), nullptr},
    {"cuGraphAddKernelNode", 12000, fn(cuGraphAddKernelNode_v2), nullptr},
    {"cuGraphInstantiate", 10000, fn(cuGraphInstantiate), nullptr},
    {"cuGraphInstantiate", 11000, fn(cuGraphInstantiate_v2), nullptr},
    {"cuGraphInstantiateWithFlags", 11040, fn(cuGraphInstantiateWithFlags), nullptr},
    {"cuGraphExecDestroy", 10000, fn(cuGraphExecDestroy), nullptr},
    {"cuGraphLaunch", 10000, fn(cuGraphLaunch), fn(cuGraphLaunch_ptsz)},
};

constexpr cuuint64_t kKnownFlags =
    CU_GET_PROC_ADDRESS_LEGACY_STREAM | CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM;

// Behind both signatures of cuGetProcAddress (neither calls the other: a call through an
// exported name could be interposed by a preloaded library). Entries newer than the simulated
// driver (MOCKCUDA_DRIVER_VERSION) are not in it at all.
CUresult resolve(const char* symbol, void** pfn, int cudaVersion, cuuint64_t flags,
                 CUdriverProcAddressQueryResult* symbolStatus) {
    if (symbol == nullptr || pfn == nullptr || (flags & ~kKnownFlags) != 0) {
        return CUDA_ERROR_INVALID_VALUE;
    }
    *pfn = nullptr;
    const Entry* best = nullptr;
    bool named = false;
    const int driver = mockcuda::driver_version();
    for (const Entry& entry : kEntries) {
        if (entry.version > driver || std::strcmp(entry.name, symbol) != 0) {
            continue;
        }
        named = true;
        if (entry.version <= cudaVersion && (best == nullptr || entry.version > best->version)) {
            best = &entry;
        }
    }
    if (best == nullptr) {
        if (symbolStatus != nullptr) {
            *symbolStatus = named ? CU_GET_PROC_ADDRESS_VERSION_NOT_SUFFICIENT
                                  : CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND;
        }
        return CUDA_ERROR_NOT_FOUND;
    }
    const bool per_thread = (flags & CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM) != 0;
    *pfn = per_thread && best->per_thread != nullptr ? best->per_thread : best->function;
    if (symbolStatus != nullptr) {
        *symbolStatus = CU_GET_PROC_ADDRESS_SUCCESS;
    }
    return CUDA_SUCCESS;
}

}  // namespace

MOCK_API CUresult cuGetProcAddress_v2(const char* symbol, void** pfn, int cudaVersion,
                                      cuuint64_t flags,
                                      CUdriverProcAddressQueryResult* symbolStatus) {
    return resolve(symbol, pfn, cudaVersion, flags, symbolStatus);
}

MOCK_API CUresult cuGetProcAddress(const char* symbol, void** pfn, int cudaVersion,
                                   cuuint64_t flags) {
    return resolve(symbol, pfn, cudaVersion, flags, nullptr);
}

// The runtime's private tables are not simulated; callers fall back as on a driver that
// lacks a table.
MOCK_API CUresult cuGetExportTable(const void** table, const CUuuid* tableId) {
    if (table == nullptr || tableId == nullptr) {
        return CUDA_ERROR_INVALID_VALUE;
    }
    *table = nullptr;
    return CUDA_ERROR_NOT_SUPPORTED;
}
