// Initialisation and device queries.
#include <cstdio>
#include <cstring>

#include "device_info.h"
#include "export.h"
#include "guards.h"
#include "runtime.h"

using mockcuda::Process;
using mockcuda::process;

namespace {

// A100-like figures; only their presence and consistency matter to the callers. `physical` is
// the device's index among all of them, as NVML numbers it.
int attribute_value(CUdevice_attribute attribute, int physical, bool& known) {
    known = true;
    switch (attribute) {
    case CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_BLOCK: return 1024;
    case CU_DEVICE_ATTRIBUTE_WARP_SIZE: return 32;
    case CU_DEVICE_ATTRIBUTE_CLOCK_RATE: return 1410000;
    case CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT: return 108;
    case CU_DEVICE_ATTRIBUTE_PCI_BUS_ID: return physical + 1;
    case CU_DEVICE_ATTRIBUTE_MEMORY_CLOCK_RATE: return 1215000;
    case CU_DEVICE_ATTRIBUTE_GLOBAL_MEMORY_BUS_WIDTH: return 5120;
    case CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR: return 8;
    case CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR: return 0;
    case CU_DEVICE_ATTRIBUTE_UNIFIED_ADDRESSING:
    case CU_DEVICE_ATTRIBUTE_MANAGED_MEMORY:
    case CU_DEVICE_ATTRIBUTE_VIRTUAL_MEMORY_MANAGEMENT_SUPPORTED:
    case CU_DEVICE_ATTRIBUTE_MEMORY_POOLS_SUPPORTED: return 1;
    }
    known = false;
    return 0;
}

// Behind both UUID entry points (neither calls the other: a call through an exported name
// could be interposed by a preloaded library).
CUresult get_uuid(CUuuid* uuid, CUdevice device) {
    return mockcuda::with_device(uuid != nullptr, device, [&](Process& p) {
        const auto bytes = mockcuda::device_uuid(mockcuda::physical_device(p, device));
        std::memcpy(uuid->bytes, bytes.data(), bytes.size());
        return CUDA_SUCCESS;
    });
}

}  // namespace

MOCK_API CUresult cuInit(unsigned int flags) {
    Process& p = process();
    std::lock_guard<std::mutex> lock(p.mutex);
    if (flags != 0) {
        return CUDA_ERROR_INVALID_VALUE;
    }
    if (p.initialized) {
        return CUDA_SUCCESS;
    }
    std::string error;
    if (!mockcuda::load_config(p.config, error)) {
        std::fprintf(stderr, "mockcuda: %s\n", error.c_str());
        return CUDA_ERROR_INVALID_VALUE;
    }
    if (p.config.visible.empty()) {
        return CUDA_ERROR_NO_DEVICE;
    }
    p.shared = mockcuda::SharedState::open(p.config.state_path, true, p.config.visible, error);
    if (!p.shared) {
        std::fprintf(stderr, "mockcuda: %s\n", error.c_str());
        return CUDA_ERROR_OPERATING_SYSTEM;
    }
    p.initialized = true;
    return CUDA_SUCCESS;
}

MOCK_API CUresult cuDriverGetVersion(int* version) {
    if (version == nullptr) {
        return CUDA_ERROR_INVALID_VALUE;
    }
    *version = mockcuda::driver_version();
    return CUDA_SUCCESS;
}

MOCK_API CUresult cuDeviceGetCount(int* count) {
    return mockcuda::with_initialized([&](Process& p) {
        if (count == nullptr) {
            return CUDA_ERROR_INVALID_VALUE;
        }
        *count = static_cast<int>(p.config.visible.size());
        return CUDA_SUCCESS;
    });
}

MOCK_API CUresult cuDeviceGet(CUdevice* device, int ordinal) {
    return mockcuda::with_device(device != nullptr, ordinal, [&](Process&) {
        *device = ordinal;
        return CUDA_SUCCESS;
    });
}

MOCK_API CUresult cuDeviceGetName(char* name, int len, CUdevice device) {
    return mockcuda::with_device(name != nullptr && len > 0, device, [&](Process& p) {
        std::snprintf(name, static_cast<size_t>(len), "%s", p.config.name.c_str());
        return CUDA_SUCCESS;
    });
}

MOCK_API CUresult cuDeviceGetUuid_v2(CUuuid* uuid, CUdevice device) {
    return get_uuid(uuid, device);
}

// The pre-11.4 entry point; the mock has no MIG, so both report the same UUID.
MOCK_API CUresult cuDeviceGetUuid(CUuuid* uuid, CUdevice device) {
    return get_uuid(uuid, device);
}

MOCK_API CUresult cuDeviceTotalMem_v2(size_t* bytes, CUdevice device) {
    return mockcuda::with_device(bytes != nullptr, device, [&](Process& p) {
        *bytes = p.config.memory;
        return CUDA_SUCCESS;
    });
}

MOCK_API CUresult cuDeviceGetAttribute(int* value, CUdevice_attribute attribute, CUdevice device) {
    return mockcuda::with_device(value != nullptr, device, [&](Process& p) {
        bool known = false;
        const int result = attribute_value(attribute, mockcuda::physical_device(p, device), known);
        if (!known) {
            return CUDA_ERROR_INVALID_VALUE;
        }
        *value = result;
        return CUDA_SUCCESS;
    });
}
