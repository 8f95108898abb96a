/* The built-in kernels, which really read and write their pointer parameters: every launch
 * path, kernelParams and `extra`, graphs, stream capture and the parameter layouts. Usage:
 * kernels compute | kernels old_driver | kernels partial | kernels duration. Byte results
 * print as hex. */
#include <string.h>

#include "common.h"
#include "mockcuda/mockcuda.h"

#define N 1000
#define SHOW(name, call) printf("%s=%d\n", name, (int)(call))

typedef unsigned long long u64;

static void show_bytes(const char* name, CUdeviceptr ptr, size_t bytes) {
    static unsigned char host[N];
    CHECK(cuMemcpyDtoH(host, ptr, bytes));
    printf("%s=", name);
    for (size_t i = 0; i < bytes; ++i) {
        printf("%02x", host[i]);
    }
    printf("\n");
}

static void show_u64(const char* name, CUdeviceptr ptr) {
    u64 value = 0;
    CHECK(cuMemcpyDtoH(&value, ptr, sizeof value));
    printf("%s=%llu\n", name, value);
}

/* `extra` for a buffer of packed parameters. */
typedef struct {
    unsigned char buffer[32];
    size_t size;
    void* extra[5];
} Packed;

static void** pack(Packed* packed, size_t size) {
    packed->size = size;
    packed->extra[0] = CU_LAUNCH_PARAM_BUFFER_POINTER;
    packed->extra[1] = packed->buffer;
    packed->extra[2] = CU_LAUNCH_PARAM_BUFFER_SIZE;
    packed->extra[3] = &packed->size;
    packed->extra[4] = CU_LAUNCH_PARAM_END;
    return packed->extra;
}

static void put(Packed* packed, size_t offset, const void* value, size_t size) {
    memcpy(packed->buffer + offset, value, size);
}

static CUresult launch(CUfunction f, CUstream stream, void** params, void** extra) {
    return cuLaunchKernel(f, 2, 1, 1, 64, 1, 1, 0, stream, params, extra);
}

static void param_info(const char* name, int count) {
    CUfunction f = kernel(name);
    for (int i = 0; i <= count; ++i) {
        size_t offset = 99, size = 99;
        const CUresult r = cuFuncGetParamInfo(f, (size_t)i, &offset, &size);
        printf("info_%s_%d=%d:%zu:%zu\n", name, i, (int)r, offset, size);
    }
}

static void lookup_param_info(void) {
    void* pfn = NULL;
    CUdriverProcAddressQueryResult status = (CUdriverProcAddressQueryResult)-1;
    const CUresult r = cuGetProcAddress("cuFuncGetParamInfo", &pfn, 12080, 0, &status);
    printf("procaddr=%d:%d:%d\n", (int)r, (int)status, pfn == (void*)cuFuncGetParamInfo);
    int version = 0;
    CHECK(cuDriverGetVersion(&version));
    printf("version=%d\n", version);
}

/* Launch paths, each filling dst with its own value. */
static void paths(CUfunction mock_fill, CUdeviceptr dst) {
    extern CUresult cuLaunchKernel_ptsz(CUfunction, unsigned int, unsigned int, unsigned int,
                                        unsigned int, unsigned int, unsigned int, unsigned int,
                                        CUstream, void**, void**);
    extern CUresult cuLaunchKernelEx_ptsz(const CUlaunchConfig*, CUfunction, void**, void**);
    extern CUresult cuLaunchCooperativeKernel_ptsz(CUfunction, unsigned int, unsigned int,
                                                   unsigned int, unsigned int, unsigned int,
                                                   unsigned int, unsigned int, CUstream, void**);
    u64 bytes = N;
    unsigned int value = 0;
    void* params[] = {&dst, &bytes, &value};
    CUlaunchConfig config;
    memset(&config, 0, sizeof config);
    config.gridDimX = config.gridDimY = config.gridDimZ = 1;
    config.blockDimX = config.blockDimY = config.blockDimZ = 1;
    value = 1;
    CHECK(cuLaunchKernel_ptsz(mock_fill, 1, 1, 1, 1, 1, 1, 0, NULL, params, NULL));
    show_bytes("path_ptsz", dst, 4);
    value = 2;
    CHECK(cuLaunchKernelEx(&config, mock_fill, params, NULL));
    show_bytes("path_ex", dst, 4);
    Packed packed;
    put(&packed, 0, &dst, 8);
    put(&packed, 8, &bytes, 8);
    value = 3;
    put(&packed, 16, &value, 4);
    CHECK(cuLaunchKernelEx_ptsz(&config, mock_fill, NULL, pack(&packed, 20)));
    show_bytes("path_ex_ptsz_extra", dst, 4);
    value = 4;
    CHECK(cuLaunchCooperativeKernel(mock_fill, 1, 1, 1, 1, 1, 1, 0, NULL, params));
    show_bytes("path_coop", dst, 4);
    value = 5;
    CHECK(cuLaunchCooperativeKernel_ptsz(mock_fill, 1, 1, 1, 1, 1, 1, 0, NULL, params));
    show_bytes("path_coop_ptsz", dst, 4);
}

