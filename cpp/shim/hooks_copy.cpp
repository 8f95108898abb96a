// Copies and sets, and the calls around what paging must know of: each copy or set makes the
// paged allocations it touches resident first; captures and IPC exports are noted.
#include "charging.h"

namespace {

using tf::shim::kMissingReal;
using tf::shim::paged_call;

CUresult begin_capture(CUresult result) {
  tf::shim::capture_begun(result);
  return result;
}

CUresult end_capture(CUresult result) {
  tf::shim::capture_ended(result);
  return result;
}

}  // namespace

#define TF_SHIM_COPY_HOOKS(suffix, async_suffix)                                                   \
  CUresult cuMemcpy##suffix(CUdeviceptr dst, CUdeviceptr src, std::size_t bytes) {                 \
    return paged_call(TF_REAL(cuMemcpy##suffix), nullptr, dst, bytes, src, bytes, dst, src,        \
        bytes);                                                                                    \
  }                                                                                                \
  CUresult cuMemcpyHtoD_v2##suffix(CUdeviceptr dst, const void* src, std::size_t bytes) {          \
    return paged_call(TF_REAL(cuMemcpyHtoD_v2##suffix), nullptr, dst, bytes, 0, 0, dst, src,       \
        bytes);                                                                                    \
  }                                                                                                \
  CUresult cuMemcpyDtoH_v2##suffix(void* dst, CUdeviceptr src, std::size_t bytes) {                \
    return paged_call(TF_REAL(cuMemcpyDtoH_v2##suffix), nullptr, src, bytes, 0, 0, dst, src,       \
        bytes);                                                                                    \
  }                                                                                                \
  CUresult cuMemcpyDtoD_v2##suffix(CUdeviceptr dst, CUdeviceptr src, std::size_t bytes) {          \
    return paged_call(TF_REAL(cuMemcpyDtoD_v2##suffix), nullptr, dst, bytes, src, bytes, dst, src, \
        bytes);                                                                                    \
  }                                                                                                \
  CUresult cuMemcpyAsync##async_suffix(CUdeviceptr dst, CUdeviceptr src, std::size_t bytes,        \
                                       CUstream stream) {                                          \
    return paged_call(TF_REAL(cuMemcpyAsync##async_suffix), stream, dst, bytes, src, bytes, dst,   \
        src, bytes, stream);                                                                       \
  }                                                                                                \
  CUresult cuMemcpyHtoDAsync_v2##async_suffix(CUdeviceptr dst, const void* src,                    \
                                              std::size_t bytes, CUstream stream) {                \
    return paged_call(TF_REAL(cuMemcpyHtoDAsync_v2##async_suffix), stream, dst, bytes, 0, 0, dst,  \
        src, bytes, stream);                                                                       \
  }                                                                                                \
  CUresult cuMemcpyDtoHAsync_v2##async_suffix(void* dst, CUdeviceptr src, std::size_t bytes,       \
                                              CUstream stream) {                                   \
    return paged_call(TF_REAL(cuMemcpyDtoHAsync_v2##async_suffix), stream, src, bytes, 0, 0, dst,  \
        src, bytes, stream);                                                                       \
  }                                                                                                \
  CUresult cuMemcpyDtoDAsync_v2##async_suffix(CUdeviceptr dst, CUdeviceptr src,                    \
                                              std::size_t bytes, CUstream stream) {                \
    return paged_call(TF_REAL(cuMemcpyDtoDAsync_v2##async_suffix), stream, dst, bytes, src, bytes, \
        dst, src, bytes, stream);                                                                  \
  }                                                                                                \
  CUresult cuMemsetD8_v2##suffix(CUdeviceptr dst, unsigned char value, std::size_t count) {        \
    return paged_call(TF_REAL(cuMemsetD8_v2##suffix), nullptr, dst, count, 0, 0, dst, value,       \
        count);                                                                                    \
  }                                                                                                \
  CUresult cuMemsetD16_v2##suffix(CUdeviceptr dst, unsigned short value, std::size_t count) {      \
    return paged_call(TF_REAL(cuMemsetD16_v2##suffix), nullptr, dst, count * 2, 0, 0, dst, value,  \
        count);                                                                                    \
  }                                                                                                \
  CUresult cuMemsetD32_v2##suffix(CUdeviceptr dst, unsigned int value, std::size_t count) {        \
    return paged_call(TF_REAL(cuMemsetD32_v2##suffix), nullptr, dst, count * 4, 0, 0, dst, value,  \
        count);                                                                                    \
  }                                                                                                \
  CUresult cuMemsetD8Async##async_suffix(CUdeviceptr dst, unsigned char value,                     \
                                         std::size_t count, CUstream stream) {                     \
    return paged_call(TF_REAL(cuMemsetD8Async##async_suffix), stream, dst, count, 0, 0, dst,       \
        value, count, stream);                                                                     \
  }                                                                                                \
  CUresult cuMemsetD16Async##async_suffix(CUdeviceptr dst, unsigned short value,                   \
                                          std::size_t count, CUstream stream) {                    \
    return paged_call(TF_REAL(cuMemsetD16Async##async_suffix), stream, dst, count * 2, 0, 0, dst,  \
        value, count, stream);                                                                     \
  }                                                                                                \
  CUresult cuMemsetD32Async##async_suffix(CUdeviceptr dst, unsigned int value,                     \
                                          std::size_t count, CUstream stream) {                    \
    return paged_call(TF_REAL(cuMemsetD32Async##async_suffix), stream, dst, count * 4, 0, 0, dst,  \
        value, count, stream);                                                                     \
  }

extern "C" {

TF_SHIM_COPY_HOOKS(, )
TF_SHIM_COPY_HOOKS(_ptds, _ptsz)

CUresult cuStreamBeginCapture(CUstream hStream) {
  const auto real = TF_REAL(cuStreamBeginCapture);
  return real == nullptr ? kMissingReal : begin_capture(real(hStream));
}

CUresult cuStreamBeginCapture_ptsz(CUstream hStream) {
  const auto real = TF_REAL(cuStreamBeginCapture_ptsz);
  return real == nullptr ? kMissingReal : begin_capture(real(hStream));
}

CUresult cuStreamBeginCapture_v2(CUstream hStream, CUstreamCaptureMode mode) {
  const auto real = TF_REAL(cuStreamBeginCapture_v2);
  return real == nullptr ? kMissingReal : begin_capture(real(hStream, mode));
}

CUresult cuStreamBeginCapture_v2_ptsz(CUstream hStream, CUstreamCaptureMode mode) {
  const auto real = TF_REAL(cuStreamBeginCapture_v2_ptsz);
  return real == nullptr ? kMissingReal : begin_capture(real(hStream, mode));
}

CUresult cuStreamEndCapture(CUstream hStream, CUgraph* phGraph) {
  const auto real = TF_REAL(cuStreamEndCapture);
  return real == nullptr ? kMissingReal : end_capture(real(hStream, phGraph));
}

CUresult cuStreamEndCapture_ptsz(CUstream hStream, CUgraph* phGraph) {
  const auto real = TF_REAL(cuStreamEndCapture_ptsz);
  return real == nullptr ? kMissingReal : end_capture(real(hStream, phGraph));
}

CUresult cuIpcGetMemHandle(CUipcMemHandle* pHandle, CUdeviceptr dptr) {
  const auto real = TF_REAL(cuIpcGetMemHandle);
  if (real == nullptr) {
    return kMissingReal;
  }
  const tf::shim::PagedUse use = tf::shim::pin_exported(dptr);
  return use.result() != CUDA_SUCCESS ? use.result() : real(pHandle, dptr);
}

}  // extern "C"
