/* The VMM rules a GPU enforces, and the sticky fault that breaking them causes. Usage:
 * vmm rules | vmm failcreate | vmm fault <before_access|copy_before_access|remap|revoked|
 * unmapped|freed>. Prints key=value lines; a fault scenario prints the address it expects to
 * fault (expected), the faulting call's result (first), mockcudaLastFault's answer
 * (last_fault=<code>:<address>) and what later calls return. */
#include <string.h>

#include "common.h"
#include "mockcuda/mockcuda.h"

#define GRANULARITY ((size_t)2 << 20)
#define SHOW(name, call) printf("%s=%d\n", name, (int)(call))

static CUmemAllocationProp prop_at(CUmemLocationType type) {
    CUmemAllocationProp prop;
    memset(&prop, 0, sizeof prop);
    prop.type = CU_MEM_ALLOCATION_TYPE_PINNED;
    prop.location.type = type;
    return prop;
}

static CUmemGenericAllocationHandle create(CUmemLocationType type) {
    CUmemAllocationProp prop = prop_at(type);
    CUmemGenericAllocationHandle handle;
    CHECK(cuMemCreate(&handle, GRANULARITY, &prop, 0));
    return handle;
}

static CUresult set_access(CUdeviceptr va, size_t size, CUmemLocationType type, int id,
                           CUmemAccess_flags flags) {
    CUmemAccessDesc access = {{type, id}, flags};
    return cuMemSetAccess(va, size, &access, 1);
}

static void grant(CUdeviceptr va, size_t size) {
    CHECK(set_access(va, size, CU_MEM_LOCATION_TYPE_DEVICE, 0, CU_MEM_ACCESS_FLAGS_PROT_READWRITE));
}

static size_t used(void) {
    size_t free_bytes, total;
    CHECK(cuMemGetInfo(&free_bytes, &total));
    return total - free_bytes;
}

