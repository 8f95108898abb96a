/* A workload driven line by line from stdin, for the VRAM paging tests: every command makes
 * driver calls an application would (allocations, kernels that read and write their pointer
 * arguments, copies, sets, graphs, captures, IPC) and answers one line on stdout.
 *
 *   alloc ID BYTES        cuMemAlloc            -> "ok" or "err CODE"
 *   pitch ID WIDTH ROWS   cuMemAllocPitch       -> "ok PITCH" or "err CODE"
 *   free ID               cuMemFree
 *   fill ID VALUE         mock_fill over the whole allocation, params by kernelParams
 *   fillx ID VALUE        the same through `extra`
 *   fillex ID VALUE       the same through cuLaunchKernelEx
 *   add DST A B           mock_add over DST's size (A and B at least as large)
 *   xor DST A B           mock_xor_pair: A and B passed inside one struct parameter
 *   sum ID                mock_checksum into a small allocation, read back -> "ok CRC"
 *   upload ID VALUE       cuMemcpyHtoD of VALUE bytes
 *   download ID           cuMemcpyDtoH, CRC-32 computed here -> "ok CRC"
 *   upasync ID VALUE      cuMemcpyHtoDAsync + stream sync
 *   set ID VALUE          cuMemsetD8
 *   set32 ID VALUE        cuMemsetD32Async + stream sync (size a multiple of 4)
 *   copy DST SRC          cuMemcpyDtoD over DST's size
 *   copy2d DST SRC ROWS   cuMemcpy2D device to device, DST's size as ROWS rows
 *   set2d ID VALUE ROWS   cuMemsetD2D8 over the allocation as ROWS rows
 *   peer DST SRC          cuMemcpyPeer between the current context and itself
 *   graph ID VALUE        a graph with one mock_fill node, launched
 *   capture ID VALUE      mock_fill captured on a stream into a graph, launched
 *   ipc ID                cuIpcGetMemHandle -> "ok" or "err CODE"
 *   sync                  cuCtxSynchronize
 *   threads N ROUNDS BYTES  N threads, each with its own allocation of BYTES and stream,
 *                         ROUNDS x (fill with the round's value, checksum, check)
 *                         -> "ok" or "err CODE"
 * Anything else: "err bad-command". A failed call answers "err CODE" and the program goes on. */
#include <pthread.h>
#include <stdint.h>
#include <string.h>

#include "common.h"

#define MAX_IDS 4096

static CUdeviceptr g_ptr[MAX_IDS];
static size_t g_size[MAX_IDS];
static CUfunction g_fill, g_add, g_xor, g_sum;
static CUstream g_stream;
static CUdeviceptr g_out;

static uint32_t g_crc_table[256];
static pthread_once_t g_crc_once = PTHREAD_ONCE_INIT;

static void fill_crc_table(void) {
    for (uint32_t n = 0; n < 256; ++n) {
        uint32_t c = n;
        for (int bit = 0; bit < 8; ++bit) {
            c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1u)));
        }
        g_crc_table[n] = c;
    }
}

/* zlib's CRC-32, as the mock's checksum kernel computes it. */
static uint32_t crc32_of(const unsigned char* bytes, size_t size) {
    pthread_once(&g_crc_once, fill_crc_table);
    uint32_t crc = 0xFFFFFFFFu;
    for (size_t i = 0; i < size; ++i) {
        crc = g_crc_table[(crc ^ bytes[i]) & 0xFFu] ^ (crc >> 8);
    }
    return ~crc;
}

static int answer(CUresult result) {
    if (result == CUDA_SUCCESS) {
        printf("ok\n");
    } else {
        printf("err %d\n", (int)result);
    }
    return result == CUDA_SUCCESS;
}

static CUresult launch(CUfunction f, void** params) {
    return cuLaunchKernel(f, 1, 1, 1, 32, 1, 1, 0, g_stream, params, NULL);
}

static CUresult fill_extra(CUdeviceptr dst, unsigned long long bytes, unsigned int value) {
    unsigned char buffer[24] = {0};
    size_t size = sizeof buffer;
    memcpy(buffer, &dst, 8);
    memcpy(buffer + 8, &bytes, 8);
    memcpy(buffer + 16, &value, 4);
    void* extra[] = {CU_LAUNCH_PARAM_BUFFER_POINTER, buffer, CU_LAUNCH_PARAM_BUFFER_SIZE, &size,
                     CU_LAUNCH_PARAM_END};
    return cuLaunchKernel(g_fill, 1, 1, 1, 32, 1, 1, 0, g_stream, NULL, extra);
}