/* Graph nodes keep the parameter values they were added with. */
static void graph(CUfunction mock_fill, CUfunction mock_checksum, CUdeviceptr dst,
                  CUdeviceptr out) {
    u64 bytes = N;
    unsigned int value = 0x44;
    void* params[] = {&dst, &bytes, &value};
    CUDA_KERNEL_NODE_PARAMS_v2 node_params;
    memset(&node_params, 0, sizeof node_params);
    node_params.func = mock_fill;
    node_params.gridDimX = node_params.gridDimY = node_params.gridDimZ = 1;
    node_params.blockDimX = node_params.blockDimY = node_params.blockDimZ = 1;
    node_params.kernelParams = params;
    CUgraph g;
    CUgraphNode node;
    CUgraphExec exec;
    CHECK(cuGraphCreate(&g, 0));
    CHECK(cuGraphAddKernelNode(&node, g, NULL, 0, &node_params));
    value = 0x99; /* too late: the node holds 0x44 */
    Packed packed;
    put(&packed, 0, &dst, 8);
    put(&packed, 8, &bytes, 8);
    put(&packed, 16, &out, 8);
    node_params.func = mock_checksum;
    node_params.kernelParams = NULL;
    node_params.extra = pack(&packed, 24);
    CHECK(cuGraphAddKernelNode(&node, g, NULL, 0, &node_params));
    node_params.extra = NULL;
    SHOW("graph_node_without_params", cuGraphAddKernelNode(&node, g, NULL, 0, &node_params));
    CHECK(cuGraphInstantiate(&exec, g, 0));
    show_bytes("graph_before_launch", dst, 4);
    CHECK(cuGraphLaunch(exec, NULL));
    CHECK(cuCtxSynchronize());
    show_bytes("graph_fill", dst, N);
    show_u64("graph_checksum", out);
}

/* Launches on a capturing stream become the graph's nodes and run only when it launches. */
static void capture(CUfunction mock_fill, CUfunction mock_checksum, CUdeviceptr dst,
                    CUdeviceptr out) {
    CUstream stream;
    CUstreamCaptureStatus status;
    CUgraph g;
    CUgraphExec exec;
    char byte = 0;
    CHECK(cuStreamCreate(&stream, CU_STREAM_NON_BLOCKING));
    CHECK(cuMemsetD8(dst, 0x11, N));
    SHOW("capture_default_stream", cuStreamBeginCapture(NULL, CU_STREAM_CAPTURE_MODE_GLOBAL));
    SHOW("capture_bad_mode", cuStreamBeginCapture(stream, (CUstreamCaptureMode)7));
    SHOW("end_not_capturing", cuStreamEndCapture(stream, &g));
    CHECK(cuStreamBeginCapture(stream, CU_STREAM_CAPTURE_MODE_GLOBAL));
    SHOW("begin_twice", cuStreamBeginCapture(stream, CU_STREAM_CAPTURE_MODE_GLOBAL));
    CHECK(fill(mock_fill, dst, N, 0x66, stream));
    u64 bytes = N;
    void* params[] = {&dst, &bytes, &out};
    CHECK(launch(mock_checksum, stream, params, NULL));
    CHECK(cuStreamIsCapturing(stream, &status));
    printf("status_capturing=%d\n", (int)status);
    SHOW("sync_capturing", cuStreamSynchronize(stream));
    SHOW("ctx_sync_capturing", cuCtxSynchronize());
    SHOW("sync_copy_capturing", cuMemcpyHtoD(dst, &byte, 1));
    SHOW("async_copy_capturing", cuMemcpyHtoDAsync(dst, &byte, 1, stream));
    unsigned char first = 0;
    memcpy(&first, (const void*)(uintptr_t)dst, 1); /* device memory is host memory here */
    printf("ran_while_capturing=%d\n", first != 0x11);
    CHECK(cuStreamEndCapture(stream, &g));
    CHECK(cuStreamIsCapturing(stream, &status));
    printf("status_after=%d\n", (int)status);
    CHECK(cuGraphInstantiate(&exec, g, 0));
    CHECK(cuGraphLaunch(exec, stream));
    CHECK(cuStreamSynchronize(stream));
    show_bytes("captured_fill", dst, N);
    show_u64("captured_checksum", out);
}

