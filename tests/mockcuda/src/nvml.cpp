// libnvidia-ml.so.1: device identity, memory and utilization of the simulated GPUs, read from
// the same shared state as the driver, so NVML and cuMemGetInfo always agree.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <numeric>
#include <string>
#include <vector>

#include "config.h"
#include "device_info.h"
#include "export.h"
#include "mockcuda/nvml.h"
#include "shared_state.h"

struct nvmlDevice_st {
    int index;
};

namespace {

constexpr int64_t kUtilizationWindowNs = 1000000000;  // NVML's sample period: one second

struct Library {
    std::mutex mutex;
    int users = 0;  // nvmlInit calls not yet matched by nvmlShutdown
    mockcuda::Config config;
    std::unique_ptr<mockcuda::SharedState> shared;
    nvmlDevice_st devices[mockcuda::kMaxDevices];
};

Library& library() {
    static Library* instance = [] {
        auto* created = new Library();
        for (int i = 0; i < mockcuda::kMaxDevices; ++i) {
            created->devices[i].index = i;
        }
        return created;
    }();
    return *instance;
}

// The device behind a handle, or -1 for a handle this library did not give out.
int device_index(const Library& lib, nvmlDevice_t device) {
    for (int i = 0; i < lib.config.devices; ++i) {
        if (device == &lib.devices[i]) {
            return i;
        }
    }
    return -1;
}

// UNINITIALIZED outside nvmlInit .. nvmlShutdown; otherwise `body(library)`, all under the
// library's mutex.
template <typename Body>
nvmlReturn_t with_library(Body body) {
    Library& lib = library();
    std::lock_guard<std::mutex> lock(lib.mutex);
    if (lib.users == 0) {
        return NVML_ERROR_UNINITIALIZED;
    }
    return body(lib);
}

// As with_library, then INVALID_ARGUMENT for a handle this library did not give out or a null
// `out`; otherwise `body(library, device index)`.
template <typename Body>
nvmlReturn_t with_device(nvmlDevice_t device, const void* out, Body body) {
    return with_library([&](Library& lib) {
        const int index = device_index(lib, device);
        if (index < 0 || out == nullptr) {
            return NVML_ERROR_INVALID_ARGUMENT;
        }
        return body(lib, index);
    });
}

nvmlReturn_t copy_text(const std::string& text, char* out, unsigned int length) {
    if (text.size() + 1 > length) {
        return NVML_ERROR_INSUFFICIENT_SIZE;
    }
    std::memcpy(out, text.c_str(), text.size() + 1);
    return NVML_SUCCESS;
}

// Behind both memory-info entry points (neither calls the other: a call through an exported
// name could be interposed by a preloaded library).
nvmlReturn_t memory_info(nvmlDevice_t device, nvmlMemory_t* memory) {
    return with_device(device, memory, [&](Library& lib, int index) {
        const uint64_t total = lib.config.memory;
        const uint64_t used = std::min(lib.shared->used(index), total);
        *memory = nvmlMemory_t{total, total - used, used};
        return NVML_SUCCESS;
    });
}

// Behind nvmlInit_v2 and nvmlInitWithFlags (neither calls the other through its exported name).
nvmlReturn_t init_library() {
    Library& lib = library();
    std::lock_guard<std::mutex> lock(lib.mutex);
    if (lib.users > 0) {
        ++lib.users;
        return NVML_SUCCESS;
    }
    std::string error;
    if (!mockcuda::load_config(lib.config, error)) {
        std::fprintf(stderr, "mockcuda: %s\n", error.c_str());
        return NVML_ERROR_UNKNOWN;
    }
    // NVML sees every device under its physical index, whatever CUDA_VISIBLE_DEVICES says.
    std::vector<int> every(static_cast<size_t>(lib.config.devices));
    std::iota(every.begin(), every.end(), 0);
    lib.shared = mockcuda::SharedState::open(lib.config.state_path, false, every, error);
    if (!lib.shared) {
        std::fprintf(stderr, "mockcuda: %s\n", error.c_str());
        return NVML_ERROR_UNKNOWN;
    }
    lib.users = 1;
    return NVML_SUCCESS;
}

}  // namespace

MOCK_API nvmlReturn_t nvmlInit_v2(void) {
    return init_library();
}

MOCK_API nvmlReturn_t nvmlShutdown(void) {
    return with_library([](Library& lib) {
        if (--lib.users == 0) {
            lib.shared->release();
            lib.shared.reset();
        }
        return NVML_SUCCESS;
    });
}

MOCK_API const char* nvmlErrorString(nvmlReturn_t result) {
    switch (result) {
    case NVML_SUCCESS: return "Success";
    case NVML_ERROR_UNINITIALIZED: return "Uninitialized";
    case NVML_ERROR_INVALID_ARGUMENT: return "Invalid Argument";
    case NVML_ERROR_NOT_SUPPORTED: return "Not Supported";
    case NVML_ERROR_INSUFFICIENT_SIZE: return "Insufficient Size";
    case NVML_ERROR_DRIVER_NOT_LOADED: return "Driver Not Loaded";
    case NVML_ERROR_ARGUMENT_VERSION_MISMATCH: return "Argument Version Mismatch";
    case NVML_ERROR_UNKNOWN: return "Unknown Error";
    }
    return "Unknown Error";
}

