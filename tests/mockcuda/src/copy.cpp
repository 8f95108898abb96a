// Copies and memsets, 1D, 2D and between contexts. The bytes move at the call; the work then
// occupies its stream on the device's timeline for latency + bytes / bandwidth
// (MOCKCUDA_COPY_GBPS between host and device, ten times that within the device; a 2D copy
// costs its WidthInBytes x Height bytes, whatever the pitches). Synchronous variants run on the
// context's default stream and return once it completes, after the context's earlier work;
// async ones return at once. Device pointers are checked as the driver does, row by row for 2D:
// a pointer it does not know, or a row running past a linear allocation, is INVALID_VALUE; a
// row in reserved address space that is not mapped and accessible faults (ILLEGAL_ADDRESS,
// sticky) as a copy engine would.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "entry_points.h"
#include "export.h"
#include "guards.h"
#include "runtime.h"

using mockcuda::Allocation;
using mockcuda::Process;
using mockcuda::Stream;

namespace {

constexpr double kDeviceLocalSpeedup = 10.0;

enum class Memory { host, device, unified };

// One side of a transfer: `rows` rows starting at `at`, `pitch` bytes apart. A unified side
// (cuMemcpy, CU_MEMORYTYPE_UNIFIED) is device memory when the device knows its address.
struct Side {
    uintptr_t at;
    uint64_t pitch;
    Memory memory;
};

// A copy (element 0) or memset (element: the element size, `value` its pattern) of `rows` rows
// of `row_bytes` bytes; a 1D one is a single row.
struct Transfer {
    Side dst;
    Side src;  // unused by a memset
    uint64_t row_bytes;
    uint64_t rows;
    unsigned int element;
    uint32_t value;
};

// A peer copy names the contexts of its two sides: both must be live, and a synchronous one
// is serialised with their work as well as the current context's.
struct Peers {
    CUctx_st* dst;
    CUctx_st* src;
};

Side linear(uintptr_t at, Memory memory) {
    return {at, 0, memory};
}

// Unified addressing: a pointer in no allocation or reservation is host memory.
bool known_to_device(const Process& p, uintptr_t ptr) {
    return mockcuda::find_allocation(p, ptr, 1) != nullptr || mockcuda::within_reservation(p, ptr, 1);
}

CUresult check_device_range(Process& p, uintptr_t ptr, uint64_t bytes) {
    const Allocation* allocation = mockcuda::find_allocation(p, ptr, 1);
    if (allocation != nullptr && !allocation->is_vmm) {
        return mockcuda::find_allocation(p, ptr, bytes) != nullptr ? CUDA_SUCCESS
                                                                   : CUDA_ERROR_INVALID_VALUE;
    }
    if (allocation == nullptr && !mockcuda::within_reservation(p, ptr, 1)) {
        return CUDA_ERROR_INVALID_VALUE;
    }
    uintptr_t bad = 0;
    return mockcuda::device_accessible(p, ptr, bytes, bad) ? CUDA_SUCCESS
                                                           : mockcuda::fault(p, bad);
}

// Every row of a device side, as a copy engine would touch them (not the gaps between).
CUresult check_side(Process& p, const Side& side, const Transfer& t) {
    if (side.memory != Memory::device) {
        return CUDA_SUCCESS;  // host memory is not checked
    }
    for (uint64_t row = 0; row < t.rows; ++row) {
        if (CUresult r = check_device_range(p, side.at + row * side.pitch, t.row_bytes)) {
            return r;
        }
    }
    return CUDA_SUCCESS;
}

// INVALID_VALUE for what the driver refuses before looking at memory: null pointers, a pitch
// shorter than a row (pitches are unused for one row), memset rows off the element alignment.
CUresult check_shape(const Transfer& t) {
    const bool copy = t.element == 0;
    if (t.dst.at == 0 || (copy && t.src.at == 0)) {
        return CUDA_ERROR_INVALID_VALUE;
    }
    uint64_t total = 0;
    if (__builtin_mul_overflow(t.row_bytes, t.rows, &total)) {
        return CUDA_ERROR_INVALID_VALUE;
    }
    if (t.rows > 1 && (t.dst.pitch < t.row_bytes || (copy && t.src.pitch < t.row_bytes))) {
        return CUDA_ERROR_INVALID_VALUE;
    }
    if (t.element > 1 &&
        (t.dst.at % t.element != 0 || (t.rows > 1 && t.dst.pitch % t.element != 0))) {
        return CUDA_ERROR_INVALID_VALUE;
    }
    return CUDA_SUCCESS;
}

int64_t duration_ns(const mockcuda::Config& config, const Transfer& t) {
    const bool device_local =
        t.dst.memory == Memory::device && (t.src.memory == Memory::device || t.element != 0);
    const double gbps = config.copy_gbps * (device_local ? kDeviceLocalSpeedup : 1.0);
    // bytes / (GB/s) is nanoseconds.
    const double bytes = static_cast<double>(t.row_bytes) * static_cast<double>(t.rows);
    return config.copy_latency_ns + std::llround(bytes / gbps);
}

void fill_row(unsigned char* dst, const Transfer& t) {
    if (t.element == 1) {
        std::memset(dst, static_cast<unsigned char>(t.value), t.row_bytes);
        return;
    }
    for (uint64_t at = 0; at < t.row_bytes; at += t.element) {
        std::memcpy(dst + at, &t.value, t.element);  // little-endian: the low bytes
    }
}

void move_bytes(const Transfer& t) {
    for (uint64_t row = 0; row < t.rows; ++row) {
        auto* dst = reinterpret_cast<unsigned char*>(t.dst.at + row * t.dst.pitch);
        if (t.element == 0) {
            std::memmove(dst, reinterpret_cast<const void*>(t.src.at + row * t.src.pitch),
                         t.row_bytes);
        } else {
            fill_row(dst, t);
        }
    }
}

CUresult check_peers(const Process& p, const Peers* peers) {
    if (peers != nullptr &&
        (p.contexts.count(peers->dst) == 0 || p.contexts.count(peers->src) == 0)) {
        return CUDA_ERROR_INVALID_CONTEXT;
    }
    return CUDA_SUCCESS;
}

// Checks, moves and queues `t` on `handle` (async) or the default stream (sync, which then
// waits). A capturing stream takes no copies: the mock's graphs hold kernels only.
CUresult submit(Transfer t, CUstream handle, bool sync, const Peers* peers = nullptr) {
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
        if (CUresult r = check_peers(p, peers)) {
            return r;
        }
        if (CUresult r = check_shape(t)) {
            return r;
        }
        for (Side* side : {&t.dst, &t.src}) {
            if (side->memory == Memory::unified) {
                side->memory = known_to_device(p, side->at) ? Memory::device : Memory::host;
            }
        }
        if (CUresult r = check_side(p, t.dst, t)) {
            return r;
        }
        if (t.element == 0) {
            if (CUresult r = check_side(p, t.src, t)) {
                return r;
            }
        }
        move_bytes(t);
        mockcuda::queue_work(p, stream, duration_ns(p.config, t));
        done = ctx->done_ns;
        if (peers != nullptr) {
            done = std::max({done, peers->dst->done_ns, peers->src->done_ns});
        }
        return CUDA_SUCCESS;
    });
    return sync ? mockcuda::wait_after(r, done) : r;
}

