/* Launches one kernel repeatedly between two events and reports the simulated time between
 * them. Usage: launch_loop <function name> <launches> <grid blocks> <plain|ex|coop|graph>
 * [ns per block]. With LAUNCH_LOOP_GATE set it prints "ready" once set up and starts only
 * when a line arrives on stdin, so that several processes can begin their work together. */
#include <string.h>

#include "common.h"
#include "mockcuda/mockcuda.h"
#include "mockcuda/nvml.h"

static void launch(const char* how, CUfunction f, unsigned int grid, CUstream stream) {
    if (strcmp(how, "ex") == 0) {
        CUlaunchConfig config;
        memset(&config, 0, sizeof config);
        config.gridDimX = grid;
        config.gridDimY = config.gridDimZ = 1;
        config.blockDimX = 128;
        config.blockDimY = config.blockDimZ = 1;
        config.hStream = stream;
        CHECK(cuLaunchKernelEx(&config, f, NULL, NULL));
    } else if (strcmp(how, "coop") == 0) {
        CHECK(cuLaunchCooperativeKernel(f, grid, 1, 1, 128, 1, 1, 0, stream, NULL));
    } else {
        CHECK(cuLaunchKernel(f, grid, 1, 1, 128, 1, 1, 0, stream, NULL, NULL));
    }
}

int main(int argc, char** argv) {
    if (argc < 5) {
        fprintf(stderr, "usage: launch_loop <name> <launches> <grid> <how> [ns per block]\n");
        return 2;
    }
    const int launches = atoi(argv[2]);
    const unsigned int grid = (unsigned int)atoi(argv[3]);
    const char* how = argv[4];
    setup();
    CUmodule module;
    CUfunction f;
    CUstream stream;
    CUevent start, end;
    CHECK(cuModuleLoadData(&module, "any image"));
    CHECK(cuModuleGetFunction(&f, module, argv[1]));
    if (argc > 5) {
        CHECK(mockcudaSetKernelCost(f, atof(argv[5])));
    }
    CHECK(cuStreamCreate(&stream, CU_STREAM_NON_BLOCKING));
    CHECK(cuEventCreate(&start, CU_EVENT_DEFAULT));
    CHECK(cuEventCreate(&end, CU_EVENT_DEFAULT));
    gate("LAUNCH_LOOP_GATE");
    CHECK(cuEventRecord(start, stream));
    if (strcmp(how, "graph") == 0) {
        CUgraph graph;
        CUgraphExec exec;
        CUgraphNode node;
        CUDA_KERNEL_NODE_PARAMS_v2 params;
        memset(&params, 0, sizeof params);
        params.func = f;
        params.gridDimX = grid;
        params.gridDimY = params.gridDimZ = 1;
        params.blockDimX = 128;
        params.blockDimY = params.blockDimZ = 1;
        CHECK(cuGraphCreate(&graph, 0));
        for (int i = 0; i < launches; ++i) {
            CHECK(cuGraphAddKernelNode(&node, graph, NULL, 0, &params));
        }
        CHECK(cuGraphInstantiate(&exec, graph, 0));
        CHECK(cuGraphLaunch(exec, stream));
    } else {
        for (int i = 0; i < launches; ++i) {
            launch(how, f, grid, stream);
        }
    }
    CHECK(cuEventRecord(end, stream));
    printf("query_before_sync=%d\n", (int)cuStreamQuery(stream));
    float early;
    printf("elapsed_before_sync=%d\n", (int)cuEventElapsedTime(&early, start, end));
    CHECK(cuStreamSynchronize(stream));
    printf("query_after_sync=%d\n", (int)cuStreamQuery(stream));
    printf("event_query=%d\n", (int)cuEventQuery(end));
    float ms;
    CHECK(cuEventElapsedTime(&ms, start, end));
    printf("elapsed_ms=%.3f\n", ms);

    nvmlDevice_t device;
    nvmlUtilization_t utilization;
    if (nvmlInit() == NVML_SUCCESS && nvmlDeviceGetHandleByIndex(0, &device) == NVML_SUCCESS &&
        nvmlDeviceGetUtilizationRates(device, &utilization) == NVML_SUCCESS) {
        printf("utilization=%u\n", utilization.gpu);
        nvmlShutdown();
    }
    return 0;
}