static CUresult fill_ex(CUdeviceptr dst, unsigned long long bytes, unsigned int value) {
    void* params[] = {&dst, &bytes, &value};
    CUlaunchConfig config;
    memset(&config, 0, sizeof config);
    config.gridDimX = config.gridDimY = config.gridDimZ = 1;
    config.blockDimX = 32;
    config.blockDimY = config.blockDimZ = 1;
    config.hStream = g_stream;
    return cuLaunchKernelEx(&config, g_fill, params, NULL);
}

static CUresult checksum(CUdeviceptr src, unsigned long long bytes, unsigned long long* crc) {
    void* params[] = {&src, &bytes, &g_out};
    CUresult result = launch(g_sum, params);
    if (result == CUDA_SUCCESS) {
        result = cuMemcpyDtoH(crc, g_out, sizeof *crc);
    }
    return result;
}

/* Instantiates `graph`, launches it on the stream and waits; the graph is destroyed. */
static CUresult run_graph(CUgraph graph) {
    CUgraphExec exec;
    CHECK(cuGraphInstantiate(&exec, graph, 0));
    CUresult result = cuGraphLaunch(exec, g_stream);
    if (result == CUDA_SUCCESS) {
        result = cuStreamSynchronize(g_stream);
    }
    cuGraphExecDestroy(exec);
    cuGraphDestroy(graph);
    return result;
}

static CUresult graph_fill(CUdeviceptr dst, unsigned long long bytes, unsigned int value) {
    void* params[] = {&dst, &bytes, &value};
    CUDA_KERNEL_NODE_PARAMS node_params;
    CUgraph graph;
    CUgraphNode node;
    memset(&node_params, 0, sizeof node_params);
    node_params.func = g_fill;
    node_params.gridDimX = node_params.gridDimY = node_params.gridDimZ = 1;
    node_params.blockDimX = 32;
    node_params.blockDimY = node_params.blockDimZ = 1;
    node_params.kernelParams = params;
    CHECK(cuGraphCreate(&graph, 0));
    CHECK(cuGraphAddKernelNode(&node, graph, NULL, 0, &node_params));
    return run_graph(graph);
}

static CUresult capture_fill(CUdeviceptr dst, unsigned long long bytes, unsigned int value) {
    CUgraph graph;
    CHECK(cuStreamBeginCapture(g_stream, CU_STREAM_CAPTURE_MODE_GLOBAL));
    CHECK(fill(g_fill, dst, bytes, value, g_stream));
    CHECK(cuStreamEndCapture(g_stream, &graph));
    return run_graph(graph);
}

struct Worker {
    CUcontext ctx;
    int rounds;
    size_t bytes;
    CUresult result;
};

/* One thread's loop: every checksum must match the value it just wrote, whatever the other
 * threads evict meanwhile. */
static void* work(void* arg) {
    struct Worker* w = arg;
    CUdeviceptr buffer, out;
    CUstream stream;
    unsigned char* expected = malloc(w->bytes);
    w->result = cuCtxSetCurrent(w->ctx);
    if (w->result == CUDA_SUCCESS) w->result = cuStreamCreate(&stream, 0);
    if (w->result == CUDA_SUCCESS) w->result = cuMemAlloc(&buffer, w->bytes);
    if (w->result == CUDA_SUCCESS) w->result = cuMemAlloc(&out, sizeof(unsigned long long));
    for (int r = 0; r < w->rounds && w->result == CUDA_SUCCESS; ++r) {
        unsigned long long bytes = w->bytes, crc = 0;
        unsigned int value = (unsigned int)(r * 7 + 1) & 0xff;
        void* params[] = {&buffer, &bytes, &out};
        w->result = fill(g_fill, buffer, bytes, value, stream);
        if (w->result == CUDA_SUCCESS) {
            w->result = cuLaunchKernel(g_sum, 1, 1, 1, 32, 1, 1, 0, stream, params, NULL);
        }
        if (w->result == CUDA_SUCCESS) w->result = cuStreamSynchronize(stream);
        if (w->result == CUDA_SUCCESS) w->result = cuMemcpyDtoH(&crc, out, sizeof crc);
        memset(expected, (int)value, w->bytes);
        if (w->result == CUDA_SUCCESS && crc != crc32_of(expected, w->bytes)) {
            w->result = CUDA_ERROR_UNKNOWN;
        }
    }
    free(expected);
    return NULL;
}