Transfer copy_1d(Side dst, Side src, size_t bytes) {
    return {dst, src, bytes, 1, 0, 0};
}

CUresult host_to_device(CUdeviceptr dst, const void* src, size_t bytes, CUstream stream,
                        bool sync) {
    const auto host = reinterpret_cast<uintptr_t>(src);
    return submit(copy_1d(linear(dst, Memory::device), linear(host, Memory::host), bytes), stream,
                  sync);
}

CUresult device_to_host(void* dst, CUdeviceptr src, size_t bytes, CUstream stream, bool sync) {
    const auto host = reinterpret_cast<uintptr_t>(dst);
    return submit(copy_1d(linear(host, Memory::host), linear(src, Memory::device), bytes), stream,
                  sync);
}

CUresult device_to_device(CUdeviceptr dst, CUdeviceptr src, size_t bytes, CUstream stream,
                          bool sync) {
    return submit(copy_1d(linear(dst, Memory::device), linear(src, Memory::device), bytes),
                  stream, sync);
}

CUresult unified(CUdeviceptr dst, CUdeviceptr src, size_t bytes, CUstream stream, bool sync) {
    return submit(copy_1d(linear(dst, Memory::unified), linear(src, Memory::unified), bytes),
                  stream, sync);
}

CUresult peer(CUdeviceptr dst, CUcontext dst_ctx, CUdeviceptr src, CUcontext src_ctx,
              size_t bytes, CUstream stream, bool sync) {
    const Peers peers{dst_ctx, src_ctx};
    return submit(copy_1d(linear(dst, Memory::device), linear(src, Memory::device), bytes),
                  stream, sync, &peers);
}

