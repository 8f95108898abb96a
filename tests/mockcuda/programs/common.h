/* Shared by the test programs: results go to stdout as key=value lines for the tests. */
#ifndef MOCKCUDA_PROGRAMS_COMMON_H
#define MOCKCUDA_PROGRAMS_COMMON_H

#include <stdio.h>
#include <stdlib.h>

#include "mockcuda/cuda.h"

/* Fails the program, naming the call, when a driver call that must succeed does not. */
#define CHECK(call)                                                              \
    do {                                                                         \
        CUresult check_result_ = (call);                                         \
        if (check_result_ != CUDA_SUCCESS) {                                     \
            fprintf(stderr, "%s failed: %d\n", #call, (int)check_result_);       \
            exit(1);                                                             \
        }                                                                        \
    } while (0)

/* With `variable` set in the environment: prints "ready" and returns once a line arrives on
 * stdin (exits if stdin closes first), so that several processes can begin their work at one
 * signal. Without it, returns at once. */
static inline void gate(const char* variable) {
    char line[16];
    if (getenv(variable) == NULL) {
        return;
    }
    printf("ready\n");
    fflush(stdout);
    if (fgets(line, sizeof line, stdin) == NULL) {
        exit(2);
    }
}

/* cuInit, then a context on device 0 made current. */
static inline CUcontext setup(void) {
    CUdevice device;
    CUcontext ctx;
    CHECK(cuInit(0));
    CHECK(cuDeviceGet(&device, 0));
    CHECK(cuCtxCreate(&ctx, 0, device));
    return ctx;
}

/* A function of a freshly loaded module: the mock's built-in kernels are found by name. */
static inline CUfunction kernel(const char* name) {
    CUmodule module;
    CUfunction f;
    CHECK(cuModuleLoadData(&module, "any image"));
    CHECK(cuModuleGetFunction(&f, module, name));
    return f;
}

/* Launches `mock_fill` (the built-in kernel: dst[0..bytes) = value) with kernelParams. */
static inline CUresult fill(CUfunction mock_fill, CUdeviceptr dst,
                                   unsigned long long bytes, unsigned int value,
                                   CUstream stream) {
    void* params[] = {&dst, &bytes, &value};
    return cuLaunchKernel(mock_fill, 1, 1, 1, 32, 1, 1, 0, stream, params, NULL);
}

#endif
