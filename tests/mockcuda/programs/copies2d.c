/* 2D copies, 2D memsets and peer copies, reached through cuGetProcAddress and timed with
 * events. Usage: copies2d <width> <height> <0|2: cuGetProcAddress flags, 2 = per-thread default
 * stream> | copies2d peer <bytes> <flags> (needs two devices) | copies2d errors |
 * copies2d fault <copy|set>. Timed scenarios print elapsed_<op>=<ms> and ok_<op>=<1 when every
 * byte of the destination, rows and the gaps between them, is as expected>. */
#include <string.h>

#include "common.h"
#include "mockcuda/mockcuda.h"

#define GRANULARITY ((size_t)2 << 20)
#define SHOW(name, call) printf("%s=%d\n", name, (int)(call))

typedef CUresult (*copy2d_fn)(const CUDA_MEMCPY2D*);
typedef CUresult (*copy2d_async_fn)(const CUDA_MEMCPY2D*, CUstream);
typedef CUresult (*set2d8_fn)(CUdeviceptr, size_t, unsigned char, size_t, size_t);
typedef CUresult (*set2d16_fn)(CUdeviceptr, size_t, unsigned short, size_t, size_t);
typedef CUresult (*set2d32_fn)(CUdeviceptr, size_t, unsigned int, size_t, size_t);
typedef CUresult (*set2d8_async_fn)(CUdeviceptr, size_t, unsigned char, size_t, size_t,
                                    CUstream);
typedef CUresult (*set2d16_async_fn)(CUdeviceptr, size_t, unsigned short, size_t, size_t,
                                     CUstream);
typedef CUresult (*set2d32_async_fn)(CUdeviceptr, size_t, unsigned int, size_t, size_t,
                                     CUstream);
typedef CUresult (*peer_fn)(CUdeviceptr, CUcontext, CUdeviceptr, CUcontext, size_t);
typedef CUresult (*peer_async_fn)(CUdeviceptr, CUcontext, CUdeviceptr, CUcontext, size_t,
                                  CUstream);

static cuuint64_t g_flags;
static CUstream g_stream;
static CUevent g_start, g_end;
static unsigned char* g_expect; /* what the destination must hold after the operation */

static void* resolve(const char* name) {
    void* pfn = NULL;
    CHECK(cuGetProcAddress(name, &pfn, 12080, g_flags, NULL));
    return pfn;
}

static void begin(CUstream stream) { CHECK(cuEventRecord(g_start, stream)); }

static void finish(const char* op, CUstream stream, int ok) {
    float ms = 0;
    CHECK(cuEventRecord(g_end, stream));
    CHECK(cuEventSynchronize(g_end));
    CHECK(cuEventElapsedTime(&ms, g_start, g_end));
    printf("elapsed_%s=%.6f\nok_%s=%d\n", op, ms, op, ok);
}

/* Device memory is host memory in the mock, so either side is readable here. */
static unsigned char* dst_bytes(const CUDA_MEMCPY2D* c) {
    return c->dstMemoryType == CU_MEMORYTYPE_HOST ? (unsigned char*)c->dstHost
                                                  : (unsigned char*)(uintptr_t)c->dstDevice;
}

static const unsigned char* src_bytes(const CUDA_MEMCPY2D* c) {
    return c->srcMemoryType == CU_MEMORYTYPE_HOST ? (const unsigned char*)c->srcHost
                                                  : (const unsigned char*)(uintptr_t)c->srcDevice;
}

/* Runs `name` on `c` (sync when `stream` is NULL) over a destination filled with a marker, and
 * checks it against the same rows copied here. */
static void run_copy(const char* op, const char* name, const CUDA_MEMCPY2D* c, CUstream stream) {
    unsigned char* dst = dst_bytes(c);
    const unsigned char* src = src_bytes(c);
    const size_t span = (c->dstY + c->Height) * c->dstPitch;
    memset(dst, 0xa5, span);
    memcpy(g_expect, dst, span);
    for (size_t row = 0; row < c->Height; ++row) {
        memcpy(g_expect + (c->dstY + row) * c->dstPitch + c->dstXInBytes,
               src + (c->srcY + row) * c->srcPitch + c->srcXInBytes, c->WidthInBytes);
    }
    begin(stream);
    if (stream == NULL) {
        CHECK(((copy2d_fn)resolve(name))(c));
    } else {
        CHECK(((copy2d_async_fn)resolve(name))(c, stream));
    }
    finish(op, stream, memcmp(dst, g_expect, span) == 0);
}