// A 1D memset is one row of `count` elements; a 2D one `height` rows `pitch` bytes apart.
CUresult set(CUdeviceptr dst, uint64_t pitch, uint32_t value, unsigned int element, size_t count,
             size_t height, CUstream stream, bool sync) {
    if (count > UINT64_MAX / element) {
        return CUDA_ERROR_INVALID_VALUE;
    }
    return submit({{dst, pitch, Memory::device}, {}, count * element, height, element, value},
                  stream, sync);
}

CUresult set_1d(CUdeviceptr dst, uint32_t value, unsigned int element, size_t count,
                CUstream stream, bool sync) {
    return set(dst, 0, value, element, count, 1, stream, sync);
}

// The side of a CUDA_MEMCPY2D at (XInBytes, Y): `host` or `device` by its memory type. Arrays
// are not simulated (NOT_SUPPORTED); an unknown memory type is INVALID_VALUE.
CUresult side_2d(CUmemorytype type, uintptr_t host, CUdeviceptr device, size_t x, size_t y,
                 size_t pitch, Side& side) {
    switch (type) {
        case CU_MEMORYTYPE_HOST:
            side = {host, pitch, Memory::host};
            break;
        case CU_MEMORYTYPE_DEVICE:
            side = {device, pitch, Memory::device};
            break;
        case CU_MEMORYTYPE_UNIFIED:
            side = {device, pitch, Memory::unified};
            break;
        case CU_MEMORYTYPE_ARRAY:
            return CUDA_ERROR_NOT_SUPPORTED;
        default:
            return CUDA_ERROR_INVALID_VALUE;
    }
    if (side.at != 0) {
        side.at += y * pitch + x;  // a null base stays null, for check_shape to refuse
    }
    return CUDA_SUCCESS;
}