/* Two chunks mapped back to back at va, and what whole-mapping rules refuse. */
static void rules(CUfunction mock_fill) {
    static unsigned char pattern[2 * GRANULARITY], back[2 * GRANULARITY];
    CUdeviceptr va;
    CHECK(cuMemAddressReserve(&va, 4 * GRANULARITY, 0, 0, 0));
    CUmemGenericAllocationHandle first = create(CU_MEM_LOCATION_TYPE_DEVICE);
    CUmemGenericAllocationHandle second = create(CU_MEM_LOCATION_TYPE_DEVICE);
    CHECK(cuMemMap(va, GRANULARITY, 0, first, 0));
    CHECK(cuMemMap(va + GRANULARITY, GRANULARITY, 0, second, 0));
    SHOW("access_partial", set_access(va, GRANULARITY / 2, CU_MEM_LOCATION_TYPE_DEVICE, 0,
                                      CU_MEM_ACCESS_FLAGS_PROT_READWRITE));
    SHOW("access_bad_flags", set_access(va, GRANULARITY, CU_MEM_LOCATION_TYPE_DEVICE, 0,
                                        (CUmemAccess_flags)2));
    SHOW("access_bad_device", set_access(va, GRANULARITY, CU_MEM_LOCATION_TYPE_DEVICE, 9,
                                         CU_MEM_ACCESS_FLAGS_PROT_READWRITE));
    SHOW("access_host", set_access(va, GRANULARITY, CU_MEM_LOCATION_TYPE_HOST, 0,
                                   CU_MEM_ACCESS_FLAGS_PROT_READWRITE));
    SHOW("access_read_only", set_access(va, 2 * GRANULARITY, CU_MEM_LOCATION_TYPE_DEVICE, 0,
                                        CU_MEM_ACCESS_FLAGS_PROT_READ));
    grant(va, 2 * GRANULARITY);
    for (size_t i = 0; i < sizeof pattern; ++i) {
        pattern[i] = (unsigned char)(i * 31 + 7);
    }
    SHOW("copy_across_chunks", cuMemcpyHtoD(va, pattern, sizeof pattern));
    SHOW("unmap_half", cuMemUnmap(va, GRANULARITY / 2));
    SHOW("unmap_cutting_second", cuMemUnmap(va, GRANULARITY + GRANULARITY / 2));
    SHOW("unmap_past_last", cuMemUnmap(va + GRANULARITY, 2 * GRANULARITY));
    CHECK(cuMemcpyDtoH(back, va, sizeof back));
    printf("intact_after_refusals=%d\n", memcmp(pattern, back, sizeof back) == 0);
    SHOW("kernel_across_chunks", fill(mock_fill, va + 10, 2 * GRANULARITY - 20, 0x5c, NULL));
    CHECK(cuMemcpyDtoH(back, va, sizeof back));
    printf("kernel_wrote=%d\n", back[9] == pattern[9] && back[10] == 0x5c &&
                                    back[2 * GRANULARITY - 11] == 0x5c &&
                                    back[2 * GRANULARITY - 10] == pattern[2 * GRANULARITY - 10]);
    SHOW("unmap_both", cuMemUnmap(va, 2 * GRANULARITY));
    /* Remapped, the bytes are the handle's, once access is granted again. */
    CHECK(cuMemMap(va, GRANULARITY, 0, second, 0));
    grant(va, GRANULARITY);
    CHECK(cuMemcpyDtoH(back, va, GRANULARITY));
    printf("remap_keeps_bytes=%d\n", back[0] == 0x5c && back[GRANULARITY - 11] == 0x5c &&
                                         back[GRANULARITY - 10] == pattern[2 * GRANULARITY - 10]);

    /* Host memory: the same granularity, charged to no device, mappable as device memory. */
    CUmemAllocationProp host_prop = prop_at(CU_MEM_LOCATION_TYPE_HOST);
    size_t granularity = 0;
    CHECK(cuMemGetAllocationGranularity(&granularity, &host_prop,
                                        CU_MEM_ALLOC_GRANULARITY_RECOMMENDED));
    printf("host_granularity=%zu\n", granularity);
    size_t before = used();
    CUmemGenericAllocationHandle host = create(CU_MEM_LOCATION_TYPE_HOST);
    CUmemGenericAllocationHandle numa = create(CU_MEM_LOCATION_TYPE_HOST_NUMA);
    printf("host_charged=%zu\n", used() - before);
    CHECK(cuMemMap(va + 2 * GRANULARITY, GRANULARITY, 0, host, 0));
    CHECK(cuMemMap(va + 3 * GRANULARITY, GRANULARITY, 0, numa, 0));
    grant(va + 2 * GRANULARITY, 2 * GRANULARITY);
    CHECK(cuMemcpyHtoD(va + 2 * GRANULARITY, pattern, sizeof pattern));
    memset(back, 0, sizeof back);
    CHECK(cuMemcpyDtoH(back, va + 2 * GRANULARITY, sizeof back));
    printf("host_roundtrip=%d\n", memcmp(pattern, back, sizeof back) == 0);
    CHECK(cuMemUnmap(va + 2 * GRANULARITY, 2 * GRANULARITY));
    CHECK(cuMemRelease(host));
    CHECK(cuMemRelease(numa));

    CUipcMemHandle ipc;
    CUdeviceptr linear;
    CHECK(cuMemAlloc(&linear, 4096));
    SHOW("ipc_vmm", cuIpcGetMemHandle(&ipc, va));
    SHOW("ipc_linear", cuIpcGetMemHandle(&ipc, linear));
    SHOW("ipc_interior", cuIpcGetMemHandle(&ipc, linear + 16));
    SHOW("ipc_unknown", cuIpcGetMemHandle(&ipc, 12345));
    unsigned long long address = 1;
    SHOW("last_fault_code", mockcudaLastFault(&address));
    printf("last_fault_address=%llu\n", address);
}

/* Every create after the configured number fails. */
static void fail_create(void) {
    CUmemAllocationProp prop = prop_at(CU_MEM_LOCATION_TYPE_DEVICE);
    char name[32];
    for (int i = 0; i < 5; ++i) {
        CUmemGenericAllocationHandle handle;
        const CUresult r = cuMemCreate(&handle, GRANULARITY, &prop, 0);
        snprintf(name, sizeof name, "create_%d", i);
        SHOW(name, r);
        if (r == CUDA_SUCCESS) {
            CHECK(cuMemRelease(handle));  /* a release gives no call back */
        }
    }
}

