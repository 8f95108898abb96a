// Virtual memory management: physical handles (cuMemCreate, device memory charged at creation,
// host memory charged to no device), reserved address ranges, and mappings of the one into the
// other. A handle's bytes live in a memfd, so every mapping of it sees the same memory, as on
// the device. As on a GPU, a new mapping is not accessible to the device until
// cuMemSetAccess grants it, and cuMemUnmap / cuMemSetAccess work on whole mappings only.
#include <sys/mman.h>
#include <unistd.h>

#include <vector>

#include "export.h"
#include "guards.h"
#include "runtime.h"

using mockcuda::Allocation;
using mockcuda::Physical;
using mockcuda::Process;

namespace {

constexpr uint64_t kGranularity = 2ULL << 20;

// A device by ordinal, or host memory (any NUMA node).
CUresult check_location(const Process& p, const CUmemLocation& location) {
    switch (location.type) {
    case CU_MEM_LOCATION_TYPE_DEVICE: return mockcuda::check_device(p, location.id);
    case CU_MEM_LOCATION_TYPE_HOST: return CUDA_SUCCESS;
    case CU_MEM_LOCATION_TYPE_HOST_NUMA:
        return location.id >= 0 ? CUDA_SUCCESS : CUDA_ERROR_INVALID_VALUE;
    default: return CUDA_ERROR_INVALID_VALUE;
    }
}

CUresult check_prop(const Process& p, const CUmemAllocationProp* prop) {
    if (prop == nullptr || prop->type != CU_MEM_ALLOCATION_TYPE_PINNED) {
        return CUDA_ERROR_INVALID_VALUE;
    }
    return check_location(p, prop->location);
}

bool aligned(uint64_t value) { return value != 0 && value % kGranularity == 0; }

// Frees a handle's memory once it is both released and unmapped everywhere.
void drop_if_unused(Process& p, uint64_t handle) {
    auto it = p.physical.find(handle);
    if (it == p.physical.end() || !it->second.released || it->second.mappings > 0) {
        return;
    }
    close(it->second.fd);
    if (it->second.device >= 0) {
        p.shared->uncharge(it->second.device, it->second.size);
    }
    p.physical.erase(it);
}

bool overlaps_mapping(const Process& p, uintptr_t ptr, uint64_t size) {
    auto it = p.allocations.lower_bound(ptr);
    if (it != p.allocations.end() && it->first < ptr + size) {
        return true;
    }
    return mockcuda::find_allocation(p, ptr, 1) != nullptr;
}

// The bases of the mappings that [ptr, ptr + size) consists of, whole and back to back (one
// call often spans several chunks); false when the range cuts a mapping or covers a hole.
bool whole_mappings(const Process& p, uintptr_t ptr, uint64_t size, std::vector<uintptr_t>& bases) {
    if (size == 0 || size > UINTPTR_MAX - ptr) {
        return false;
    }
    const uintptr_t end = ptr + size;
    for (uintptr_t at = ptr; at < end;) {
        auto it = p.allocations.find(at);
        if (it == p.allocations.end() || !it->second.is_vmm || it->second.size > end - at) {
            return false;
        }
        bases.push_back(at);
        at += it->second.size;
    }
    return true;
}

// Whether an access descriptor lets the device touch memory, or INVALID_VALUE.
CUresult grants(const CUmemAccessDesc& desc, bool& device_access) {
    switch (desc.flags) {
    case CU_MEM_ACCESS_FLAGS_PROT_NONE: device_access = false; return CUDA_SUCCESS;
    case CU_MEM_ACCESS_FLAGS_PROT_READ:
    case CU_MEM_ACCESS_FLAGS_PROT_READWRITE: device_access = true; return CUDA_SUCCESS;
    }
    return CUDA_ERROR_INVALID_VALUE;
}

}  // namespace