CUresult copy_2d(const CUDA_MEMCPY2D* c, CUstream stream, bool sync) {
    if (c == nullptr) {
        return CUDA_ERROR_INVALID_VALUE;
    }
    Transfer t{{}, {}, c->WidthInBytes, c->Height, 0, 0};
    if (CUresult r = side_2d(c->dstMemoryType, reinterpret_cast<uintptr_t>(c->dstHost),
                             c->dstDevice, c->dstXInBytes, c->dstY, c->dstPitch, t.dst)) {
        return r;
    }
    if (CUresult r = side_2d(c->srcMemoryType, reinterpret_cast<uintptr_t>(c->srcHost),
                             c->srcDevice, c->srcXInBytes, c->srcY, c->srcPitch, t.src)) {
        return r;
    }
    return submit(t, stream, sync);
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
    return set_1d(dst, value, 1, count, nullptr, true);
}
MOCK_API CUresult cuMemsetD8_v2_ptds(CUdeviceptr dst, unsigned char value, size_t count) {
    return set_1d(dst, value, 1, count, nullptr, true);
}
MOCK_API CUresult cuMemsetD16_v2(CUdeviceptr dst, unsigned short value, size_t count) {
    return set_1d(dst, value, 2, count, nullptr, true);
}
MOCK_API CUresult cuMemsetD16_v2_ptds(CUdeviceptr dst, unsigned short value, size_t count) {
    return set_1d(dst, value, 2, count, nullptr, true);
}
MOCK_API CUresult cuMemsetD32_v2(CUdeviceptr dst, unsigned int value, size_t count) {
    return set_1d(dst, value, 4, count, nullptr, true);
}
MOCK_API CUresult cuMemsetD32_v2_ptds(CUdeviceptr dst, unsigned int value, size_t count) {
    return set_1d(dst, value, 4, count, nullptr, true);
}
MOCK_API CUresult cuMemsetD8Async(CUdeviceptr dst, unsigned char value, size_t count,
                                  CUstream stream) {
    return set_1d(dst, value, 1, count, stream, false);
}
MOCK_API CUresult cuMemsetD8Async_ptsz(CUdeviceptr dst, unsigned char value, size_t count,
                                       CUstream stream) {
    return set_1d(dst, value, 1, count, stream, false);
}
MOCK_API CUresult cuMemsetD16Async(CUdeviceptr dst, unsigned short value, size_t count,
                                   CUstream stream) {
    return set_1d(dst, value, 2, count, stream, false);
}
MOCK_API CUresult cuMemsetD16Async_ptsz(CUdeviceptr dst, unsigned short value, size_t count,
                                        CUstream stream) {
    return set_1d(dst, value, 2, count, stream, false);
}
MOCK_API CUresult cuMemsetD32Async(CUdeviceptr dst, unsigned int value, size_t count,
                                   CUstream stream) {
    return set_1d(dst, value, 4, count, stream, false);
}
MOCK_API CUresult cuMemsetD32Async_ptsz(CUdeviceptr dst, unsigned int value, size_t count,
                                        CUstream stream) {
    return set_1d(dst, value, 4, count, stream, false);
}

MOCK_API CUresult cuMemcpy2D_v2(const CUDA_MEMCPY2D* pCopy) {
    return copy_2d(pCopy, nullptr, true);
}
MOCK_API CUresult cuMemcpy2D_v2_ptds(const CUDA_MEMCPY2D* pCopy) {
    return copy_2d(pCopy, nullptr, true);
}
// Unaligned: the driver's fallback for rows its copy engines cannot take; the same here.
MOCK_API CUresult cuMemcpy2DUnaligned_v2(const CUDA_MEMCPY2D* pCopy) {
    return copy_2d(pCopy, nullptr, true);
}
MOCK_API CUresult cuMemcpy2DUnaligned_v2_ptds(const CUDA_MEMCPY2D* pCopy) {
    return copy_2d(pCopy, nullptr, true);
}
MOCK_API CUresult cuMemcpy2DAsync_v2(const CUDA_MEMCPY2D* pCopy, CUstream hStream) {
    return copy_2d(pCopy, hStream, false);
}
MOCK_API CUresult cuMemcpy2DAsync_v2_ptsz(const CUDA_MEMCPY2D* pCopy, CUstream hStream) {
    return copy_2d(pCopy, hStream, false);
}