/* Touches memory the device may not touch in the way `how` names; the address it expects. */
static CUresult break_rule(const char* how, CUfunction mock_fill, CUdeviceptr* expected) {
    static unsigned char data[GRANULARITY];
    CUdeviceptr va;
    CHECK(cuMemAddressReserve(&va, 2 * GRANULARITY, 0, 0, 0));
    CUmemGenericAllocationHandle handle = create(CU_MEM_LOCATION_TYPE_DEVICE);
    CHECK(cuMemMap(va, GRANULARITY, 0, handle, 0));
    *expected = va + 4096;
    if (strcmp(how, "before_access") == 0) {
        return fill(mock_fill, va + 4096, 64, 1, NULL);
    }
    if (strcmp(how, "copy_before_access") == 0) {
        return cuMemcpyHtoD(va + 4096, data, 64);
    }
    grant(va, GRANULARITY);
    CHECK(cuMemcpyHtoD(va, data, sizeof data));
    if (strcmp(how, "remap") == 0) {
        CHECK(cuMemUnmap(va, GRANULARITY));
        CHECK(cuMemMap(va, GRANULARITY, 0, handle, 0));
        return cuMemcpyDtoH(data, va + 4096, 64);
    }
    if (strcmp(how, "revoked") == 0) {
        CHECK(set_access(va, GRANULARITY, CU_MEM_LOCATION_TYPE_DEVICE, 0,
                         CU_MEM_ACCESS_FLAGS_PROT_NONE));
        return fill(mock_fill, va + 4096, 64, 1, NULL);
    }
    if (strcmp(how, "unmapped") == 0) {
        /* Runs from the mapped chunk into the reserved, unmapped one: faults where it ends. */
        *expected = va + GRANULARITY;
        return fill(mock_fill, va + 4096, GRANULARITY, 1, NULL);
    }
    CUdeviceptr freed;
    CHECK(cuMemAlloc(&freed, 4096));
    CHECK(cuMemFree(freed));
    *expected = freed;
    return fill(mock_fill, freed, 16, 1, NULL);
}

static void fault(const char* how, CUfunction mock_fill) {
    CUdeviceptr linear, expected = 0;
    CUstream stream;
    CUevent event;
    unsigned long long address = 0;
    CHECK(cuMemAlloc(&linear, 4096));
    CHECK(cuStreamCreate(&stream, CU_STREAM_NON_BLOCKING));
    CHECK(cuEventCreate(&event, 0));
    CHECK(cuEventRecord(event, stream));
    CHECK(mockcudaLastFault(&address));
    printf("before=%llu\n", address);
    SHOW("first", break_rule(how, mock_fill, &expected));
    printf("expected=%llu\n", (unsigned long long)expected);
    const CUresult r = mockcudaLastFault(&address);
    printf("last_fault=%d:%llu\n", (int)r, address);
    /* From now on, every call that uses the context fails, valid arguments or not. */
    CUdeviceptr ptr;
    CUmemAllocationProp prop = prop_at(CU_MEM_LOCATION_TYPE_DEVICE);
    CUmemGenericAllocationHandle handle;
    char byte = 0;
    SHOW("after_alloc", cuMemAlloc(&ptr, 16));
    SHOW("after_memcreate", cuMemCreate(&handle, GRANULARITY, &prop, 0));
    SHOW("after_copy", cuMemcpyHtoD(linear, &byte, 1));
    SHOW("after_async_copy", cuMemcpyHtoDAsync(linear, &byte, 1, stream));
    SHOW("after_memset", cuMemsetD8(linear, 0, 16));
    SHOW("after_launch", fill(mock_fill, linear, 16, 1, stream));
    SHOW("after_ctx_sync", cuCtxSynchronize());
    SHOW("after_stream_sync", cuStreamSynchronize(stream));
    SHOW("after_event_sync", cuEventSynchronize(event));
    SHOW("after_event_query", cuEventQuery(event));
}

int main(int argc, char** argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: vmm rules|failcreate|fault <how>\n");
        return 2;
    }
    setup();
    CUfunction mock_fill = kernel("mock_fill");
    if (strcmp(argv[1], "rules") == 0) {
        rules(mock_fill);
    } else if (strcmp(argv[1], "failcreate") == 0) {
        fail_create();
    } else if (strcmp(argv[1], "fault") == 0 && argc > 2) {
        fault(argv[2], mock_fill);
    } else {
        fprintf(stderr, "unknown scenario\n");
        return 2;
    }
    return 0;
}