static CUresult threads(int count, int rounds, size_t bytes) {
    pthread_t ids[16];
    struct Worker workers[16];
    CUresult result = CUDA_SUCCESS;
    count = count < 16 ? count : 16;
    for (int i = 0; i < count; ++i) {
        workers[i] = (struct Worker){NULL, rounds, bytes, CUDA_SUCCESS};
        CHECK(cuCtxGetCurrent(&workers[i].ctx));
        pthread_create(&ids[i], NULL, work, &workers[i]);
    }
    for (int i = 0; i < count; ++i) {
        pthread_join(ids[i], NULL);
        if (workers[i].result != CUDA_SUCCESS) result = workers[i].result;
    }
    return result;
}

static int valid(int id) { return id >= 0 && id < MAX_IDS && g_ptr[id] != 0; }

static void run(const char* line) {
    char command[32];
    int a = -1, b = -1, c = -1;
    unsigned long long n = 0;
    const int fields = sscanf(line, "%31s %d %d %d", command, &a, &b, &c);
    if (fields < 1) {
        printf("err bad-command\n");
        return;
    }
    if (strcmp(command, "alloc") == 0 && fields >= 3 && a >= 0 && a < MAX_IDS) {
        sscanf(line, "%*s %*d %llu", &n);
        if (answer(cuMemAlloc(&g_ptr[a], n))) {
            g_size[a] = n;
        }
    } else if (strcmp(command, "pitch") == 0 && fields == 4 && a >= 0 && a < MAX_IDS) {
        size_t pitch = 0;
        CUresult result = cuMemAllocPitch(&g_ptr[a], &pitch, (size_t)b, (size_t)c, 4);
        if (result == CUDA_SUCCESS) {
            g_size[a] = pitch * (size_t)c;
            printf("ok %zu\n", pitch);
        } else {
            printf("err %d\n", (int)result);
        }
    } else if (strcmp(command, "free") == 0 && valid(a)) {
        if (answer(cuMemFree(g_ptr[a]))) {
            g_ptr[a] = 0;
        }
    } else if (strcmp(command, "fill") == 0 && valid(a) && fields == 3) {
        answer(fill(g_fill, g_ptr[a], g_size[a], (unsigned int)b, g_stream));
    } else if (strcmp(command, "fillx") == 0 && valid(a) && fields == 3) {
        answer(fill_extra(g_ptr[a], g_size[a], (unsigned int)b));
    } else if (strcmp(command, "fillex") == 0 && valid(a) && fields == 3) {
        answer(fill_ex(g_ptr[a], g_size[a], (unsigned int)b));
    } else if (strcmp(command, "add") == 0 && valid(a) && valid(b) && valid(c)) {
        unsigned long long bytes = g_size[a];
        void* params[] = {&g_ptr[a], &g_ptr[b], &g_ptr[c], &bytes};
        answer(launch(g_add, params));
    } else if (strcmp(command, "xor") == 0 && valid(a) && valid(b) && valid(c)) {
        struct {
            CUdeviceptr first;
            CUdeviceptr second;
        } pair = {g_ptr[b], g_ptr[c]};
        unsigned long long bytes = g_size[a];
        void* params[] = {&pair, &g_ptr[a], &bytes};
        answer(launch(g_xor, params));
    } else if (strcmp(command, "sum") == 0 && valid(a)) {
        unsigned long long crc = 0;
        const CUresult result = checksum(g_ptr[a], g_size[a], &crc);
        if (result == CUDA_SUCCESS) {
            printf("ok %llu\n", crc);
        } else {
            printf("err %d\n", (int)result);
        }
    } else if ((strcmp(command, "upload") == 0 || strcmp(command, "upasync") == 0) && valid(a) &&
               fields == 3) {
        unsigned char* host = malloc(g_size[a]);
        memset(host, b, g_size[a]);
        CUresult result;
        if (command[2] == 'a') {
            result = cuMemcpyHtoDAsync(g_ptr[a], host, g_size[a], g_stream);
            if (result == CUDA_SUCCESS) {
                result = cuStreamSynchronize(g_stream);
            }
        } else {
            result = cuMemcpyHtoD(g_ptr[a], host, g_size[a]);
        }
        answer(result);
        free(host);
    } else if (strcmp(command, "download") == 0 && valid(a)) {
        unsigned char* host = malloc(g_size[a]);
        const CUresult result = cuMemcpyDtoH(host, g_ptr[a], g_size[a]);
        if (result == CUDA_SUCCESS) {
            printf("ok %u\n", crc32_of(host, g_size[a]));
        } else {
            printf("err %d\n", (int)result);
        }
        free(host);
    } else if (strcmp(command, "set") == 0 && valid(a) && fields == 3) {
        answer(cuMemsetD8(g_ptr[a], (unsigned char)b, g_size[a]));
    } else if (strcmp(command, "set32") == 0 && valid(a) && fields == 3) {
        const unsigned int word = 0x01010101u * (unsigned int)(b & 0xff);
        CUresult result = cuMemsetD32Async(g_ptr[a], word, g_size[a] / 4, g_stream);
        if (result == CUDA_SUCCESS) {
            result = cuStreamSynchronize(g_stream);
        }
        answer(result);
    } else if (strcmp(command, "copy") == 0 && valid(a) && valid(b)) {
        answer(cuMemcpyDtoD(g_ptr[a], g_ptr[b], g_size[a]));
    } else if (strcmp(command, "copy2d") == 0 && valid(a) && valid(b) && c > 0) {
        CUDA_MEMCPY2D copy;
        memset(&copy, 0, sizeof copy);
        copy.srcMemoryType = copy.dstMemoryType = CU_MEMORYTYPE_DEVICE;
        copy.srcDevice = g_ptr[b];
        copy.dstDevice = g_ptr[a];
        copy.srcPitch = copy.dstPitch = copy.WidthInBytes = g_size[a] / (size_t)c;
        copy.Height = (size_t)c;
        answer(cuMemcpy2D_v2(&copy));
    } else if (strcmp(command, "set2d") == 0 && valid(a) && fields == 4 && c > 0) {
        const size_t pitch = g_size[a] / (size_t)c;
        answer(cuMemsetD2D8_v2(g_ptr[a], pitch, (unsigned char)b, pitch, (size_t)c));
    } else if (strcmp(command, "peer") == 0 && valid(a) && valid(b)) {
        CUcontext ctx;
        CHECK(cuCtxGetCurrent(&ctx));
        answer(cuMemcpyPeer(g_ptr[a], ctx, g_ptr[b], ctx, g_size[a]));
    } else if (strcmp(command, "graph") == 0 && valid(a) && fields == 3) {
        answer(graph_fill(g_ptr[a], g_size[a], (unsigned int)b));
    } else if (strcmp(command, "capture") == 0 && valid(a) && fields == 3) {
        answer(capture_fill(g_ptr[a], g_size[a], (unsigned int)b));
    } else if (strcmp(command, "ipc") == 0 && valid(a)) {
        CUipcMemHandle handle;
        answer(cuIpcGetMemHandle(&handle, g_ptr[a]));
    } else if (strcmp(command, "threads") == 0 && fields == 4) {
        answer(threads(a, b, (size_t)c));
    } else if (strcmp(command, "sync") == 0) {
        answer(cuCtxSynchronize());
    } else {
        printf("err bad-command\n");
    }
}

int main(void) {
    char line[256];
    setup();
    g_fill = kernel("mock_fill");
    g_add = kernel("mock_add");
    g_xor = kernel("mock_xor_pair");
    g_sum = kernel("mock_checksum");
    CHECK(cuStreamCreate(&g_stream, 0));
    CHECK(cuMemAlloc(&g_out, sizeof(unsigned long long)));
    printf("ready\n");
    fflush(stdout);
    while (fgets(line, sizeof line, stdin) != NULL) {
        run(line);
        fflush(stdout);
    }
    return 0;
}
