/* Resolves driver entry points through cuGetProcAddress, as the CUDA runtime does, and calls
 * them. Prints <name>_<version>_<flag>=<result>:<status>:<symbol it is> per lookup. */
#include <string.h>

#include "common.h"

typedef CUresult (*alloc_fn)(CUdeviceptr*, size_t);
typedef CUresult (*free_fn)(CUdeviceptr);
typedef CUresult (*info_fn)(size_t*, size_t*);

struct Known {
    const char* name;
    void* address;
};

extern CUresult cuStreamSynchronize_ptsz(CUstream stream);
extern CUresult cuMemcpyHtoD_v2_ptds(CUdeviceptr dst, const void* src, size_t bytes);

static const char* which(void* address) {
    const struct Known known[] = {
        {"cuMemAlloc_v2", (void*)cuMemAlloc_v2},
        {"cuMemGetInfo_v2", (void*)cuMemGetInfo_v2},
        {"cuStreamSynchronize", (void*)cuStreamSynchronize},
        {"cuStreamSynchronize_ptsz", (void*)cuStreamSynchronize_ptsz},
        {"cuMemcpyHtoD_v2", (void*)cuMemcpyHtoD_v2},
        {"cuMemcpyHtoD_v2_ptds", (void*)cuMemcpyHtoD_v2_ptds},
        {"cuGetProcAddress_v2", (void*)cuGetProcAddress_v2},
        {"cuEventElapsedTime_v2", (void*)cuEventElapsedTime_v2},
    };
    if (address == NULL) {
        return "null";
    }
    for (size_t i = 0; i < sizeof known / sizeof known[0]; ++i) {
        if (known[i].address == address) {
            return known[i].name;
        }
    }
    return "other";
}

static void* lookup(const char* name, int version, cuuint64_t flags) {
    void* pfn = (void*)1;
    CUdriverProcAddressQueryResult status = (CUdriverProcAddressQueryResult)-1;
    CUresult r = cuGetProcAddress(name, &pfn, version, flags, &status);
    printf("%s_%d_%d=%d:%d:%s\n", name, version, (int)flags, (int)r, (int)status, which(pfn));
    return pfn;
}

int main(void) {
    /* Before cuInit, as the runtime does. */
    alloc_fn alloc = (alloc_fn)lookup("cuMemAlloc", 12000, CU_GET_PROC_ADDRESS_DEFAULT);
    lookup("cuMemGetInfo", 3020, CU_GET_PROC_ADDRESS_DEFAULT);
    lookup("cuMemAlloc", 2000, CU_GET_PROC_ADDRESS_DEFAULT);
    lookup("cuNoSuchThing", 12000, CU_GET_PROC_ADDRESS_DEFAULT);
    lookup("cuStreamSynchronize", 12000, CU_GET_PROC_ADDRESS_DEFAULT);
    lookup("cuStreamSynchronize", 12000, CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM);
    lookup("cuMemcpyHtoD", 12000, CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM);
    lookup("cuGetProcAddress", 12000, CU_GET_PROC_ADDRESS_DEFAULT);
    lookup("cuEventElapsedTime", 12080, CU_GET_PROC_ADDRESS_DEFAULT);
    void* pfn;
    printf("null_symbol=%d\n", (int)cuGetProcAddress(NULL, &pfn, 12000, 0, NULL));
    printf("bad_flags=%d\n", (int)cuGetProcAddress("cuInit", &pfn, 12000, 8, NULL));

    setup();
    CUdeviceptr ptr;
    CHECK(alloc(&ptr, 4096));
    info_fn info = (info_fn)lookup("cuMemGetInfo", 12000, CU_GET_PROC_ADDRESS_DEFAULT);
    free_fn release = (free_fn)lookup("cuMemFree", 12000, CU_GET_PROC_ADDRESS_DEFAULT);
    size_t free_bytes, total;
    CHECK(info(&free_bytes, &total));
    printf("used_after_alloc=%zu\n", total - free_bytes);
    CHECK(release(ptr));
    CHECK(info(&free_bytes, &total));
    printf("used_after_free=%zu\n", total - free_bytes);
    return 0;
}
