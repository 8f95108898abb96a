/* Checks allocation paths other than cuMemAlloc: what each charges and that the memory
 * behaves like memory. Prints key=value lines. */
#include <string.h>

#include "common.h"

static size_t used(void) {
    size_t free_bytes, total;
    CHECK(cuMemGetInfo(&free_bytes, &total));
    return total - free_bytes;
}

int main(void) {
    setup();
    CUdeviceptr ptr;
    size_t pitch;
    size_t before = used();
    CHECK(cuMemAllocPitch(&ptr, &pitch, 1000, 3, 4));
    printf("pitch=%zu\npitch_charged=%zu\n", pitch, used() - before);
    CHECK(cuMemFree(ptr));

    CUarray array;
    CUDA_ARRAY_DESCRIPTOR desc = {100, 10, CU_AD_FORMAT_FLOAT, 4};
    before = used();
    CHECK(cuArrayCreate(&array, &desc));
    printf("array_charged=%zu\n", used() - before);
    CHECK(cuArrayDestroy(array));

    void* host;
    before = used();
    CHECK(cuMemAllocHost(&host, 1 << 20));
    printf("host_charged=%zu\n", used() - before);
    CHECK(cuMemFreeHost(host));

    CUmemAllocationProp prop;
    memset(&prop, 0, sizeof prop);
    prop.type = CU_MEM_ALLOCATION_TYPE_PINNED;
    prop.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
    size_t granularity;
    CHECK(cuMemGetAllocationGranularity(&granularity, &prop, CU_MEM_ALLOC_GRANULARITY_MINIMUM));
    printf("granularity=%zu\n", granularity);
    printf("vmm_unaligned=%d\n",
           (int)cuMemCreate(&(CUmemGenericAllocationHandle){0}, granularity + 1, &prop, 0));
    CUmemGenericAllocationHandle handle;
    before = used();
    CHECK(cuMemCreate(&handle, 2 * granularity, &prop, 0));
    printf("vmm_charged=%zu\n", used() - before);
    CUdeviceptr va;
    CHECK(cuMemAddressReserve(&va, 4 * granularity, 0, 0, 0));
    /* The same physical memory mapped twice: writes through one show through the other. */
    CHECK(cuMemMap(va, 2 * granularity, 0, handle, 0));
    CHECK(cuMemMap(va + 2 * granularity, 2 * granularity, 0, handle, 0));
    printf("vmm_double_map=%d\n", (int)cuMemMap(va, 2 * granularity, 0, handle, 0));
    CUmemAccessDesc access = {{CU_MEM_LOCATION_TYPE_DEVICE, 0}, CU_MEM_ACCESS_FLAGS_PROT_READWRITE};
    CHECK(cuMemSetAccess(va, 4 * granularity, &access, 1));
    const char message[] = "through the mapping";
    char back[sizeof message];
    CHECK(cuMemcpyHtoD(va + 100, message, sizeof message));
    CHECK(cuMemcpyDtoH(back, va + 2 * granularity + 100, sizeof message));
    printf("vmm_alias=%d\n", memcmp(message, back, sizeof message) == 0);
    int ordinal = -1;
    CHECK(cuPointerGetAttribute(&ordinal, CU_POINTER_ATTRIBUTE_DEVICE_ORDINAL, va + 5));
    printf("vmm_ordinal=%d\n", ordinal);
    CHECK(cuMemRelease(handle));
    printf("vmm_charged_while_mapped=%zu\n", used() - before);
    CHECK(cuMemUnmap(va, 2 * granularity));
    CHECK(cuMemUnmap(va + 2 * granularity, 2 * granularity));
    printf("vmm_charged_after_unmap=%zu\n", used() - before);
    CHECK(cuMemAddressFree(va, 4 * granularity));

    CHECK(cuMemAlloc(&ptr, 256));
    CHECK(cuMemsetD8(ptr, 0xab, 256));
    unsigned char bytes[256];
    CHECK(cuMemcpyDtoH(bytes, ptr, sizeof bytes));
    printf("memset_ok=%d\n", bytes[0] == 0xab && bytes[255] == 0xab);
    CHECK(cuPointerGetAttribute(&ordinal, CU_POINTER_ATTRIBUTE_DEVICE_ORDINAL, ptr + 10));
    printf("ordinal=%d\n", ordinal);
    return 0;
}