/* Calls the memset `name` resolves to through its own signature (sync when `stream` is NULL). */
static CUresult set_2d(const char* name, unsigned element, CUdeviceptr d, size_t pitch,
                       unsigned int value, size_t width, size_t height, CUstream stream) {
    void* fn = resolve(name);
    if (stream == NULL) {
        switch (element) {
            case 1: return ((set2d8_fn)fn)(d, pitch, (unsigned char)value, width, height);
            case 2: return ((set2d16_fn)fn)(d, pitch, (unsigned short)value, width, height);
            default: return ((set2d32_fn)fn)(d, pitch, value, width, height);
        }
    }
    switch (element) {
        case 1:
            return ((set2d8_async_fn)fn)(d, pitch, (unsigned char)value, width, height, stream);
        case 2:
            return ((set2d16_async_fn)fn)(d, pitch, (unsigned short)value, width, height, stream);
        default: return ((set2d32_async_fn)fn)(d, pitch, value, width, height, stream);
    }
}

/* Sets `height` rows of `width_bytes` at `d`, `pitch` apart, to `value`'s low `element` bytes. */
static void run_set(const char* op, const char* name, unsigned element, CUdeviceptr d,
                    size_t pitch, unsigned int value, size_t width_bytes, size_t height,
                    CUstream stream) {
    unsigned char* dst = (unsigned char*)(uintptr_t)d;
    const size_t span = height * pitch;
    memset(dst, 0xa5, span);
    memcpy(g_expect, dst, span);
    for (size_t row = 0; row < height; ++row) {
        for (size_t at = 0; at < width_bytes; at += element) {
            memcpy(g_expect + row * pitch + at, &value, element); /* little-endian */
        }
    }
    begin(stream);
    CHECK(set_2d(name, element, d, pitch, value, width_bytes / element, height, stream));
    finish(op, stream, memcmp(dst, g_expect, span) == 0);
}

static CUDA_MEMCPY2D layout(size_t width, size_t height) {
    CUDA_MEMCPY2D c;
    memset(&c, 0, sizeof c);
    c.srcXInBytes = 32; /* offsets on both sides, pitches longer than a row */
    c.srcY = 1;
    c.srcPitch = width + 96;
    c.dstXInBytes = 16;
    c.dstY = 2;
    c.dstPitch = width + 160;
    c.WidthInBytes = width;
    c.Height = height;
    return c;
}

static void with_host(CUDA_MEMCPY2D* c, int dst_side, void* host) {
    if (dst_side) {
        c->dstMemoryType = CU_MEMORYTYPE_HOST;
        c->dstHost = host;
    } else {
        c->srcMemoryType = CU_MEMORYTYPE_HOST;
        c->srcHost = host;
    }
}

static void with_device(CUDA_MEMCPY2D* c, int dst_side, CUmemorytype type, CUdeviceptr d) {
    if (dst_side) {
        c->dstMemoryType = type;
        c->dstDevice = d;
    } else {
        c->srcMemoryType = type;
        c->srcDevice = d;
    }
}

static void measure(size_t width, size_t height) {
    const size_t span = (height + 2) * (width + 160); /* the larger side, offsets included */
    unsigned char *host, *back;
    CUdeviceptr d1, d2;
    CHECK(cuMemAllocHost((void**)&host, span));
    CHECK(cuMemAllocHost((void**)&back, span));
    CHECK(cuMemAlloc(&d1, span));
    CHECK(cuMemAlloc(&d2, span));
    g_expect = malloc(span);
    for (size_t i = 0; i < span; ++i) {
        host[i] = (unsigned char)(i * 13 + 7);
        ((unsigned char*)(uintptr_t)d1)[i] = (unsigned char)(i * 7 + 1);
    }
    CUDA_MEMCPY2D c = layout(width, height);

    with_host(&c, 0, host);
    with_device(&c, 1, CU_MEMORYTYPE_DEVICE, d2);
    run_copy("htod", "cuMemcpy2D", &c, NULL);
    run_copy("htod_async", "cuMemcpy2DAsync", &c, g_stream);
    with_device(&c, 0, CU_MEMORYTYPE_DEVICE, d1);
    with_host(&c, 1, back);
    run_copy("dtoh", "cuMemcpy2D", &c, NULL);
    run_copy("dtoh_async", "cuMemcpy2DAsync", &c, g_stream);
    with_device(&c, 1, CU_MEMORYTYPE_DEVICE, d2);
    run_copy("dtod", "cuMemcpy2D", &c, NULL);
    run_copy("dtod_unaligned", "cuMemcpy2DUnaligned", &c, NULL);
    run_copy("dtod_async", "cuMemcpy2DAsync", &c, g_stream);
    with_device(&c, 0, CU_MEMORYTYPE_UNIFIED, d1);
    with_device(&c, 1, CU_MEMORYTYPE_UNIFIED, d2);
    run_copy("unified_dtod", "cuMemcpy2D", &c, NULL);
    with_device(&c, 0, CU_MEMORYTYPE_UNIFIED, (CUdeviceptr)(uintptr_t)host);
    run_copy("unified_htod", "cuMemcpy2DAsync", &c, g_stream);
    with_device(&c, 0, CU_MEMORYTYPE_UNIFIED, d1);
    with_device(&c, 1, CU_MEMORYTYPE_UNIFIED, (CUdeviceptr)(uintptr_t)back);
    run_copy("unified_dtoh", "cuMemcpy2DUnaligned", &c, NULL);

    const size_t pitch = width + 160;
    run_set("memset8", "cuMemsetD2D8", 1, d1, pitch, 0x5d, width, height, NULL);
    run_set("memset16", "cuMemsetD2D16", 2, d1, pitch, 0xbeef, width, height, NULL);
    run_set("memset32", "cuMemsetD2D32", 4, d1, pitch, 0xdeadbeefu, width, height, NULL);
    run_set("memset8_async", "cuMemsetD2D8Async", 1, d1, pitch, 0x3c, width, height, g_stream);
    run_set("memset16_async", "cuMemsetD2D16Async", 2, d1, pitch, 0xcafe, width, height,
            g_stream);
    run_set("memset32_async", "cuMemsetD2D32Async", 4, d1, pitch, 0x01020304u, width, height,
            g_stream);
}

