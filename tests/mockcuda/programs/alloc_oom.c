/* Allocates fixed-size chunks through one allocation path until the driver refuses.
 * Usage: alloc_oom <plain|pitch|managed|async|pool|array|array3d|vmm> <chunk bytes>
 * ("array3d": chunk / 64 x 4 x 16 bytes; "pool": a pool created on device 0). */
#include <string.h>

#include "common.h"

static CUresult allocate(const char* path, size_t chunk) {
    CUdeviceptr ptr;
    if (strcmp(path, "plain") == 0) {
        return cuMemAlloc(&ptr, chunk);
    }
    if (strcmp(path, "pitch") == 0) {
        size_t pitch;
        return cuMemAllocPitch(&ptr, &pitch, chunk, 1, 4);
    }
    if (strcmp(path, "managed") == 0) {
        return cuMemAllocManaged(&ptr, chunk, CU_MEM_ATTACH_GLOBAL);
    }
    if (strcmp(path, "async") == 0) {
        return cuMemAllocAsync(&ptr, chunk, NULL);
    }
    if (strcmp(path, "pool") == 0) {
        static CUmemoryPool pool = NULL;
        if (pool == NULL) {
            CUmemPoolProps props;
            memset(&props, 0, sizeof props);
            props.allocType = CU_MEM_ALLOCATION_TYPE_PINNED;
            props.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
            CHECK(cuMemPoolCreate(&pool, &props));
        }
        return cuMemAllocFromPoolAsync(&ptr, chunk, pool, NULL);
    }
    if (strcmp(path, "array3d") == 0) {
        CUarray array;
        CUDA_ARRAY3D_DESCRIPTOR desc = {chunk / 64, 4, 16, CU_AD_FORMAT_UNSIGNED_INT8, 1, 0};
        return cuArray3DCreate(&array, &desc);
    }
    if (strcmp(path, "array") == 0) {
        CUarray array;
        CUDA_ARRAY_DESCRIPTOR desc = {chunk, 0, CU_AD_FORMAT_UNSIGNED_INT8, 1};
        return cuArrayCreate(&array, &desc);
    }
    CUmemGenericAllocationHandle handle;
    CUmemAllocationProp prop;
    memset(&prop, 0, sizeof prop);
    prop.type = CU_MEM_ALLOCATION_TYPE_PINNED;
    prop.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
    prop.location.id = 0;
    return cuMemCreate(&handle, chunk, &prop, 0);
}

int main(int argc, char** argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: alloc_oom <path> <chunk bytes>\n");
        return 2;
    }
    const size_t chunk = strtoull(argv[2], NULL, 10);
    setup();
    size_t count = 0;
    CUresult last;
    while ((last = allocate(argv[1], chunk)) == CUDA_SUCCESS) {
        ++count;
    }
    size_t free_bytes, total;
    CHECK(cuMemGetInfo(&free_bytes, &total));
    printf("count=%zu\nerror=%d\nfree=%zu\ntotal=%zu\n", count, (int)last, free_bytes, total);
    return 0;
}
