/* Copies and memsets through cuGetProcAddress, as the CUDA runtime reaches them, each timed
 * with events and its bytes checked. Usage: copies <bytes> <0|2: cuGetProcAddress flags, 2 =
 * per-thread default stream> | copies query <bytes> | copies errors. Prints
 * elapsed_<op>=<ms> and ok_<op>=<1 when the bytes are right> per operation. */
#include <string.h>

#include "common.h"

typedef CUresult (*htod_fn)(CUdeviceptr, const void*, size_t);
typedef CUresult (*dtoh_fn)(void*, CUdeviceptr, size_t);
typedef CUresult (*dtod_fn)(CUdeviceptr, CUdeviceptr, size_t);
typedef CUresult (*set8_fn)(CUdeviceptr, unsigned char, size_t);
typedef CUresult (*set16_fn)(CUdeviceptr, unsigned short, size_t);
typedef CUresult (*set32_fn)(CUdeviceptr, unsigned int, size_t);
typedef CUresult (*htod_async_fn)(CUdeviceptr, const void*, size_t, CUstream);
typedef CUresult (*dtoh_async_fn)(void*, CUdeviceptr, size_t, CUstream);
typedef CUresult (*dtod_async_fn)(CUdeviceptr, CUdeviceptr, size_t, CUstream);
typedef CUresult (*set8_async_fn)(CUdeviceptr, unsigned char, size_t, CUstream);
typedef CUresult (*set16_async_fn)(CUdeviceptr, unsigned short, size_t, CUstream);
typedef CUresult (*set32_async_fn)(CUdeviceptr, unsigned int, size_t, CUstream);

static cuuint64_t g_flags;

static void* resolve(const char* name) {
    void* pfn = NULL;
    CHECK(cuGetProcAddress(name, &pfn, 12080, g_flags, NULL));
    return pfn;
}

static CUstream g_stream;
static CUevent g_start, g_end;

/* Brackets one operation with events on `stream` (NULL: the default stream). */
static void begin(CUstream stream) { CHECK(cuEventRecord(g_start, stream)); }

static void finish(const char* op, CUstream stream, int ok) {
    float ms = 0;
    CHECK(cuEventRecord(g_end, stream));
    CHECK(cuEventSynchronize(g_end));
    CHECK(cuEventElapsedTime(&ms, g_start, g_end));
    printf("elapsed_%s=%.6f\nok_%s=%d\n", op, ms, op, ok);
}

/* Every byte of `ptr` (device memory is host memory in the mock) repeats `pattern`. */
static int repeats(CUdeviceptr ptr, size_t bytes, const void* pattern, size_t width) {
    const unsigned char* p = (const unsigned char*)(uintptr_t)ptr;
    for (size_t i = 0; i < bytes; i += width) {
        if (memcmp(p + i, pattern, width) != 0) {
            return 0;
        }
    }
    return 1;
}

static int same(CUdeviceptr ptr, const void* host, size_t bytes) {
    return memcmp((const void*)(uintptr_t)ptr, host, bytes) == 0;
}