static void compute(void) {
    CUfunction mock_fill = kernel("mock_fill"), mock_add = kernel("mock_add");
    CUfunction mock_checksum = kernel("mock_checksum");
    CUfunction mock_xor = kernel("mock_xor_pair");
    CUdeviceptr a, b, dst, out;
    unsigned char host[N];
    CHECK(cuMemAlloc(&a, N));
    CHECK(cuMemAlloc(&b, N));
    CHECK(cuMemAlloc(&dst, N));
    CHECK(cuMemAlloc(&out, 8));
    for (int i = 0; i < N; ++i) {
        host[i] = (unsigned char)(i * 7 + 1);
    }
    CHECK(cuMemcpyHtoD(a, host, N));
    for (int i = 0; i < N; ++i) {
        host[i] = (unsigned char)(i * 13 + 200);
    }
    CHECK(cuMemcpyHtoD(b, host, N));
    show_bytes("a", a, N);
    show_bytes("b", b, N);
    u64 bytes = N;
    unsigned int value = 0x15a; /* the low byte is written */
    Packed packed;

    void* fill_params[] = {&dst, &bytes, &value};
    CHECK(launch(mock_fill, NULL, fill_params, NULL));
    show_bytes("fill_params", dst, N);
    value = 0x33;
    put(&packed, 0, &dst, 8);
    put(&packed, 8, &bytes, 8);
    put(&packed, 16, &value, 4);
    CHECK(launch(mock_fill, NULL, NULL, pack(&packed, 20)));
    show_bytes("fill_extra", dst, N);

    void* add_params[] = {&dst, &a, &b, &bytes};
    CHECK(launch(mock_add, NULL, add_params, NULL));
    show_bytes("add_params", dst, N);
    CHECK(cuMemsetD8(dst, 0, N));
    put(&packed, 0, &dst, 8);
    put(&packed, 8, &a, 8);
    put(&packed, 16, &b, 8);
    put(&packed, 24, &bytes, 8);
    CHECK(launch(mock_add, NULL, NULL, pack(&packed, 32)));
    show_bytes("add_extra", dst, N);

    struct {
        CUdeviceptr a, b;
    } pair = {a, b};
    void* xor_params[] = {&pair, &dst, &bytes};
    CHECK(launch(mock_xor, NULL, xor_params, NULL));
    show_bytes("xor_params", dst, N);
    CHECK(cuMemsetD8(dst, 0, N));
    put(&packed, 0, &pair, 16);
    put(&packed, 16, &dst, 8);
    put(&packed, 24, &bytes, 8);
    CHECK(launch(mock_xor, NULL, NULL, pack(&packed, 32)));
    show_bytes("xor_extra", dst, N);

    void* checksum_params[] = {&a, &bytes, &out};
    CHECK(launch(mock_checksum, NULL, checksum_params, NULL));
    show_u64("checksum_params", out);
    put(&packed, 0, &b, 8);
    put(&packed, 8, &bytes, 8);
    put(&packed, 16, &out, 8);
    CHECK(launch(mock_checksum, NULL, NULL, pack(&packed, 24)));
    show_u64("checksum_extra", out);

    SHOW("no_params", launch(mock_fill, NULL, NULL, NULL));
    SHOW("both_params", launch(mock_checksum, NULL, checksum_params, pack(&packed, 24)));
    SHOW("extra_short", launch(mock_checksum, NULL, NULL, pack(&packed, 23)));
    void* null_value[] = {&a, NULL, &out};
    SHOW("null_value", launch(mock_checksum, NULL, null_value, NULL));
    /* Kernels that are not built in take their parameters unread, as before. */
    SHOW("other_kernel", launch(kernel("sleep_us_1"), NULL, NULL, NULL));

    paths(mock_fill, dst);
    graph(mock_fill, mock_checksum, dst, out);
    capture(mock_fill, mock_checksum, dst, out);

    param_info("mock_fill", 3);
    param_info("mock_checksum", 3);
    param_info("mock_add", 4);
    param_info("mock_xor_pair", 3);
    param_info("plain_kernel", 0);
    SHOW("info_null", cuFuncGetParamInfo(mock_fill, 0, NULL, NULL));
    lookup_param_info();
}

