// Stream-ordered memory pools: an allocation from a pool lands on the pool's device, whichever
// context is current, so the shim notes each pool's device where a pool handle comes from
// (created with its location, or a device's default or current pool) and charges there.
#include "charging.h"

namespace tf::shim {
namespace {

std::uint64_t key_of(CUmemoryPool pool) { return reinterpret_cast<std::uintptr_t>(pool); }

// Notes that allocations from `pool` land on `device` (-1: on none, not VRAM).
void remember(CUmemoryPool pool, CUdevice device) {
  state().ledger.remember(Space::pool, key_of(pool), Record{0, shm::Kind::device, device});
}

// Where allocations from `pool` land. A pool the shim never saw (imported from another
// process) is taken to be on the current device.
int device_of(CUmemoryPool pool) {
  const std::optional<Record> record = state().ledger.find(Space::pool, key_of(pool));
  return record ? record->device : current_device();
}

CUresult alloc_from_pool(decltype(&cuMemAllocFromPoolAsync) real, CUdeviceptr* dptr,
                         std::size_t bytesize, CUmemoryPool pool, CUstream stream) {
  if (real == nullptr) {
    return kMissingReal;
  }
  return charged(Space::pointer, Record{bytesize, shm::Kind::device, device_of(pool)},
                 storing(dptr, [&] { return real(dptr, bytesize, pool, stream); }));
}

// cuDeviceGetDefaultMemPool / cuDeviceGetMemPool: a device's pool is on that device.
CUresult device_pool(CUresult (*real)(CUmemoryPool*, CUdevice), CUmemoryPool* pool,
                     CUdevice dev) {
  if (real == nullptr) {
    return kMissingReal;
  }
  const CUresult result = real(pool, dev);
  if (result == CUDA_SUCCESS) {
    remember(*pool, dev);
  }
  return result;
}

}  // namespace
}  // namespace tf::shim

using tf::shim::kMissingReal;

extern "C" {

CUresult cuMemPoolCreate(CUmemoryPool* pool, const CUmemPoolProps* poolProps) {
  const auto real = TF_REAL(cuMemPoolCreate);
  if (real == nullptr) {
    return kMissingReal;
  }
  const CUresult result = real(pool, poolProps);
  if (result == CUDA_SUCCESS) {
    // A pool in host memory (any other location type) holds no VRAM: charged to no device.
    const CUmemLocation& where = poolProps->location;
    tf::shim::remember(*pool, where.type == CU_MEM_LOCATION_TYPE_DEVICE ? where.id : -1);
  }
  return result;
}

CUresult cuMemPoolDestroy(CUmemoryPool pool) {
  const auto real = TF_REAL(cuMemPoolDestroy);
  if (real == nullptr) {
    return kMissingReal;
  }
  // The pool's allocations stay valid, each in the ledger under its pointer, until freed; the
  // pool's own record charged nothing, so nothing is credited.
  return tf::shim::unrecorded(tf::shim::Space::pool, tf::shim::key_of(pool),
                              [&] { return real(pool); }, [](const tf::shim::Record&) {});
}

CUresult cuDeviceGetDefaultMemPool(CUmemoryPool* pool_out, CUdevice dev) {
  return tf::shim::device_pool(TF_REAL(cuDeviceGetDefaultMemPool), pool_out, dev);
}

CUresult cuDeviceGetMemPool(CUmemoryPool* pool, CUdevice dev) {
  return tf::shim::device_pool(TF_REAL(cuDeviceGetMemPool), pool, dev);
}

CUresult cuMemAllocFromPoolAsync(CUdeviceptr* dptr, std::size_t bytesize, CUmemoryPool pool,
                                 CUstream hStream) {
  return tf::shim::alloc_from_pool(TF_REAL(cuMemAllocFromPoolAsync), dptr, bytesize, pool,
                                   hStream);
}

CUresult cuMemAllocFromPoolAsync_ptsz(CUdeviceptr* dptr, std::size_t bytesize, CUmemoryPool pool,
                                      CUstream hStream) {
  return tf::shim::alloc_from_pool(TF_REAL(cuMemAllocFromPoolAsync_ptsz), dptr, bytesize, pool,
                                   hStream);
}

}  // extern "C"
