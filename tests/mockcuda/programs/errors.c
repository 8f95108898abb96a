/* Calls the driver wrongly and prints the error code of each call (name=code). */
#include <string.h>

#include "common.h"
#include "mockcuda/mockcuda.h"
#include "mockcuda/nvml.h"

#define SHOW(name, call) printf("%s=%d\n", name, (int)(call))

int main(void) {
    CUdeviceptr ptr;
    size_t free_bytes, total, pitch;
    int count;
    CUdevice device;
    CUcontext ctx;
    SHOW("alloc_before_init", cuMemAlloc(&ptr, 16));
    SHOW("count_before_init", cuDeviceGetCount(&count));
    SHOW("nvml_before_init", nvmlDeviceGetCount(&(unsigned int){0}));
    SHOW("init_bad_flags", cuInit(1));
    CHECK(cuInit(0));
    SHOW("alloc_without_context", cuMemAlloc(&ptr, 16));
    SHOW("meminfo_without_context", cuMemGetInfo(&free_bytes, &total));
    SHOW("device_get_null", cuDeviceGet(NULL, 0));
    SHOW("device_get_bad_ordinal", cuDeviceGet(&device, 99));
    SHOW("device_get_negative", cuDeviceGet(&device, -1));
    SHOW("total_mem_bad_device", cuDeviceTotalMem(&total, 7));
    SHOW("ctx_create_bad_device", cuCtxCreate(&ctx, 0, 5));
    SHOW("set_current_bogus", cuCtxSetCurrent((CUcontext)&count));
    CHECK(cuCtxCreate(&ctx, 0, 0));
    SHOW("alloc_null", cuMemAlloc(NULL, 16));
    SHOW("alloc_zero", cuMemAlloc(&ptr, 0));
    SHOW("alloc_huge", cuMemAlloc(&ptr, (size_t)1 << 62));
    SHOW("meminfo_null", cuMemGetInfo(NULL, &total));
    SHOW("pitch_bad_element", cuMemAllocPitch(&ptr, &pitch, 100, 2, 3));
    SHOW("free_unknown", cuMemFree(12345));
    SHOW("free_zero", cuMemFree(0));
    SHOW("free_host_unknown", cuMemFreeHost(&count));
    SHOW("memcpy_unknown", cuMemcpyHtoD(12345, &count, sizeof count));
    CHECK(cuMemAlloc(&ptr, 16));
    SHOW("memcpy_past_end", cuMemcpyHtoD(ptr + 8, &total, 16));
    SHOW("pointer_attribute_unknown",
         cuPointerGetAttribute(&count, CU_POINTER_ATTRIBUTE_DEVICE_ORDINAL, 12345));
    SHOW("attribute_bad", cuDeviceGetAttribute(&count, (CUdevice_attribute)9999, 0));
    SHOW("stream_sync_bogus", cuStreamSynchronize((CUstream)&count));
    SHOW("event_record_bogus", cuEventRecord((CUevent)&count, NULL));
    SHOW("launch_bogus_function",
         cuLaunchKernel((CUfunction)&count, 1, 1, 1, 1, 1, 1, 0, NULL, NULL, NULL));
    CUmodule module;
    CUfunction f;
    CHECK(cuModuleLoadData(&module, "x"));
    CHECK(cuModuleGetFunction(&f, module, "k"));
    SHOW("launch_zero_grid", cuLaunchKernel(f, 0, 1, 1, 1, 1, 1, 0, NULL, NULL, NULL));
    SHOW("launch_big_block", cuLaunchKernel(f, 1, 1, 1, 2048, 1, 1, 0, NULL, NULL, NULL));
    SHOW("set_cost_negative", mockcudaSetKernelCost(f, -1.0));
    CUevent start, end;
    CHECK(cuEventCreate(&start, CU_EVENT_DISABLE_TIMING));
    CHECK(cuEventCreate(&end, 0));
    float ms;
    SHOW("elapsed_unrecorded", cuEventElapsedTime(&ms, end, end));
    CHECK(cuEventRecord(start, NULL));
    CHECK(cuEventRecord(end, NULL));
    SHOW("elapsed_disabled_timing", cuEventElapsedTime(&ms, start, end));
    SHOW("elapsed_null", cuEventElapsedTime(NULL, end, end));
    CUmemAllocationProp prop;
    memset(&prop, 0, sizeof prop);
    prop.type = CU_MEM_ALLOCATION_TYPE_PINNED;
    prop.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
    prop.location.id = 9;
    SHOW("vmm_bad_device", cuMemCreate(&(CUmemGenericAllocationHandle){0}, 2 << 20, &prop, 0));
    SHOW("granularity_null_prop",
         cuMemGetAllocationGranularity(&pitch, NULL, CU_MEM_ALLOC_GRANULARITY_MINIMUM));
    SHOW("release_unknown", cuMemRelease(777));
    const char* text = NULL;
    SHOW("error_name_unknown", cuGetErrorName((CUresult)12345, &text));
    CHECK(cuGetErrorName(CUDA_ERROR_OUT_OF_MEMORY, &text));
    printf("error_name_oom=%s\n", text);
    SHOW("ctx_destroy_null", cuCtxDestroy(NULL));
    CHECK(cuCtxDestroy(ctx));
    SHOW("alloc_after_destroy", cuMemAlloc(&ptr, 16));
    return 0;
}
