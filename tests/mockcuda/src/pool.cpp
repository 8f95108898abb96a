// Stream-ordered memory pools: each lives on one device, and allocations from it land there
// whatever device the stream belongs to. The frees are the linear ones (cuMemFreeAsync).
#include "entry_points.h"
#include "export.h"
#include "guards.h"
#include "handles.h"
#include "runtime.h"

using mockcuda::Pool;
using mockcuda::Process;

namespace {

// The device's default pool, made on first request; `pool` must be non-null.
CUresult default_pool(CUmemoryPool* pool, CUdevice device) {
    return mockcuda::with_device(pool != nullptr, device, [&](Process& p) {
        if (p.default_pool[device] == nullptr) {
            p.default_pool[device] = new Pool{device};
            p.pools.insert(p.default_pool[device]);
        }
        *pool = reinterpret_cast<CUmemoryPool>(p.default_pool[device]);
        return CUDA_SUCCESS;
    });
}

// Behind cuMemAllocFromPoolAsync and its per-thread variant (neither calls the other).
CUresult alloc_from_pool(CUdeviceptr* dptr, size_t bytesize, CUmemoryPool handle,
                         CUstream hStream) {
    return mockcuda::with_stream(hStream, [&](Process& p, mockcuda::Stream* stream) {
        const Pool* pool = mockcuda::lookup(p.pools, handle);
        if (pool == nullptr) {
            return CUDA_ERROR_INVALID_VALUE;
        }
        return mockcuda::allocate_linear(p, stream->ctx, pool->device, bytesize, dptr);
    });
}

}  // namespace

MOCK_API CUresult cuMemPoolCreate(CUmemoryPool* pool, const CUmemPoolProps* props) {
    return mockcuda::with_initialized([&](Process& p) {
        // Only device-resident pinned pools are simulated.
        if (pool == nullptr || props == nullptr ||
            props->allocType != CU_MEM_ALLOCATION_TYPE_PINNED ||
            props->location.type != CU_MEM_LOCATION_TYPE_DEVICE) {
            return CUDA_ERROR_INVALID_VALUE;
        }
        if (CUresult r = mockcuda::check_device(p, props->location.id)) {
            return r;
        }
        return mockcuda::publish(p.pools, new Pool{props->location.id}, pool);
    });
}

MOCK_API CUresult cuMemPoolDestroy(CUmemoryPool pool) {
    return mockcuda::with_initialized([&](Process& p) {
        // Allocations from the pool stay valid until freed: they do not point back to it.
        for (const Pool* default_one : p.default_pool) {
            if (default_one != nullptr && default_one == reinterpret_cast<Pool*>(pool)) {
                return CUDA_ERROR_INVALID_VALUE;
            }
        }
        return mockcuda::destroy(p.pools, pool, CUDA_ERROR_INVALID_VALUE);
    });
}

MOCK_API CUresult cuDeviceGetDefaultMemPool(CUmemoryPool* pool, CUdevice device) {
    return default_pool(pool, device);
}

// cuDeviceSetMemPool is not simulated, so a device's current pool is its default one.
MOCK_API CUresult cuDeviceGetMemPool(CUmemoryPool* pool, CUdevice device) {
    return default_pool(pool, device);
}

MOCK_API CUresult cuMemAllocFromPoolAsync(CUdeviceptr* dptr, size_t bytesize, CUmemoryPool pool,
                                          CUstream hStream) {
    return alloc_from_pool(dptr, bytesize, pool, hStream);
}

MOCK_API CUresult cuMemAllocFromPoolAsync_ptsz(CUdeviceptr* dptr, size_t bytesize,
                                               CUmemoryPool pool, CUstream hStream) {
    return alloc_from_pool(dptr, bytesize, pool, hStream);
}
