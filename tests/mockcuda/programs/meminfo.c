/* Reports device memory the three ways applications read it (cuMemGetInfo,
 * cuDeviceTotalMem, NVML), optionally after allocating some, and optionally holds the
 * allocation until stdin closes so that another process can look. With MEMINFO_GATE set it
 * prints "ready" first and starts only when a line arrives on stdin.
 * Usage: meminfo [bytes to allocate] [hold] */
#include <string.h>

#include "common.h"
#include "mockcuda/nvml.h"

int main(int argc, char** argv) {
    const size_t bytes = argc > 1 ? strtoull(argv[1], NULL, 10) : 0;
    const int hold = argc > 2 && strcmp(argv[2], "hold") == 0;
    gate("MEMINFO_GATE");
    setup();
    if (bytes > 0) {
        CUdeviceptr ptr;
        CHECK(cuMemAlloc(&ptr, bytes));
    }
    size_t free_bytes, total, device_total;
    CHECK(cuMemGetInfo(&free_bytes, &total));
    CHECK(cuDeviceTotalMem(&device_total, 0));
    printf("cu_free=%zu\ncu_total=%zu\ndevice_total=%zu\n", free_bytes, total, device_total);

    nvmlDevice_t device;
    nvmlMemory_t memory;
    nvmlMemory_v2_t memory2;
    memory2.version = nvmlMemory_v2;
    if (nvmlInit() != NVML_SUCCESS || nvmlDeviceGetHandleByIndex(0, &device) != NVML_SUCCESS ||
        nvmlDeviceGetMemoryInfo(device, &memory) != NVML_SUCCESS ||
        nvmlDeviceGetMemoryInfo_v2(device, &memory2) != NVML_SUCCESS) {
        fprintf(stderr, "NVML query failed\n");
        return 1;
    }
    printf("nvml_free=%llu\nnvml_total=%llu\nnvml_used=%llu\n", memory.free, memory.total,
           memory.used);
    printf("nvml2_free=%llu\nnvml2_total=%llu\nnvml2_used=%llu\n", memory2.free, memory2.total,
           memory2.used);
    nvmlShutdown();
    if (hold) {
        printf("ready=1\n");
        fflush(stdout);
        while (getchar() != EOF) {
        }
    }
    return 0;
}