static void measure(size_t bytes) {
    unsigned char *source, *back;
    CUdeviceptr d1, d2;
    CHECK(cuMemHostAlloc((void**)&source, bytes, CU_MEMHOSTALLOC_PORTABLE));
    CHECK(cuMemAllocHost((void**)&back, bytes));
    CHECK(cuMemAlloc(&d1, bytes));
    CHECK(cuMemAlloc(&d2, bytes));
    for (size_t i = 0; i < bytes; ++i) {
        source[i] = (unsigned char)(i * 11 + 3);
    }
    const unsigned short s16 = 0xbeef;
    const unsigned int s32 = 0xdeadbeefu;
    const unsigned char s8 = 0x5d;

    begin(NULL);
    CHECK(((htod_fn)resolve("cuMemcpyHtoD"))(d1, source, bytes));
    finish("htod", NULL, same(d1, source, bytes));
    begin(NULL);
    CHECK(((dtoh_fn)resolve("cuMemcpyDtoH"))(back, d1, bytes));
    finish("dtoh", NULL, memcmp(back, source, bytes) == 0);
    begin(NULL);
    CHECK(((dtod_fn)resolve("cuMemcpyDtoD"))(d2, d1, bytes));
    finish("dtod", NULL, same(d2, source, bytes));
    CHECK(cuMemsetD8(d2, 0, bytes));
    begin(NULL);
    CHECK(((dtod_fn)resolve("cuMemcpy"))(d2, d1, bytes));
    finish("memcpy_dtod", NULL, same(d2, source, bytes));
    begin(NULL);
    CHECK(((dtod_fn)resolve("cuMemcpy"))((CUdeviceptr)(uintptr_t)back, d1, bytes));
    finish("memcpy_dtoh", NULL, memcmp(back, source, bytes) == 0);
    begin(NULL);
    CHECK(((set8_fn)resolve("cuMemsetD8"))(d1, s8, bytes));
    finish("memset8", NULL, repeats(d1, bytes, &s8, 1));
    begin(NULL);
    CHECK(((set16_fn)resolve("cuMemsetD16"))(d1, s16, bytes / 2));
    finish("memset16", NULL, repeats(d1, bytes, &s16, 2));
    begin(NULL);
    CHECK(((set32_fn)resolve("cuMemsetD32"))(d1, s32, bytes / 4));
    finish("memset32", NULL, repeats(d1, bytes, &s32, 4));

    begin(g_stream);
    CHECK(((htod_async_fn)resolve("cuMemcpyHtoDAsync"))(d1, source, bytes, g_stream));
    finish("htod_async", g_stream, same(d1, source, bytes));
    memset(back, 0, bytes);
    begin(g_stream);
    CHECK(((dtoh_async_fn)resolve("cuMemcpyDtoHAsync"))(back, d1, bytes, g_stream));
    finish("dtoh_async", g_stream, memcmp(back, source, bytes) == 0);
    CHECK(cuMemsetD8(d2, 0, bytes));
    begin(g_stream);
    CHECK(((dtod_async_fn)resolve("cuMemcpyDtoDAsync"))(d2, d1, bytes, g_stream));
    finish("dtod_async", g_stream, same(d2, source, bytes));
    CHECK(cuMemsetD8(d2, 0, bytes));
    begin(g_stream);
    CHECK(((dtod_async_fn)resolve("cuMemcpyAsync"))(d2, d1, bytes, g_stream));
    finish("memcpy_async_dtod", g_stream, same(d2, source, bytes));
    begin(g_stream);
    CHECK(((set8_async_fn)resolve("cuMemsetD8Async"))(d1, s8, bytes, g_stream));
    finish("memset8_async", g_stream, repeats(d1, bytes, &s8, 1));
    begin(g_stream);
    CHECK(((set16_async_fn)resolve("cuMemsetD16Async"))(d1, s16, bytes / 2, g_stream));
    finish("memset16_async", g_stream, repeats(d1, bytes, &s16, 2));
    begin(g_stream);
    CHECK(((set32_async_fn)resolve("cuMemsetD32Async"))(d1, s32, bytes / 4, g_stream));
    finish("memset32_async", g_stream, repeats(d1, bytes, &s32, 4));
}

/* An async copy returns before its work completes; a synchronous one after. */
static void query(size_t bytes) {
    unsigned char* host;
    CUdeviceptr d;
    CHECK(cuMemAllocHost((void**)&host, bytes));
    CHECK(cuMemAlloc(&d, bytes));
    CHECK(cuMemcpyHtoDAsync(d, host, bytes, g_stream));
    printf("async_query=%d\n", (int)cuStreamQuery(g_stream));
    CHECK(cuStreamSynchronize(g_stream));
    printf("async_query_after_sync=%d\n", (int)cuStreamQuery(g_stream));
    CHECK(cuMemcpyHtoD(d, host, bytes));
    printf("sync_query=%d\n", (int)cuStreamQuery(NULL));
}

#define SHOW(name, call) printf("%s=%d\n", name, (int)(call))

static void errors(void) {
    CUdeviceptr d;
    void* host;
    char byte = 0;
    CHECK(cuMemAlloc(&d, 64));
    SHOW("memset16_misaligned", cuMemsetD16(d + 1, 0, 4));
    SHOW("memset32_misaligned", cuMemsetD32Async(d + 2, 0, 4, g_stream));
    SHOW("memset32_past_end", cuMemsetD32(d, 0, 17));
    SHOW("htod_null_host", cuMemcpyHtoD(d, NULL, 4));
    SHOW("dtod_unknown", cuMemcpyDtoD(d, 12345, 4));
    SHOW("dtoh_async_past_end", cuMemcpyDtoHAsync(&byte, d + 64, 1, g_stream));
    SHOW("async_bogus_stream", cuMemcpyHtoDAsync(d, &byte, 1, (CUstream)&byte));
    SHOW("host_alloc_bad_flags", cuMemHostAlloc(&host, 64, 0x80));
    SHOW("host_alloc_zero", cuMemHostAlloc(&host, 0, 0));
    CHECK(cuMemHostAlloc(&host, 64, CU_MEMHOSTALLOC_DEVICEMAP | CU_MEMHOSTALLOC_WRITECOMBINED));
    SHOW("host_free", cuMemFreeHost(host));
    SHOW("zero_bytes", cuMemcpyHtoD(d, &byte, 0));
}

int main(int argc, char** argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: copies <bytes> <flags> | copies query <bytes> | copies errors\n");
        return 2;
    }
    setup();
    CHECK(cuStreamCreate(&g_stream, CU_STREAM_NON_BLOCKING));
    CHECK(cuEventCreate(&g_start, 0));
    CHECK(cuEventCreate(&g_end, 0));
    if (strcmp(argv[1], "errors") == 0) {
        errors();
    } else if (strcmp(argv[1], "query") == 0 && argc > 2) {
        query((size_t)atoll(argv[2]));
    } else if (argc > 2) {
        g_flags = (cuuint64_t)atoi(argv[2]);
        measure((size_t)atoll(argv[1]));
    } else {
        fprintf(stderr, "unknown scenario\n");
        return 2;
    }
    return 0;
}
