// The checks that open nearly every driver entry point, each run with the process mutex held
// for the whole call. The order of the checks is the driver's, so that a call with several
// faults reports the same error as the real driver.
#pragma once

#include <mutex>

#include "runtime.h"

namespace mockcuda {

// NOT_INITIALIZED before cuInit; otherwise `body(process)`.
template <typename Body>
CUresult with_initialized(Body body) {
    Process& p = process();
    std::lock_guard<std::mutex> lock(p.mutex);
    if (CUresult r = check_initialized(p)) {
        return r;
    }
    return body(p);
}

// As with_initialized, and INVALID_CONTEXT without a live current context; otherwise
// `body(process, current context)`.
template <typename Body>
CUresult with_context(Body body) {
    Process& p = process();
    std::lock_guard<std::mutex> lock(p.mutex);
    CUctx_st* ctx = nullptr;
    if (CUresult r = current_or_error(p, ctx)) {
        return r;
    }
    return body(p, ctx);
}

// As with_initialized, then INVALID_VALUE unless `args_valid`, then INVALID_DEVICE for a
// device out of range; otherwise `body(process)`.
template <typename Body>
CUresult with_device(bool args_valid, CUdevice device, Body body) {
    return with_initialized([&](Process& p) {
        if (!args_valid) {
            return CUDA_ERROR_INVALID_VALUE;
        }
        if (CUresult r = check_device(p, device)) {
            return r;
        }
        return body(p);
    });
}

// As with_context, then the stream `handle` names in that context (see resolve_stream);
// otherwise `body(process, stream)`.
template <typename Body>
CUresult with_stream(CUstream handle, Body body) {
    return with_context([&](Process& p, CUctx_st* ctx) {
        Stream* stream = nullptr;
        if (CUresult r = resolve_stream(p, handle, ctx, stream)) {
            return r;
        }
        return body(p, stream);
    });
}

// Ends a synchronising call once its checks, made under the lock, returned `r`: on success
// sleeps until the simulated time `done`. Never under the lock: other threads keep working.
inline CUresult wait_after(CUresult r, int64_t done) {
    if (r == CUDA_SUCCESS) {
        sleep_until_ns(done);
    }
    return r;
}

}  // namespace mockcuda
