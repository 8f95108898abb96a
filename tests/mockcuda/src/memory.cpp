// Device memory: linear allocations (plain, pitched, managed, stream-ordered), arrays, pinned
// host memory, pointer queries and IPC handles. Device memory is host memory reserved with
// MAP_NORESERVE, so a 16 GiB device costs nothing until written (copies: copy.cpp).
#include <sys/mman.h>

#include <cstdlib>
#include <cstring>

#include "export.h"
#include "guards.h"
#include "runtime.h"

using mockcuda::Allocation;
using mockcuda::Process;
using mockcuda::process;

namespace {

constexpr uint64_t kPitchAlignment = 512;

CUresult allocate(Process& p, CUctx_st* ctx, int device, uint64_t size, bool is_array,
                  uintptr_t& base) {
    if (size == 0) {
        return CUDA_ERROR_INVALID_VALUE;
    }
    if (!p.shared->charge(device, size, p.config.memory)) {
        return CUDA_ERROR_OUT_OF_MEMORY;
    }
    void* memory = mmap(nullptr, size, PROT_READ | PROT_WRITE,
                        MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (memory == MAP_FAILED) {
        p.shared->uncharge(device, size);
        return CUDA_ERROR_OUT_OF_MEMORY;
    }
    base = reinterpret_cast<uintptr_t>(memory);
    p.allocations[base] = Allocation{size, size, device, ctx, is_array, false, 0, true};
    return CUDA_SUCCESS;
}

void release(Process& p, std::map<uintptr_t, Allocation>::iterator it) {
    munmap(reinterpret_cast<void*>(it->first), it->second.size);
    p.shared->uncharge(it->second.device, it->second.charged);
    p.allocations.erase(it);
}

// The linear (non-array, non-VMM) allocation starting exactly at `ptr`.
std::map<uintptr_t, Allocation>::iterator find_linear(Process& p, CUdeviceptr ptr) {
    auto it = p.allocations.find(static_cast<uintptr_t>(ptr));
    if (it != p.allocations.end() && (it->second.is_array || it->second.is_vmm)) {
        return p.allocations.end();
    }
    return it;
}

// Plain, pitched and managed allocations land in the current context.
CUresult allocate_current(CUdeviceptr* dptr, uint64_t size) {
    return mockcuda::with_context([&](Process& p, CUctx_st* ctx) {
        return mockcuda::allocate_linear(p, ctx, ctx->device, size, dptr);
    });
}

unsigned int format_bytes(CUarray_format format) {
    switch (format) {
    case CU_AD_FORMAT_UNSIGNED_INT8:
    case CU_AD_FORMAT_SIGNED_INT8: return 1;
    case CU_AD_FORMAT_UNSIGNED_INT16:
    case CU_AD_FORMAT_SIGNED_INT16:
    case CU_AD_FORMAT_HALF: return 2;
    case CU_AD_FORMAT_UNSIGNED_INT32:
    case CU_AD_FORMAT_SIGNED_INT32:
    case CU_AD_FORMAT_FLOAT: return 4;
    }
    return 0;
}

// The implementations behind the exported entry points that have a second exported name (an
// older version or a per-thread variant): both names call these, never each other, so no call
// inside the driver goes through a symbol a preloaded library could interpose.
CUresult alloc_async(CUdeviceptr* dptr, size_t bytesize, CUstream hStream) {
    return mockcuda::with_stream(hStream, [&](Process& p, mockcuda::Stream* stream) {
        return mockcuda::allocate_linear(p, stream->ctx, stream->ctx->device, bytesize, dptr);
    });
}

CUresult free_linear(CUdeviceptr dptr) {
    return mockcuda::with_initialized([&](Process& p) {
        auto it = find_linear(p, dptr);
        if (it == p.allocations.end()) {
            return CUDA_ERROR_INVALID_VALUE;
        }
        release(p, it);
        return CUDA_SUCCESS;
    });
}

// Stream-ordered frees take effect at once: the memory is not reused before the stream's
// work could complete, because nothing in the mock reads it.
CUresult free_async(CUdeviceptr dptr, CUstream hStream) {
    if (CUresult r = mockcuda::with_stream(
            hStream, [](Process&, mockcuda::Stream*) { return CUDA_SUCCESS; })) {
        return r;
    }
    return free_linear(dptr);
}

// Behind both array entry points: a 2D descriptor is a 3D one of depth 0.
CUresult create_array(CUarray* handle, const CUDA_ARRAY3D_DESCRIPTOR* desc) {
    return mockcuda::with_context([&](Process& p, CUctx_st* ctx) {
        if (handle == nullptr || desc == nullptr || desc->Width == 0) {
            return CUDA_ERROR_INVALID_VALUE;
        }
        const unsigned int element = format_bytes(desc->Format);
        const unsigned int channels = desc->NumChannels;
        if (element == 0 || (channels != 1 && channels != 2 && channels != 4)) {
            return CUDA_ERROR_INVALID_VALUE;
        }
        // A 1D array has height 0, a 1D or 2D one depth 0: each counts as one.
        const uint64_t rows = desc->Height == 0 ? 1 : desc->Height;
        const uint64_t planes = desc->Depth == 0 ? 1 : desc->Depth;
        const uint64_t row_bytes = desc->Width * element * channels;
        if (row_bytes / (element * channels) != desc->Width || rows > UINT64_MAX / row_bytes ||
            planes > UINT64_MAX / (row_bytes * rows)) {
            return CUDA_ERROR_OUT_OF_MEMORY;
        }
        uintptr_t base = 0;
        if (CUresult r = allocate(p, ctx, ctx->device, row_bytes * rows * planes, true, base)) {
            return r;
        }
        *handle = reinterpret_cast<CUarray>(base);
        return CUDA_SUCCESS;
    });
}

// Pinned host memory: plain host memory, charged to no device. The flags change nothing the
// mock simulates.
CUresult allocate_host(void** pp, size_t bytesize, unsigned int flags) {
    constexpr unsigned int kKnown =
        CU_MEMHOSTALLOC_PORTABLE | CU_MEMHOSTALLOC_DEVICEMAP | CU_MEMHOSTALLOC_WRITECOMBINED;
    return mockcuda::with_context([&](Process& p, CUctx_st*) {
        if (pp == nullptr || bytesize == 0 || (flags & ~kKnown) != 0) {
            return CUDA_ERROR_INVALID_VALUE;
        }
        void* memory = std::malloc(bytesize);
        if (memory == nullptr) {
            return CUDA_ERROR_OUT_OF_MEMORY;
        }
        p.host_allocations.insert(memory);
        *pp = memory;
        return CUDA_SUCCESS;
    });
}

}  // namespace

namespace mockcuda {

CUresult allocate_linear(Process& p, CUctx_st* ctx, int device, uint64_t size,
                         CUdeviceptr* dptr) {
    if (dptr == nullptr) {
        return CUDA_ERROR_INVALID_VALUE;
    }
    uintptr_t base = 0;
    if (CUresult r = allocate(p, ctx, device, size, false, base)) {
        return r;
    }
    *dptr = base;
    return CUDA_SUCCESS;
}

void release_context_memory(Process& p, CUctx_st* ctx) {
    for (auto it = p.allocations.begin(); it != p.allocations.end();) {
        auto next = std::next(it);
        if (it->second.ctx == ctx) {
            release(p, it);
        }
        it = next;
    }
}

}  // namespace mockcuda

MOCK_API CUresult cuMemGetInfo_v2(size_t* free, size_t* total) {
    return mockcuda::with_context([&](Process& p, CUctx_st* ctx) {
        if (free == nullptr || total == nullptr) {
            return CUDA_ERROR_INVALID_VALUE;
        }
        const uint64_t used = p.shared->used(ctx->device);
        *total = p.config.memory;
        *free = used >= p.config.memory ? 0 : p.config.memory - used;
        return CUDA_SUCCESS;
    });
}

MOCK_API CUresult cuMemAlloc_v2(CUdeviceptr* dptr, size_t bytesize) {
    return allocate_current(dptr, bytesize);
}

MOCK_API CUresult cuMemAllocPitch_v2(CUdeviceptr* dptr, size_t* pitch, size_t widthInBytes,
                                     size_t height, unsigned int elementSizeBytes) {
    if (!process().initialized) {
        return CUDA_ERROR_NOT_INITIALIZED;
    }
    if (pitch == nullptr || widthInBytes == 0 || height == 0 ||
        (elementSizeBytes != 4 && elementSizeBytes != 8 && elementSizeBytes != 16)) {
        return CUDA_ERROR_INVALID_VALUE;
    }
    const uint64_t rounded = (widthInBytes + kPitchAlignment - 1) / kPitchAlignment *
                             kPitchAlignment;
    if (height > UINT64_MAX / rounded) {
        return CUDA_ERROR_OUT_OF_MEMORY;
    }
    const CUresult r = allocate_current(dptr, rounded * height);
    if (r == CUDA_SUCCESS) {
        *pitch = rounded;
    }
    return r;
}

MOCK_API CUresult cuMemAllocManaged(CUdeviceptr* dptr, size_t bytesize, unsigned int flags) {
    if (flags != CU_MEM_ATTACH_GLOBAL && flags != CU_MEM_ATTACH_HOST) {
        return CUDA_ERROR_INVALID_VALUE;
    }
    return allocate_current(dptr, bytesize);
}

MOCK_API CUresult cuMemAllocAsync(CUdeviceptr* dptr, size_t bytesize, CUstream hStream) {
    return alloc_async(dptr, bytesize, hStream);
}

MOCK_API CUresult cuMemAllocAsync_ptsz(CUdeviceptr* dptr, size_t bytesize, CUstream hStream) {
    return alloc_async(dptr, bytesize, hStream);
}

MOCK_API CUresult cuMemFree_v2(CUdeviceptr dptr) { return free_linear(dptr); }

MOCK_API CUresult cuMemFreeAsync(CUdeviceptr dptr, CUstream hStream) {
    return free_async(dptr, hStream);
}

MOCK_API CUresult cuMemFreeAsync_ptsz(CUdeviceptr dptr, CUstream hStream) {
    return free_async(dptr, hStream);
}

MOCK_API CUresult cuMemAllocHost_v2(void** pp, size_t bytesize) {
    return allocate_host(pp, bytesize, 0);
}

MOCK_API CUresult cuMemHostAlloc(void** pp, size_t bytesize, unsigned int flags) {
    return allocate_host(pp, bytesize, flags);
}

MOCK_API CUresult cuMemFreeHost(void* ptr) {
    return mockcuda::with_initialized([&](Process& p) {
        if (p.host_allocations.erase(ptr) == 0) {
            return CUDA_ERROR_INVALID_VALUE;
        }
        std::free(ptr);
        return CUDA_SUCCESS;
    });
}

MOCK_API CUresult cuArrayCreate_v2(CUarray* handle, const CUDA_ARRAY_DESCRIPTOR* desc) {
    if (desc == nullptr) {
        return create_array(handle, nullptr);
    }
    const CUDA_ARRAY3D_DESCRIPTOR as_3d{desc->Width, desc->Height, 0, desc->Format,
                                        desc->NumChannels, 0};
    return create_array(handle, &as_3d);
}

MOCK_API CUresult cuArray3DCreate_v2(CUarray* handle, const CUDA_ARRAY3D_DESCRIPTOR* desc) {
    return create_array(handle, desc);
}

MOCK_API CUresult cuArrayDestroy(CUarray handle) {
    return mockcuda::with_initialized([&](Process& p) {
        auto it = p.allocations.find(reinterpret_cast<uintptr_t>(handle));
        if (it == p.allocations.end() || !it->second.is_array) {
            return CUDA_ERROR_INVALID_HANDLE;
        }
        release(p, it);
        return CUDA_SUCCESS;
    });
}

MOCK_API CUresult cuPointerGetAttribute(void* data, CUpointer_attribute attribute,
                                        CUdeviceptr ptr) {
    return mockcuda::with_initialized([&](Process& p) {
        const Allocation* allocation = mockcuda::find_allocation(p, ptr, 1);
        if (data == nullptr || allocation == nullptr) {
            return CUDA_ERROR_INVALID_VALUE;
        }
        switch (attribute) {
        case CU_POINTER_ATTRIBUTE_DEVICE_ORDINAL:
            *static_cast<int*>(data) = allocation->device;
            return CUDA_SUCCESS;
        case CU_POINTER_ATTRIBUTE_CONTEXT:
            *static_cast<CUcontext*>(data) = allocation->ctx;
            return CUDA_SUCCESS;
        case CU_POINTER_ATTRIBUTE_MEMORY_TYPE:  // VMM host memory has no device
            *static_cast<unsigned int*>(data) =
                allocation->device < 0 ? CU_MEMORYTYPE_HOST : CU_MEMORYTYPE_DEVICE;
            return CUDA_SUCCESS;
        }
        return CUDA_ERROR_INVALID_VALUE;
    });
}

// Only a linear allocation's base can be exported; VMM memory goes through shareable handles.
MOCK_API CUresult cuIpcGetMemHandle(CUipcMemHandle* handle, CUdeviceptr dptr) {
    return mockcuda::with_context([&](Process& p, CUctx_st*) {
        if (handle == nullptr || find_linear(p, dptr) == p.allocations.end()) {
            return CUDA_ERROR_INVALID_VALUE;
        }
        // Names the allocation to this process; no other process opens it in the mock.
        std::memset(handle->reserved, 0, sizeof handle->reserved);
        std::memcpy(handle->reserved, &dptr, sizeof dptr);
        return CUDA_SUCCESS;
    });
}