MOCK_API nvmlReturn_t nvmlDeviceGetCount_v2(unsigned int* count) {
    return with_library([&](Library& lib) {
        if (count == nullptr) {
            return NVML_ERROR_INVALID_ARGUMENT;
        }
        *count = static_cast<unsigned int>(lib.config.devices);
        return NVML_SUCCESS;
    });
}

MOCK_API nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned int index, nvmlDevice_t* device) {
    return with_library([&](Library& lib) {
        if (device == nullptr || index >= static_cast<unsigned int>(lib.config.devices)) {
            return NVML_ERROR_INVALID_ARGUMENT;
        }
        *device = &lib.devices[index];
        return NVML_SUCCESS;
    });
}

MOCK_API nvmlReturn_t nvmlDeviceGetName(nvmlDevice_t device, char* name, unsigned int length) {
    return with_device(device, name, [&](Library& lib, int) {
        return copy_text(lib.config.name, name, length);
    });
}

MOCK_API nvmlReturn_t nvmlDeviceGetUUID(nvmlDevice_t device, char* uuid, unsigned int length) {
    return with_device(device, uuid, [&](Library&, int index) {
        return copy_text(mockcuda::device_uuid_string(index), uuid, length);
    });
}

MOCK_API nvmlReturn_t nvmlDeviceGetMemoryInfo(nvmlDevice_t device, nvmlMemory_t* memory) {
    return memory_info(device, memory);
}

MOCK_API nvmlReturn_t nvmlDeviceGetMemoryInfo_v2(nvmlDevice_t device, nvmlMemory_v2_t* memory) {
    if (memory != nullptr && memory->version != nvmlMemory_v2) {
        return NVML_ERROR_ARGUMENT_VERSION_MISMATCH;
    }
    nvmlMemory_t v1{};
    if (nvmlReturn_t r = memory_info(device, memory == nullptr ? nullptr : &v1)) {
        return r;
    }
    memory->total = v1.total;
    memory->reserved = 0;
    memory->free = v1.free;
    memory->used = v1.used;
    return NVML_SUCCESS;
}

// Busy time over the last second; the simulation has no separate memory-controller activity,
// so memory utilization reports the same figure.
MOCK_API nvmlReturn_t nvmlDeviceGetUtilizationRates(nvmlDevice_t device,
                                                    nvmlUtilization_t* utilization) {
    return with_device(device, utilization, [&](Library& lib, int index) {
        const double busy = lib.shared->utilization(index, kUtilizationWindowNs);
        const auto percent = static_cast<unsigned int>(std::lround(std::min(busy, 1.0) * 100.0));
        *utilization = nvmlUtilization_t{percent, percent};
        return NVML_SUCCESS;
    });
}

// ---- Device queries for GPU discovery (what the node agent reads through pynvml) ----------
// Declared here rather than in mockcuda/nvml.h: no test program calls them, only pynvml, which
// looks them up by name. Enum arguments of the documented ABI are plain ints in C.

namespace {

constexpr int kP2PCapsIndexNvlink = 2;  // NVML_P2P_CAPS_INDEX_NVLINK
constexpr unsigned int kP2PStatusOk = 0;
constexpr unsigned int kP2PStatusNotSupported = 5;

// MOCKCUDA_NVLINK: "1" puts every device in one NVLink domain (an HGX board behind NVSwitches),
// "0" or unset leaves them on PCIe only. Read per query: only discovery asks, and rarely.
bool nvlink_enabled(bool& enabled) {
    const char* text = std::getenv("MOCKCUDA_NVLINK");
    if (text == nullptr || std::strcmp(text, "0") == 0) {
        enabled = false;
        return true;
    }
    if (std::strcmp(text, "1") == 0) {
        enabled = true;
        return true;
    }
    std::fprintf(stderr, "mockcuda: MOCKCUDA_NVLINK: must be 0 or 1, got '%s'\n", text);
    return false;
}

}  // namespace

// nvmlInit with flags: NO_GPUS / NO_ATTACH change what a real driver attaches to, which a
// simulated device does not need, so every flag initialises the same way.
MOCK_API nvmlReturn_t nvmlInitWithFlags(unsigned int) {
    return init_library();
}

// Two NUMA nodes, the first half of the devices on node 0 and the rest on node 1, as on a
// two-socket server.
MOCK_API nvmlReturn_t nvmlDeviceGetNumaNodeId(nvmlDevice_t device, unsigned int* node) {
    return with_device(device, node, [&](Library& lib, int ordinal) {
        *node = static_cast<unsigned int>(ordinal * 2 / lib.config.devices);
        return NVML_SUCCESS;
    });
}

MOCK_API nvmlReturn_t nvmlDeviceGetP2PStatus(nvmlDevice_t first, nvmlDevice_t second,
                                             int capability, unsigned int* status) {
    return with_device(first, status, [&](Library& lib, int ordinal) {
        const int other = device_index(lib, second);
        if (other < 0 || other == ordinal) {
            return NVML_ERROR_INVALID_ARGUMENT;
        }
        bool nvlink = false;
        if (!nvlink_enabled(nvlink)) {
            return NVML_ERROR_UNKNOWN;
        }
        *status = capability == kP2PCapsIndexNvlink && nvlink ? kP2PStatusOk
                                                             : kP2PStatusNotSupported;
        return NVML_SUCCESS;
    });
}
