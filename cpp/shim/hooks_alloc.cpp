// Every VRAM allocation and free path, charged and credited through charging.h.
#include <limits>
#include <optional>

#include "charging.h"

namespace {

using tf::shim::charged;
using tf::shim::current_device;
using tf::shim::kMissingReal;
using tf::shim::Record;
using tf::shim::released;
using tf::shim::Space;
using tf::shim::storing;
using Kind = tf::shm::Kind;

constexpr std::uint64_t kSaturated = std::numeric_limits<std::uint64_t>::max();

// a * b, or the largest value (which no limit admits) when it overflows.
std::uint64_t product(std::uint64_t a, std::uint64_t b) {
  std::uint64_t out = 0;
  return __builtin_mul_overflow(a, b, &out) ? kSaturated : out;
}

// Bytes per channel of an array format; formats of other layouts (block-compressed, YUV) are
// charged 4, at least what they occupy.
std::uint64_t channel_bytes(CUarray_format format) {
  switch (format) {
    case 0x01: case 0x08: case 0xc0: case 0xc1: case 0xc2: case 0xc6: case 0xc7: case 0xc8:
      return 1;
    case 0x02: case 0x09: case 0x10: case 0xc3: case 0xc4: case 0xc5: case 0xc9: case 0xca:
    case 0xcb:
      return 2;
    default:
      return 4;
  }
}

std::uint64_t array_bytes(const CUDA_ARRAY3D_DESCRIPTOR& desc) {
  // A 1D array has height 0, a 1D or 2D one depth 0 (layers and cubemap faces are in depth).
  const std::uint64_t rows = desc.Height == 0 ? 1 : desc.Height;
  const std::uint64_t planes = desc.Depth == 0 ? 1 : desc.Depth;
  return product(product(product(desc.Width, rows), planes),
                 product(desc.NumChannels, channel_bytes(desc.Format)));
}

// A 2D array's shape as a 3D one of depth 0.
CUDA_ARRAY3D_DESCRIPTOR shape_of(const CUDA_ARRAY_DESCRIPTOR& desc) {
  return CUDA_ARRAY3D_DESCRIPTOR{desc.Width, desc.Height, 0, desc.Format, desc.NumChannels, 0};
}
const CUDA_ARRAY3D_DESCRIPTOR& shape_of(const CUDA_ARRAY3D_DESCRIPTOR& desc) { return desc; }

// Either array entry point (cuArrayCreate_v2, cuArray3DCreate_v2).
template <typename Descriptor>
CUresult create_array(CUresult (*real)(CUarray*, const Descriptor*), CUarray* handle,
                      const Descriptor* desc) {
  if (real == nullptr) {
    return kMissingReal;
  }
  if (desc == nullptr) {
    return real(handle, desc);  // the driver's own argument error
  }
  return charged(Space::array, Record{array_bytes(shape_of(*desc)), Kind::array, current_device()},
                 storing(handle, [&] { return real(handle, desc); }));
}

CUresult alloc_async(decltype(&cuMemAllocAsync) real, CUdeviceptr* dptr, std::size_t bytesize,
                     CUstream stream) {
  if (real == nullptr) {
    return kMissingReal;
  }
  return charged(Space::pointer, Record{bytesize, Kind::device, current_device()},
                 storing(dptr, [&] { return real(dptr, bytesize, stream); }));
}

// A pitched allocation served by paging: rows padded to kPagedPitch, as the driver pads them.
std::optional<CUresult> paged_pitch(CUdeviceptr* dptr, std::size_t* pitch, std::size_t width,
                                    std::size_t height, unsigned int element_bytes) {
  constexpr std::uint64_t kPagedPitch = 512;
  if (pitch == nullptr || width == 0 || height == 0 ||
      (element_bytes != 4 && element_bytes != 8 && element_bytes != 16)) {
    return std::nullopt;  // the driver's own argument error
  }
  const std::uint64_t padded = (width + kPagedPitch - 1) / kPagedPitch * kPagedPitch;
  const std::optional<CUresult> result = tf::shim::paged_alloc(dptr, product(padded, height));
  if (result && *result == CUDA_SUCCESS) {
    *pitch = padded;
  }
  return result;
}

CUresult free_pointer(decltype(&cuMemFreeAsync) real, CUdeviceptr dptr, CUstream stream) {
  if (real == nullptr) {
    return kMissingReal;
  }
  if (const std::optional<CUresult> paged = tf::shim::paged_free(dptr)) {
    return *paged;  // a paged free waits for queued work, which covers the stream's
  }
  return released(Space::pointer, dptr, [&] { return real(dptr, stream); });
}

}  // namespace