/* A kernel whose last range is not accessible writes nothing. */
static void partial(void) {
    CUfunction mock_add = kernel("mock_add");
    CUdeviceptr a, dst, gone;
    CHECK(cuMemAlloc(&a, N));
    CHECK(cuMemAlloc(&dst, N));
    CHECK(cuMemAlloc(&gone, N));
    CHECK(cuMemsetD8(a, 1, N));
    CHECK(cuMemsetD8(dst, 0x77, N));
    CHECK(cuMemFree(gone));
    u64 bytes = N;
    void* params[] = {&dst, &a, &gone, &bytes};
    SHOW("add_freed_operand", launch(mock_add, NULL, params, NULL));
    unsigned char first = 0;
    memcpy(&first, (const void*)(uintptr_t)dst, 1); /* device memory is host memory here */
    printf("dst_untouched=%d\n", first == 0x77);
    unsigned long long address = 0;
    CHECK(mockcudaLastFault(&address));
    printf("fault_at_operand=%d\n", address == gone);
}

/* A built-in kernel still lasts its cost per block times its grid. */
static void duration(void) {
    CUfunction mock_fill = kernel("mock_fill");
    CUdeviceptr dst;
    CUstream stream;
    CUevent start, end;
    float ms = 0;
    CHECK(cuMemAlloc(&dst, N));
    CHECK(cuStreamCreate(&stream, CU_STREAM_NON_BLOCKING));
    CHECK(cuEventCreate(&start, 0));
    CHECK(cuEventCreate(&end, 0));
    u64 bytes = N;
    unsigned int value = 1;
    void* params[] = {&dst, &bytes, &value};
    CHECK(cuEventRecord(start, stream));
    CHECK(launch(mock_fill, stream, params, NULL)); /* 2 blocks of the default 1 us */
    CHECK(mockcudaSetKernelCost(mock_fill, 5000.0));
    CHECK(launch(mock_fill, stream, params, NULL)); /* 2 blocks of 5 us */
    CHECK(cuEventRecord(end, stream));
    CHECK(cuEventSynchronize(end));
    CHECK(cuEventElapsedTime(&ms, start, end));
    printf("elapsed_ms=%.3f\n", ms);
}

int main(int argc, char** argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: kernels compute|old_driver|partial|duration\n");
        return 2;
    }
    setup();
    if (strcmp(argv[1], "compute") == 0) {
        compute();
    } else if (strcmp(argv[1], "old_driver") == 0) {
        param_info("mock_fill", 0);
        lookup_param_info();
    } else if (strcmp(argv[1], "partial") == 0) {
        partial();
    } else if (strcmp(argv[1], "duration") == 0) {
        duration();
    } else {
        fprintf(stderr, "unknown scenario\n");
        return 2;
    }
    return 0;
}