MOCK_API CUresult cuMemGetAllocationGranularity(size_t* granularity,
                                                const CUmemAllocationProp* prop,
                                                CUmemAllocationGranularity_flags option) {
    return mockcuda::with_initialized([&](Process& p) {
        if (granularity == nullptr || (option != CU_MEM_ALLOC_GRANULARITY_MINIMUM &&
                                       option != CU_MEM_ALLOC_GRANULARITY_RECOMMENDED)) {
            return CUDA_ERROR_INVALID_VALUE;
        }
        if (CUresult r = check_prop(p, prop)) {
            return r;
        }
        *granularity = kGranularity;
        return CUDA_SUCCESS;
    });
}

MOCK_API CUresult cuMemCreate(CUmemGenericAllocationHandle* handle, size_t size,
                              const CUmemAllocationProp* prop, unsigned long long flags) {
    return mockcuda::with_initialized([&](Process& p) {
        if (p.faulted) {
            return CUDA_ERROR_ILLEGAL_ADDRESS;
        }
        if (handle == nullptr || flags != 0 || !aligned(size)) {
            return CUDA_ERROR_INVALID_VALUE;
        }
        if (CUresult r = check_prop(p, prop)) {
            return r;
        }
        const int64_t limit = p.config.fail_memcreate_after;
        if (limit >= 0 && p.memcreate_calls >= limit) {
            return CUDA_ERROR_OUT_OF_MEMORY;
        }
        // Where it lands, whatever context is current; host memory is charged to no device.
        const int device =
            prop->location.type == CU_MEM_LOCATION_TYPE_DEVICE ? prop->location.id : -1;
        if (device >= 0 && !p.shared->charge(device, size, p.config.memory)) {
            return CUDA_ERROR_OUT_OF_MEMORY;
        }
        const int fd = memfd_create("mockcuda", MFD_CLOEXEC);
        if (fd < 0 || ftruncate(fd, static_cast<off_t>(size)) != 0) {
            if (fd >= 0) {
                close(fd);
            }
            if (device >= 0) {
                p.shared->uncharge(device, size);
            }
            return CUDA_ERROR_OUT_OF_MEMORY;
        }
        ++p.memcreate_calls;
        const uint64_t id = p.next_physical++;
        p.physical[id] = Physical{fd, size, device};
        *handle = id;
        return CUDA_SUCCESS;
    });
}

MOCK_API CUresult cuMemRelease(CUmemGenericAllocationHandle handle) {
    return mockcuda::with_initialized([&](Process& p) {
        auto it = p.physical.find(handle);
        if (it == p.physical.end() || it->second.released) {
            return CUDA_ERROR_INVALID_VALUE;
        }
        it->second.released = true;
        drop_if_unused(p, handle);
        return CUDA_SUCCESS;
    });
}

