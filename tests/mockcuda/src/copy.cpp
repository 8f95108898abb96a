// Copies and memsets. The bytes move at the call; the work then occupies its stream on the
// device's timeline for latency + bytes / bandwidth (MOCKCUDA_COPY_GBPS between host and
// device, ten times that within the device). Synchronous variants run on the context's default
// stream and return once it completes, after the context's earlier work; async ones return
// at once. Device pointers are checked as the driver does: a pointer it does not know, or a
// range running past a linear allocation, is INVALID_VALUE; a range in reserved address space
// that is not mapped and accessible faults (ILLEGAL_ADDRESS, sticky) as a copy engine would.
#include <cmath>
#include <cstring>

#include "export.h"
#include "guards.h"
#include "runtime.h"

using mockcuda::Allocation;
using mockcuda::Process;
using mockcuda::Stream;

namespace {

constexpr double kDeviceLocalSpeedup = 10.0;

// One copy (width 0) or memset (width: the element size, `value` its pattern). A unified copy
// (cuMemcpy) finds out itself which sides are device memory.
struct Transfer {
    uintptr_t dst;
    uintptr_t src;
    uint64_t bytes;
    bool dst_device;
    bool src_device;
    unsigned int width;
    uint32_t value;
    bool unified;
};

// Unified addressing: a pointer in no allocation or reservation is host memory.
bool known_to_device(const Process& p, uintptr_t ptr) {
    return mockcuda::find_allocation(p, ptr, 1) != nullptr || mockcuda::reserved(p, ptr);
}

CUresult check_device_side(Process& p, uintptr_t ptr, uint64_t bytes) {
    const Allocation* allocation = mockcuda::find_allocation(p, ptr, 1);
    if (allocation != nullptr && !allocation->is_vmm) {
        return mockcuda::find_allocation(p, ptr, bytes) != nullptr ? CUDA_SUCCESS
                                                                   : CUDA_ERROR_INVALID_VALUE;
    }
    if (allocation == nullptr && !mockcuda::reserved(p, ptr)) {
        return CUDA_ERROR_INVALID_VALUE;
    }
    uintptr_t bad = 0;
    return mockcuda::device_accessible(p, ptr, bytes, bad) ? CUDA_SUCCESS
                                                           : mockcuda::fault(p, bad);
}

int64_t duration_ns(const mockcuda::Config& config, const Transfer& t) {
    const bool device_local = t.dst_device && (t.src_device || t.width != 0);
    const double gbps = config.copy_gbps * (device_local ? kDeviceLocalSpeedup : 1.0);
    // bytes / (GB/s) is nanoseconds.
    return config.copy_latency_ns + std::llround(static_cast<double>(t.bytes) / gbps);
}

void move_bytes(const Transfer& t) {
    auto* dst = reinterpret_cast<unsigned char*>(t.dst);
    if (t.width == 0) {
        std::memmove(dst, reinterpret_cast<const void*>(t.src), t.bytes);
    } else if (t.width == 1) {
        std::memset(dst, static_cast<unsigned char>(t.value), t.bytes);
    } else {
        for (uint64_t at = 0; at < t.bytes; at += t.width) {
            std::memcpy(dst + at, &t.value, t.width);  // little-endian: the low bytes
        }
    }
}

// Checks, moves and queues `t` on `handle` (async) or the default stream (sync, which then
// waits). A capturing stream takes no copies: the mock's graphs hold kernels only.
CUresult submit(Transfer t, CUstream handle, bool sync) {
    int64_t done = 0;
    const CUresult r = mockcuda::with_context([&](Process& p, CUctx_st* ctx) {
        Stream* stream = &ctx->default_stream;
        if (sync && ctx->capturing > 0) {
            return CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED;
        }
        if (!sync) {
            if (CUresult r = mockcuda::resolve_stream(p, handle, ctx, stream)) {
                return r;
            }
            if (stream->capture) {
                return CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED;
            }
        }
        if (t.dst == 0 || (t.width == 0 && t.src == 0) || (t.width > 1 && t.dst % t.width != 0)) {
            return CUDA_ERROR_INVALID_VALUE;
        }
        if (t.unified) {
            t.dst_device = known_to_device(p, t.dst);
            t.src_device = known_to_device(p, t.src);
        }
        if (t.dst_device) {
            if (CUresult r = check_device_side(p, t.dst, t.bytes)) {
                return r;
            }
        }
        if (t.src_device) {
            if (CUresult r = check_device_side(p, t.src, t.bytes)) {
                return r;
            }
        }
        move_bytes(t);
        mockcuda::queue_work(p, stream, duration_ns(p.config, t));
        done = ctx->done_ns;
        return CUDA_SUCCESS;
    });
    return sync ? mockcuda::wait_after(r, done) : r;
}

CUresult host_to_device(CUdeviceptr dst, const void* src, size_t bytes, CUstream stream,
                        bool sync) {
    const auto host = reinterpret_cast<uintptr_t>(src);
    return submit({dst, host, bytes, true, false, 0, 0, false}, stream, sync);
}

CUresult device_to_host(void* dst, CUdeviceptr src, size_t bytes, CUstream stream, bool sync) {
    const auto host = reinterpret_cast<uintptr_t>(dst);
    return submit({host, src, bytes, false, true, 0, 0, false}, stream, sync);
}

CUresult device_to_device(CUdeviceptr dst, CUdeviceptr src, size_t bytes, CUstream stream,
                          bool sync) {
    return submit({dst, src, bytes, true, true, 0, 0, false}, stream, sync);
}

CUresult unified(CUdeviceptr dst, CUdeviceptr src, size_t bytes, CUstream stream, bool sync) {
    return submit({dst, src, bytes, false, false, 0, 0, true}, stream, sync);
}

CUresult set(CUdeviceptr dst, uint32_t value, unsigned int width, size_t count, CUstream stream,
             bool sync) {
    if (count > UINT64_MAX / width) {
        return CUDA_ERROR_INVALID_VALUE;
    }
    return submit({dst, 0, count * width, true, false, width, value, false}, stream, sync);
}

}  // namespace

