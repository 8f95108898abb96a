// 2D copies and sets, and copies between devices: each makes the paged allocations it touches
// resident first, from the whole span of its rows.
#include "charging.h"

namespace {

using tf::shim::kMissingReal;
using tf::shim::paged_call;

// The device span one side of a 2D copy touches, from its first row's start to its last row's
// end; none for host and array memory (a unified pointer the pager does not own is ignored).
struct Span {
  CUdeviceptr at = 0;
  std::size_t bytes = 0;
};

Span span(int type, CUdeviceptr device, std::size_t x, std::size_t y, std::size_t pitch,
          std::size_t width, std::size_t height) {
  if ((type != CU_MEMORYTYPE_DEVICE && type != CU_MEMORYTYPE_UNIFIED) || width == 0 ||
      height == 0) {
    return {};
  }
  return Span{device + y * pitch + x, (height - 1) * pitch + width};
}

template <typename Real, typename... Extra>
CUresult copy_2d(Real real, CUstream stream, const CUDA_MEMCPY2D* copy, Extra... extra) {
  if (copy == nullptr) {
    return real == nullptr ? kMissingReal : real(copy, extra...);  // the driver's own error
  }
  const Span dst = span(copy->dstMemoryType, copy->dstDevice, copy->dstXInBytes, copy->dstY,
                        copy->dstPitch, copy->WidthInBytes, copy->Height);
  const Span src = span(copy->srcMemoryType, copy->srcDevice, copy->srcXInBytes, copy->srcY,
                        copy->srcPitch, copy->WidthInBytes, copy->Height);
  return paged_call(real, stream, dst.at, dst.bytes, src.at, src.bytes, copy, extra...);
}

template <typename Real, typename Value, typename... Extra>
CUresult set_2d(Real real, CUstream stream, CUdeviceptr dst, std::size_t pitch, Value value,
                std::size_t width, std::size_t height, Extra... extra) {
  const Span range = span(CU_MEMORYTYPE_DEVICE, dst, 0, 0, pitch, width * sizeof(Value), height);
  return paged_call(real, stream, range.at, range.bytes, 0, 0, dst, pitch, value, width, height,
                    extra...);
}

}  // namespace

#define TF_SHIM_COPY_2D_HOOKS(suffix, async_suffix)                                             \
  CUresult cuMemcpy2D_v2##suffix(const CUDA_MEMCPY2D* copy) {                                   \
    return copy_2d(TF_REAL(cuMemcpy2D_v2##suffix), nullptr, copy);                              \
  }                                                                                             \
  CUresult cuMemcpy2DUnaligned_v2##suffix(const CUDA_MEMCPY2D* copy) {                          \
    return copy_2d(TF_REAL(cuMemcpy2DUnaligned_v2##suffix), nullptr, copy);                     \
  }                                                                                             \
  CUresult cuMemcpy2DAsync_v2##async_suffix(const CUDA_MEMCPY2D* copy, CUstream stream) {       \
    return copy_2d(TF_REAL(cuMemcpy2DAsync_v2##async_suffix), stream, copy, stream);            \
  }                                                                                             \
  CUresult cuMemsetD2D8_v2##suffix(CUdeviceptr dst, std::size_t pitch, unsigned char value,     \
                                   std::size_t width, std::size_t height) {                     \
    return set_2d(TF_REAL(cuMemsetD2D8_v2##suffix), nullptr, dst, pitch, value, width, height); \
  }                                                                                             \
  CUresult cuMemsetD2D16_v2##suffix(CUdeviceptr dst, std::size_t pitch, unsigned short value,   \
                                    std::size_t width, std::size_t height) {                    \
    return set_2d(TF_REAL(cuMemsetD2D16_v2##suffix), nullptr, dst, pitch, value, width,         \
                  height);                                                                      \
  }                                                                                             \
  CUresult cuMemsetD2D32_v2##suffix(CUdeviceptr dst, std::size_t pitch, unsigned int value,     \
                                    std::size_t width, std::size_t height) {                    \
    return set_2d(TF_REAL(cuMemsetD2D32_v2##suffix), nullptr, dst, pitch, value, width,         \
                  height);                                                                      \
  }                                                                                             \
  CUresult cuMemsetD2D8Async##async_suffix(CUdeviceptr dst, std::size_t pitch,                  \
                                           unsigned char value, std::size_t width,              \
                                           std::size_t height, CUstream stream) {               \
    return set_2d(TF_REAL(cuMemsetD2D8Async##async_suffix), stream, dst, pitch, value, width,   \
                  height, stream);                                                              \
  }                                                                                             \
  CUresult cuMemsetD2D16Async##async_suffix(CUdeviceptr dst, std::size_t pitch,                 \
                                            unsigned short value, std::size_t width,            \
                                            std::size_t height, CUstream stream) {              \
    return set_2d(TF_REAL(cuMemsetD2D16Async##async_suffix), stream, dst, pitch, value, width,  \
                  height, stream);                                                              \
  }                                                                                             \
  CUresult cuMemsetD2D32Async##async_suffix(CUdeviceptr dst, std::size_t pitch,                 \
                                            unsigned int value, std::size_t width,              \
                                            std::size_t height, CUstream stream) {              \
    return set_2d(TF_REAL(cuMemsetD2D32Async##async_suffix), stream, dst, pitch, value, width,  \
                  height, stream);                                                              \
  }                                                                                             \
  CUresult cuMemcpyPeer##suffix(CUdeviceptr dst, CUcontext dst_context, CUdeviceptr src,        \
                                CUcontext src_context, std::size_t bytes) {                     \
    return paged_call(TF_REAL(cuMemcpyPeer##suffix), nullptr, dst, bytes, src, bytes, dst,      \
                      dst_context, src, src_context, bytes);                                    \
  }                                                                                             \
  CUresult cuMemcpyPeerAsync##async_suffix(CUdeviceptr dst, CUcontext dst_context,              \
                                           CUdeviceptr src, CUcontext src_context,              \
                                           std::size_t bytes, CUstream stream) {                \
    return paged_call(TF_REAL(cuMemcpyPeerAsync##async_suffix), stream, dst, bytes, src, bytes, \
                      dst, dst_context, src, src_context, bytes, stream);                       \
  }

extern "C" {

TF_SHIM_COPY_2D_HOOKS(, )
TF_SHIM_COPY_2D_HOOKS(_ptds, _ptsz)

}  // extern "C"