/* Device 1's allocation copied into device 0's and back, from device 0's context. */
static void peer(CUcontext ctx0, size_t bytes) {
    CUdevice device1;
    CUcontext ctx1;
    CUdeviceptr on0, on1;
    CHECK(cuDeviceGet(&device1, 1));
    CHECK(cuCtxCreate(&ctx1, 0, device1));
    CHECK(cuMemAlloc(&on1, bytes));
    CHECK(cuCtxSetCurrent(ctx0));
    CHECK(cuMemAlloc(&on0, bytes));
    unsigned char* a = (unsigned char*)(uintptr_t)on1;
    unsigned char* b = (unsigned char*)(uintptr_t)on0;
    for (size_t i = 0; i < bytes; ++i) {
        a[i] = (unsigned char)(i * 5 + 9);
    }
    CUdevice owner;
    CHECK(cuPointerGetAttribute(&owner, CU_POINTER_ATTRIBUTE_DEVICE_ORDINAL, on1));
    printf("owner_of_source=%d\n", (int)owner);
    begin(NULL);
    CHECK(((peer_fn)resolve("cuMemcpyPeer"))(on0, ctx0, on1, ctx1, bytes));
    finish("peer", NULL, memcmp(a, b, bytes) == 0);
    memset(a, 0, bytes);
    begin(g_stream);
    CHECK(((peer_async_fn)resolve("cuMemcpyPeerAsync"))(on1, ctx1, on0, ctx0, bytes, g_stream));
    finish("peer_async", g_stream, memcmp(a, b, bytes) == 0);
}

static void errors(CUcontext ctx) {
    CUdeviceptr d;
    char byte = 0;
    CHECK(cuMemAlloc(&d, 4096));
    CUDA_MEMCPY2D c = layout(64, 4);
    with_device(&c, 0, CU_MEMORYTYPE_DEVICE, d);
    with_device(&c, 1, CU_MEMORYTYPE_DEVICE, d + 2048);
    SHOW("copy_ok", cuMemcpy2D(&c));
    c.srcPitch = 63;
    SHOW("copy_src_pitch_below_width", cuMemcpy2D(&c));
    c.srcPitch = 128;
    c.dstPitch = 32;
    SHOW("copy_dst_pitch_below_width", cuMemcpy2DAsync(&c, g_stream));
    c.dstPitch = 500; /* the third row, at 2048 + (2 + 2) * 500 + 16, runs past 4096 */
    SHOW("copy_row_past_end", cuMemcpy2D(&c));
    c.dstPitch = 128;
    c.srcDevice = 12345;
    SHOW("copy_unknown_device", cuMemcpy2DUnaligned(&c));
    c.srcDevice = d;
    c.srcMemoryType = CU_MEMORYTYPE_ARRAY;
    SHOW("copy_array", cuMemcpy2D(&c));
    c.srcMemoryType = (CUmemorytype)7;
    SHOW("copy_bad_memory_type", cuMemcpy2D(&c));
    c.srcMemoryType = CU_MEMORYTYPE_DEVICE;
    SHOW("copy_null", cuMemcpy2D(NULL));
    c.Height = 0;
    SHOW("copy_no_rows", cuMemcpy2D(&c));
    SHOW("set_ok", cuMemsetD2D32(d, 256, 0, 16, 16));
    SHOW("set_pitch_below_width", cuMemsetD2D32(d, 32, 0, 16, 16));
    SHOW("set_misaligned_pitch", cuMemsetD2D16Async(d, 129, 0, 16, 4, g_stream));
    SHOW("set_misaligned", cuMemsetD2D32(d + 2, 256, 0, 16, 4));
    SHOW("set_row_past_end", cuMemsetD2D8(d, 1024, 0, 64, 5));
    SHOW("peer_ok", cuMemcpyPeer(d, ctx, d + 64, ctx, 64));
    SHOW("peer_bogus_context", cuMemcpyPeer(d, ctx, d + 64, (CUcontext)&byte, 64));
    SHOW("peer_past_end", cuMemcpyPeerAsync(d, ctx, d + 64, ctx, 4096, g_stream));
}