MOCK_API CUresult cuMemcpyHtoD_v2(CUdeviceptr dst, const void* src, size_t bytes) {
    return host_to_device(dst, src, bytes, nullptr, true);
}
MOCK_API CUresult cuMemcpyHtoD_v2_ptds(CUdeviceptr dst, const void* src, size_t bytes) {
    return host_to_device(dst, src, bytes, nullptr, true);
}
MOCK_API CUresult cuMemcpyHtoDAsync_v2(CUdeviceptr dst, const void* src, size_t bytes,
                                       CUstream stream) {
    return host_to_device(dst, src, bytes, stream, false);
}
MOCK_API CUresult cuMemcpyHtoDAsync_v2_ptsz(CUdeviceptr dst, const void* src, size_t bytes,
                                            CUstream stream) {
    return host_to_device(dst, src, bytes, stream, false);
}

MOCK_API CUresult cuMemcpyDtoH_v2(void* dst, CUdeviceptr src, size_t bytes) {
    return device_to_host(dst, src, bytes, nullptr, true);
}
MOCK_API CUresult cuMemcpyDtoH_v2_ptds(void* dst, CUdeviceptr src, size_t bytes) {
    return device_to_host(dst, src, bytes, nullptr, true);
}
MOCK_API CUresult cuMemcpyDtoHAsync_v2(void* dst, CUdeviceptr src, size_t bytes,
                                       CUstream stream) {
    return device_to_host(dst, src, bytes, stream, false);
}
MOCK_API CUresult cuMemcpyDtoHAsync_v2_ptsz(void* dst, CUdeviceptr src, size_t bytes,
                                            CUstream stream) {
    return device_to_host(dst, src, bytes, stream, false);
}