extern "C" {

CUresult cuMemAlloc_v2(CUdeviceptr* dptr, std::size_t bytesize) {
  const auto real = TF_REAL(cuMemAlloc_v2);
  if (real == nullptr) {
    return kMissingReal;
  }
  if (const std::optional<CUresult> paged = tf::shim::paged_alloc(dptr, bytesize)) {
    return *paged;
  }
  return charged(Space::pointer, Record{bytesize, Kind::device, current_device()},
                 storing(dptr, [&] { return real(dptr, bytesize); }));
}

CUresult cuMemAllocPitch_v2(CUdeviceptr* dptr, std::size_t* pPitch, std::size_t WidthInBytes,
                            std::size_t Height, unsigned int ElementSizeBytes) {
  const auto real = TF_REAL(cuMemAllocPitch_v2);
  if (real == nullptr) {
    return kMissingReal;
  }
  if (const std::optional<CUresult> paged = paged_pitch(dptr, pPitch, WidthInBytes, Height,
                                                       ElementSizeBytes)) {
    return *paged;
  }
  // The padded pitch is known only afterwards: the unpadded size is charged first, and the
  // padding once the driver has chosen it (freeing the rows again if that does not fit).
  const int device = current_device();
  const std::uint64_t unpadded = product(WidthInBytes, Height);
  return charged(
      Space::pointer, Record{unpadded, Kind::device, device},
      [&](std::uint64_t& key, Record& record) {
        const CUresult result = real(dptr, pPitch, WidthInBytes, Height, ElementSizeBytes);
        if (result != CUDA_SUCCESS) {
          return result;
        }
        const std::uint64_t padding = product(*pPitch, Height) - unpadded;
        tf::shim::Budget* budget = tf::shim::state().enforced(device);
        if (budget != nullptr && padding > 0) {
          if (!budget->try_charge(Kind::device, padding)) {
            if (const auto free_real = TF_REAL(cuMemFree_v2)) {
              free_real(*dptr);
            }
            return CUDA_ERROR_OUT_OF_MEMORY;
          }
          record.bytes += padding;
        }
        key = *dptr;
        return CUDA_SUCCESS;
      });
}

CUresult cuMemAllocManaged(CUdeviceptr* dptr, std::size_t bytesize, unsigned int flags) {
  const auto real = TF_REAL(cuMemAllocManaged);
  if (real == nullptr) {
    return kMissingReal;
  }
  return charged(Space::pointer, Record{bytesize, Kind::managed, current_device()},
                 storing(dptr, [&] { return real(dptr, bytesize, flags); }));
}

CUresult cuMemAllocAsync(CUdeviceptr* dptr, std::size_t bytesize, CUstream hStream) {
  return alloc_async(TF_REAL(cuMemAllocAsync), dptr, bytesize, hStream);
}

CUresult cuMemAllocAsync_ptsz(CUdeviceptr* dptr, std::size_t bytesize, CUstream hStream) {
  return alloc_async(TF_REAL(cuMemAllocAsync_ptsz), dptr, bytesize, hStream);
}

CUresult cuMemFree_v2(CUdeviceptr dptr) {
  const auto real = TF_REAL(cuMemFree_v2);
  if (real == nullptr) {
    return kMissingReal;
  }
  if (const std::optional<CUresult> paged = tf::shim::paged_free(dptr)) {
    return *paged;
  }
  return released(Space::pointer, dptr, [&] { return real(dptr); });
}

CUresult cuMemFreeAsync(CUdeviceptr dptr, CUstream hStream) {
  return free_pointer(TF_REAL(cuMemFreeAsync), dptr, hStream);
}

CUresult cuMemFreeAsync_ptsz(CUdeviceptr dptr, CUstream hStream) {
  return free_pointer(TF_REAL(cuMemFreeAsync_ptsz), dptr, hStream);
}

CUresult cuArrayCreate_v2(CUarray* pHandle, const CUDA_ARRAY_DESCRIPTOR* pAllocateArray) {
  return create_array(TF_REAL(cuArrayCreate_v2), pHandle, pAllocateArray);
}

CUresult cuArray3DCreate_v2(CUarray* pHandle, const CUDA_ARRAY3D_DESCRIPTOR* pAllocateArray) {
  return create_array(TF_REAL(cuArray3DCreate_v2), pHandle, pAllocateArray);
}

CUresult cuArrayDestroy(CUarray hArray) {
  const auto real = TF_REAL(cuArrayDestroy);
  if (real == nullptr) {
    return kMissingReal;
  }
  return released(Space::array, reinterpret_cast<std::uintptr_t>(hArray),
                  [&] { return real(hArray); });
}

CUresult cuMemCreate(CUmemGenericAllocationHandle* handle, std::size_t size,
                     const CUmemAllocationProp* prop, unsigned long long flags) {
  const auto real = TF_REAL(cuMemCreate);
  if (real == nullptr) {
    return kMissingReal;
  }
  // Charged to the device named in the properties; other locations (host) are not VRAM.
  const bool on_device = prop != nullptr && prop->location.type == CU_MEM_LOCATION_TYPE_DEVICE;
  return charged(Space::handle, Record{size, Kind::vmm, on_device ? prop->location.id : -1},
                 storing(handle, [&] { return real(handle, size, prop, flags); }));
}

CUresult cuMemRelease(CUmemGenericAllocationHandle handle) {
  const auto real = TF_REAL(cuMemRelease);
  if (real == nullptr) {
    return kMissingReal;
  }
  return released(Space::handle, handle, [&] { return real(handle); });
}

}  // extern "C"
