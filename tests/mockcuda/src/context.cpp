// Contexts: primary (retained per device) and created ones; the current one is per thread.
#include "export.h"
#include "guards.h"
#include "handles.h"
#include "runtime.h"

using mockcuda::Process;

// The implementations behind entry points exported under several names (older versions and
// signatures). Each name calls these, never another exported name, which a preloaded library
// could interpose.
namespace {

CUresult primary_release(CUdevice device) {
    return mockcuda::with_device(true, device, [&](Process& p) {
        if (p.primary_refs[device] == 0) {
            return CUDA_ERROR_INVALID_CONTEXT;
        }
        // The context object outlives its last reference so that a thread still holding it
        // as current gets errors from its work rather than a dangling pointer.
        --p.primary_refs[device];
        return CUDA_SUCCESS;
    });
}

CUresult create_context(CUcontext* pctx, CUdevice device) {
    return mockcuda::with_device(pctx != nullptr, device, [&](Process& p) {
        auto* ctx = new CUctx_st{device, false};
        mockcuda::current_context() = ctx;
        return mockcuda::publish(p.contexts, ctx, pctx);
    });
}

}  // namespace

MOCK_API CUresult cuDevicePrimaryCtxRetain(CUcontext* pctx, CUdevice device) {
    return mockcuda::with_device(pctx != nullptr, device, [&](Process& p) {
        if (p.primary[device] == nullptr) {
            p.primary[device] = new CUctx_st{device, true};
            p.contexts.insert(p.primary[device]);
        }
        ++p.primary_refs[device];
        *pctx = p.primary[device];
        return CUDA_SUCCESS;
    });
}

MOCK_API CUresult cuDevicePrimaryCtxRelease_v2(CUdevice device) {
    return primary_release(device);
}

MOCK_API CUresult cuDevicePrimaryCtxRelease(CUdevice device) { return primary_release(device); }

MOCK_API CUresult cuCtxCreate_v2(CUcontext* pctx, unsigned int flags, CUdevice device) {
    (void)flags;  // scheduling flags change nothing in a simulation
    return create_context(pctx, device);
}

// Later signatures add execution-affinity / creation parameters, which the mock ignores.
MOCK_API CUresult cuCtxCreate_v3(CUcontext* pctx, void* params, int numParams,
                                 unsigned int flags, CUdevice device) {
    (void)params;
    (void)numParams;
    (void)flags;
    return create_context(pctx, device);
}

MOCK_API CUresult cuCtxCreate_v4(CUcontext* pctx, void* params, unsigned int flags,
                                 CUdevice device) {
    (void)params;
    (void)flags;
    return create_context(pctx, device);
}

MOCK_API CUresult cuCtxDestroy_v2(CUcontext ctx) {
    return mockcuda::with_initialized([&](Process& p) {
        if (ctx == nullptr) {
            return CUDA_ERROR_INVALID_VALUE;
        }
        if (p.contexts.count(ctx) == 0 || ctx->primary) {
            return CUDA_ERROR_INVALID_CONTEXT;
        }
        mockcuda::release_context_memory(p, ctx);
        for (auto it = p.streams.begin(); it != p.streams.end();) {
            if ((*it)->ctx == ctx) {
                delete *it;
                it = p.streams.erase(it);
            } else {
                ++it;
            }
        }
        if (mockcuda::current_context() == ctx) {
            mockcuda::current_context() = nullptr;
        }
        return mockcuda::destroy(p.contexts, ctx, CUDA_ERROR_INVALID_CONTEXT);
    });
}

MOCK_API CUresult cuCtxGetCurrent(CUcontext* pctx) {
    return mockcuda::with_initialized([&](Process&) {
        if (pctx == nullptr) {
            return CUDA_ERROR_INVALID_VALUE;
        }
        *pctx = mockcuda::current_context();
        return CUDA_SUCCESS;
    });
}

MOCK_API CUresult cuCtxSetCurrent(CUcontext ctx) {
    return mockcuda::with_initialized([&](Process& p) {
        if (ctx != nullptr && p.contexts.count(ctx) == 0) {
            return CUDA_ERROR_INVALID_CONTEXT;
        }
        mockcuda::current_context() = ctx;
        return CUDA_SUCCESS;
    });
}

MOCK_API CUresult cuCtxGetDevice(CUdevice* device) {
    return mockcuda::with_context([&](Process&, CUctx_st* ctx) {
        if (device == nullptr) {
            return CUDA_ERROR_INVALID_VALUE;
        }
        *device = ctx->device;
        return CUDA_SUCCESS;
    });
}

MOCK_API CUresult cuCtxSynchronize(void) {
    int64_t done = 0;
    const CUresult r = mockcuda::with_context([&](Process&, CUctx_st* ctx) {
        if (ctx->capturing > 0) {
            return CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED;
        }
        done = ctx->done_ns;
        return CUDA_SUCCESS;
    });
    return mockcuda::wait_after(r, done);
}