MOCK_API CUresult cuMemcpyDtoD_v2(CUdeviceptr dst, CUdeviceptr src, size_t bytes) {
    return device_to_device(dst, src, bytes, nullptr, true);
}
MOCK_API CUresult cuMemcpyDtoD_v2_ptds(CUdeviceptr dst, CUdeviceptr src, size_t bytes) {
    return device_to_device(dst, src, bytes, nullptr, true);
}
MOCK_API CUresult cuMemcpyDtoDAsync_v2(CUdeviceptr dst, CUdeviceptr src, size_t bytes,
                                       CUstream stream) {
    return device_to_device(dst, src, bytes, stream, false);
}
MOCK_API CUresult cuMemcpyDtoDAsync_v2_ptsz(CUdeviceptr dst, CUdeviceptr src, size_t bytes,
                                            CUstream stream) {
    return device_to_device(dst, src, bytes, stream, false);
}

MOCK_API CUresult cuMemcpy(CUdeviceptr dst, CUdeviceptr src, size_t bytes) {
    return unified(dst, src, bytes, nullptr, true);
}
MOCK_API CUresult cuMemcpy_ptds(CUdeviceptr dst, CUdeviceptr src, size_t bytes) {
    return unified(dst, src, bytes, nullptr, true);
}
MOCK_API CUresult cuMemcpyAsync(CUdeviceptr dst, CUdeviceptr src, size_t bytes, CUstream stream) {
    return unified(dst, src, bytes, stream, false);
}
MOCK_API CUresult cuMemcpyAsync_ptsz(CUdeviceptr dst, CUdeviceptr src, size_t bytes,
                                     CUstream stream) {
    return unified(dst, src, bytes, stream, false);
}

MOCK_API CUresult cuMemsetD8_v2(CUdeviceptr dst, unsigned char value, size_t count) {
    return set(dst, value, 1, count, nullptr, true);
}
MOCK_API CUresult cuMemsetD8_v2_ptds(CUdeviceptr dst, unsigned char value, size_t count) {
    return set(dst, value, 1, count, nullptr, true);
}
MOCK_API CUresult cuMemsetD16_v2(CUdeviceptr dst, unsigned short value, size_t count) {
    return set(dst, value, 2, count, nullptr, true);
}
MOCK_API CUresult cuMemsetD16_v2_ptds(CUdeviceptr dst, unsigned short value, size_t count) {
    return set(dst, value, 2, count, nullptr, true);
}
MOCK_API CUresult cuMemsetD32_v2(CUdeviceptr dst, unsigned int value, size_t count) {
    return set(dst, value, 4, count, nullptr, true);
}
MOCK_API CUresult cuMemsetD32_v2_ptds(CUdeviceptr dst, unsigned int value, size_t count) {
    return set(dst, value, 4, count, nullptr, true);
}
MOCK_API CUresult cuMemsetD8Async(CUdeviceptr dst, unsigned char value, size_t count,
                                  CUstream stream) {
    return set(dst, value, 1, count, stream, false);
}
MOCK_API CUresult cuMemsetD8Async_ptsz(CUdeviceptr dst, unsigned char value, size_t count,
                                       CUstream stream) {
    return set(dst, value, 1, count, stream, false);
}
MOCK_API CUresult cuMemsetD16Async(CUdeviceptr dst, unsigned short value, size_t count,
                                   CUstream stream) {
    return set(dst, value, 2, count, stream, false);
}
MOCK_API CUresult cuMemsetD16Async_ptsz(CUdeviceptr dst, unsigned short value, size_t count,
                                        CUstream stream) {
    return set(dst, value, 2, count, stream, false);
}
MOCK_API CUresult cuMemsetD32Async(CUdeviceptr dst, unsigned int value, size_t count,
                                   CUstream stream) {
    return set(dst, value, 4, count, stream, false);
}
MOCK_API CUresult cuMemsetD32Async_ptsz(CUdeviceptr dst, unsigned int value, size_t count,
                                        CUstream stream) {
    return set(dst, value, 4, count, stream, false);
}