/* A VMM range of three chunks, the middle one never mapped: rows that step over it are fine,
 * a row inside it faults, and the fault sticks. */
static void fault(const char* how) {
    static unsigned char host[2 * 4096];
    CUmemAllocationProp prop;
    memset(&prop, 0, sizeof prop);
    prop.type = CU_MEM_ALLOCATION_TYPE_PINNED;
    prop.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
    CUmemAccessDesc access = {{CU_MEM_LOCATION_TYPE_DEVICE, 0}, CU_MEM_ACCESS_FLAGS_PROT_READWRITE};
    CUmemGenericAllocationHandle first, last;
    CUdeviceptr va;
    CHECK(cuMemCreate(&first, GRANULARITY, &prop, 0));
    CHECK(cuMemCreate(&last, GRANULARITY, &prop, 0));
    CHECK(cuMemAddressReserve(&va, 3 * GRANULARITY, 0, 0, 0));
    CHECK(cuMemMap(va, GRANULARITY, 0, first, 0));
    CHECK(cuMemMap(va + 2 * GRANULARITY, GRANULARITY, 0, last, 0));
    CHECK(cuMemSetAccess(va, GRANULARITY, &access, 1));
    CHECK(cuMemSetAccess(va + 2 * GRANULARITY, GRANULARITY, &access, 1));
    CUDA_MEMCPY2D c = layout(4096, 2);
    c.srcXInBytes = c.srcY = c.dstXInBytes = c.dstY = 0;
    c.srcPitch = 4096;
    with_host(&c, 0, host);
    with_device(&c, 1, CU_MEMORYTYPE_DEVICE, va);
    const int copy = strcmp(how, "copy") == 0;
    c.dstPitch = 2 * GRANULARITY;
    SHOW("over_hole", copy ? cuMemcpy2D(&c) : cuMemsetD2D8(va, 2 * GRANULARITY, 1, 4096, 2));
    c.dstPitch = GRANULARITY;
    SHOW("into_hole", copy ? cuMemcpy2D(&c) : cuMemsetD2D8(va, GRANULARITY, 1, 4096, 2));
    unsigned long long address = 0;
    CHECK(mockcudaLastFault(&address));
    printf("fault_offset=%llu\n", address - va);
    SHOW("after_ctx_sync", cuCtxSynchronize());
    SHOW("after_copy", cuMemcpy2D(&c));
}

int main(int argc, char** argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: copies2d <width> <height> <flags> | peer <bytes> <flags> | "
                        "errors | fault <copy|set>\n");
        return 2;
    }
    CUcontext ctx = setup();
    CHECK(cuStreamCreate(&g_stream, CU_STREAM_NON_BLOCKING));
    CHECK(cuEventCreate(&g_start, 0));
    CHECK(cuEventCreate(&g_end, 0));
    if (strcmp(argv[1], "errors") == 0) {
        errors(ctx);
    } else if (strcmp(argv[1], "fault") == 0 && argc > 2) {
        fault(argv[2]);
    } else if (strcmp(argv[1], "peer") == 0 && argc > 3) {
        g_flags = (cuuint64_t)atoi(argv[3]);
        peer(ctx, (size_t)atoll(argv[2]));
    } else if (argc > 3) {
        g_flags = (cuuint64_t)atoi(argv[3]);
        measure((size_t)atoll(argv[1]), (size_t)atoll(argv[2]));
    } else {
        fprintf(stderr, "unknown scenario\n");
        return 2;
    }
    return 0;
}