MOCK_API CUresult cuMemAddressReserve(CUdeviceptr* ptr, size_t size, size_t alignment,
                                      CUdeviceptr addr, unsigned long long flags) {
    (void)addr;  // a hint only; the mock lets the kernel choose
    return mockcuda::with_initialized([&](Process& p) {
        if (ptr == nullptr || flags != 0 || !aligned(size) ||
            (alignment & (alignment - 1)) != 0) {
            return CUDA_ERROR_INVALID_VALUE;
        }
        const uint64_t align = alignment > kGranularity ? alignment : kGranularity;
        // Over-reserve, then trim both ends, to get an aligned range.
        void* raw = mmap(nullptr, size + align, PROT_NONE,
                         MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (raw == MAP_FAILED) {
            return CUDA_ERROR_OUT_OF_MEMORY;
        }
        const auto start = reinterpret_cast<uintptr_t>(raw);
        const uintptr_t base = (start + align - 1) / align * align;
        if (base > start) {
            munmap(raw, base - start);
        }
        munmap(reinterpret_cast<void*>(base + size), start + size + align - (base + size));
        p.reservations[base] = size;
        *ptr = base;
        return CUDA_SUCCESS;
    });
}

MOCK_API CUresult cuMemAddressFree(CUdeviceptr ptr, size_t size) {
    return mockcuda::with_initialized([&](Process& p) {
        auto it = p.reservations.find(ptr);
        if (it == p.reservations.end() || it->second != size || overlaps_mapping(p, ptr, size)) {
            return CUDA_ERROR_INVALID_VALUE;
        }
        munmap(reinterpret_cast<void*>(ptr), size);
        p.reservations.erase(it);
        return CUDA_SUCCESS;
    });
}

MOCK_API CUresult cuMemMap(CUdeviceptr ptr, size_t size, size_t offset,
                           CUmemGenericAllocationHandle handle, unsigned long long flags) {
    return mockcuda::with_initialized([&](Process& p) {
        if (flags != 0 || !aligned(size) || offset % kGranularity != 0 ||
            !mockcuda::within_reservation(p, ptr, size)) {
            return CUDA_ERROR_INVALID_VALUE;
        }
        auto it = p.physical.find(handle);
        if (it == p.physical.end() || it->second.released) {
            return CUDA_ERROR_INVALID_HANDLE;
        }
        Physical& physical = it->second;
        if (offset > physical.size || size > physical.size - offset) {
            return CUDA_ERROR_INVALID_VALUE;
        }
        if (overlaps_mapping(p, ptr, size)) {
            return CUDA_ERROR_ALREADY_MAPPED;
        }
        void* mapped = mmap(reinterpret_cast<void*>(ptr), size, PROT_READ | PROT_WRITE,
                            MAP_SHARED | MAP_FIXED, physical.fd, static_cast<off_t>(offset));
        if (mapped == MAP_FAILED) {
            return CUDA_ERROR_OUT_OF_MEMORY;
        }
        ++physical.mappings;
        p.allocations[ptr] =
            Allocation{size, 0, physical.device, nullptr, false, true, handle, false};
        return CUDA_SUCCESS;
    });
}

MOCK_API CUresult cuMemUnmap(CUdeviceptr ptr, size_t size) {
    return mockcuda::with_initialized([&](Process& p) {
        std::vector<uintptr_t> bases;
        if (!whole_mappings(p, ptr, size, bases)) {
            return CUDA_ERROR_INVALID_VALUE;
        }
        for (const uintptr_t base : bases) {
            auto it = p.allocations.find(base);
            // Back to an inaccessible reservation, as before the mapping.
            mmap(reinterpret_cast<void*>(base), it->second.size, PROT_NONE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1, 0);
            const uint64_t handle = it->second.handle;
            p.allocations.erase(it);
            --p.physical[handle].mappings;
            drop_if_unused(p, handle);
        }
        return CUDA_SUCCESS;
    });
}

// The device's access follows the descriptors for devices; host descriptors are accepted and
// change nothing the mock checks (only device work is checked).
MOCK_API CUresult cuMemSetAccess(CUdeviceptr ptr, size_t size, const CUmemAccessDesc* desc,
                                 size_t count) {
    return mockcuda::with_initialized([&](Process& p) {
        std::vector<uintptr_t> bases;
        if (desc == nullptr || count == 0 || !whole_mappings(p, ptr, size, bases)) {
            return CUDA_ERROR_INVALID_VALUE;
        }
        bool device_access = false;
        bool device_named = false;
        for (size_t i = 0; i < count; ++i) {
            bool granted = false;
            if (CUresult r = check_location(p, desc[i].location)) {
                return r;
            }
            if (CUresult r = grants(desc[i], granted)) {
                return r;
            }
            if (desc[i].location.type == CU_MEM_LOCATION_TYPE_DEVICE) {
                device_named = true;
                device_access = granted;
            }
        }
        for (const uintptr_t base : bases) {
            if (device_named) {
                p.allocations.find(base)->second.accessible = device_access;
            }
        }
        return CUDA_SUCCESS;
    });
}
