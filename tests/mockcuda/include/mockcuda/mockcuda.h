/* Functions only the mock has: they let a test set what the simulated GPU does. */
#ifndef MOCKCUDA_MOCKCUDA_H
#define MOCKCUDA_MOCKCUDA_H

#include "mockcuda/cuda.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Sets the simulated duration of one block of `func`; a launch lasts this times its grid
 * size. Without it, a function named "sleep_us_<N>" or "sleep_ns_<N>" costs N us / N ns per
 * block and any other function 1 us per block. */
CUresult mockcudaSetKernelCost(CUfunction func, double nsPerBlock);

/* How many events this process has recorded (cuEventRecord and its per-thread variant), so a
 * test can see how many launches a library preloaded in front of the driver timed. */
CUresult mockcudaGetEventRecords(unsigned long long* count);

/* The first device address a kernel, copy or memset touched without it being memory the device
 * may access (outside every linear allocation and every mapped, accessible VMM range): from
 * then on every call that uses a context returns CUDA_ERROR_ILLEGAL_ADDRESS, as on a GPU.
 * `*address` is 0 while no such access happened. */
CUresult mockcudaLastFault(unsigned long long* address);

#ifdef __cplusplus
}
#endif

#endif