MOCK_API CUresult cuMemsetD2D8_v2(CUdeviceptr dstDevice, size_t dstPitch, unsigned char uc,
                                  size_t Width, size_t Height) {
    return set(dstDevice, dstPitch, uc, 1, Width, Height, nullptr, true);
}
MOCK_API CUresult cuMemsetD2D8_v2_ptds(CUdeviceptr dstDevice, size_t dstPitch, unsigned char uc,
                                       size_t Width, size_t Height) {
    return set(dstDevice, dstPitch, uc, 1, Width, Height, nullptr, true);
}
MOCK_API CUresult cuMemsetD2D16_v2(CUdeviceptr dstDevice, size_t dstPitch, unsigned short us,
                                   size_t Width, size_t Height) {
    return set(dstDevice, dstPitch, us, 2, Width, Height, nullptr, true);
}
MOCK_API CUresult cuMemsetD2D16_v2_ptds(CUdeviceptr dstDevice, size_t dstPitch,
                                        unsigned short us, size_t Width, size_t Height) {
    return set(dstDevice, dstPitch, us, 2, Width, Height, nullptr, true);
}
MOCK_API CUresult cuMemsetD2D32_v2(CUdeviceptr dstDevice, size_t dstPitch, unsigned int ui,
                                   size_t Width, size_t Height) {
    return set(dstDevice, dstPitch, ui, 4, Width, Height, nullptr, true);
}
MOCK_API CUresult cuMemsetD2D32_v2_ptds(CUdeviceptr dstDevice, size_t dstPitch, unsigned int ui,
                                        size_t Width, size_t Height) {
    return set(dstDevice, dstPitch, ui, 4, Width, Height, nullptr, true);
}
MOCK_API CUresult cuMemsetD2D8Async(CUdeviceptr dstDevice, size_t dstPitch, unsigned char uc,
                                    size_t Width, size_t Height, CUstream hStream) {
    return set(dstDevice, dstPitch, uc, 1, Width, Height, hStream, false);
}
MOCK_API CUresult cuMemsetD2D8Async_ptsz(CUdeviceptr dstDevice, size_t dstPitch,
                                         unsigned char uc, size_t Width, size_t Height,
                                         CUstream hStream) {
    return set(dstDevice, dstPitch, uc, 1, Width, Height, hStream, false);
}
MOCK_API CUresult cuMemsetD2D16Async(CUdeviceptr dstDevice, size_t dstPitch, unsigned short us,
                                     size_t Width, size_t Height, CUstream hStream) {
    return set(dstDevice, dstPitch, us, 2, Width, Height, hStream, false);
}
MOCK_API CUresult cuMemsetD2D16Async_ptsz(CUdeviceptr dstDevice, size_t dstPitch,
                                          unsigned short us, size_t Width, size_t Height,
                                          CUstream hStream) {
    return set(dstDevice, dstPitch, us, 2, Width, Height, hStream, false);
}
MOCK_API CUresult cuMemsetD2D32Async(CUdeviceptr dstDevice, size_t dstPitch, unsigned int ui,
                                     size_t Width, size_t Height, CUstream hStream) {
    return set(dstDevice, dstPitch, ui, 4, Width, Height, hStream, false);
}
MOCK_API CUresult cuMemsetD2D32Async_ptsz(CUdeviceptr dstDevice, size_t dstPitch,
                                          unsigned int ui, size_t Width, size_t Height,
                                          CUstream hStream) {
    return set(dstDevice, dstPitch, ui, 4, Width, Height, hStream, false);
}

MOCK_API CUresult cuMemcpyPeer(CUdeviceptr dstDevice, CUcontext dstContext, CUdeviceptr srcDevice,
                               CUcontext srcContext, size_t ByteCount) {
    return peer(dstDevice, dstContext, srcDevice, srcContext, ByteCount, nullptr, true);
}
MOCK_API CUresult cuMemcpyPeer_ptds(CUdeviceptr dstDevice, CUcontext dstContext,
                                    CUdeviceptr srcDevice, CUcontext srcContext,
                                    size_t ByteCount) {
    return peer(dstDevice, dstContext, srcDevice, srcContext, ByteCount, nullptr, true);
}
MOCK_API CUresult cuMemcpyPeerAsync(CUdeviceptr dstDevice, CUcontext dstContext,
                                    CUdeviceptr srcDevice, CUcontext srcContext,
                                    size_t ByteCount, CUstream hStream) {
    return peer(dstDevice, dstContext, srcDevice, srcContext, ByteCount, hStream, false);
}
MOCK_API CUresult cuMemcpyPeerAsync_ptsz(CUdeviceptr dstDevice, CUcontext dstContext,
                                         CUdeviceptr srcDevice, CUcontext srcContext,
                                         size_t ByteCount, CUstream hStream) {
    return peer(dstDevice, dstContext, srcDevice, srcContext, ByteCount, hStream, false);
}
