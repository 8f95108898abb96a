// Streams and events over the simulated timeline. Work queued on a stream completes at a
// simulated time (see launch.cpp); synchronising sleeps until then. An event holds the
// completion time of the work before it and the stream's active time at that point, so the
// elapsed time between two events of one stream is the simulated time the stream was active
// in between: the work's durations and its waits behind other work, never the host's time
// between queueing calls (which would make the measured time of one launch depend on how
// quickly the host got from recording an event to launching). A stream being captured queues
// nothing: its launches become nodes of the graph that cuStreamEndCapture returns.
#include "export.h"
#include "guards.h"
#include "handles.h"
#include "mockcuda/mockcuda.h"
#include "runtime.h"

using mockcuda::Event;
using mockcuda::Process;
using mockcuda::Stream;

namespace {

// Resolves a stream handle in the current context and returns when its work completes; a
// stream being captured has no work to wait for.
CUresult stream_done(CUstream handle, int64_t& done) {
    return mockcuda::with_stream(handle, [&](Process&, Stream* stream) {
        if (stream->capture) {
            return CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED;
        }
        done = stream->done_ns;
        return CUDA_SUCCESS;
    });
}

CUresult event_time(CUevent handle, int64_t& time) {
    return mockcuda::with_initialized([&](Process& p) {
        const Event* event = mockcuda::lookup(p.events, handle);
        if (event == nullptr) {
            return CUDA_ERROR_INVALID_HANDLE;
        }
        if (p.faulted) {
            return CUDA_ERROR_ILLEGAL_ADDRESS;
        }
        time = event->recorded ? event->time_ns : 0;  // an unrecorded event is complete
        return CUDA_SUCCESS;
    });
}

// Synchronising on a stream or an event: `completion` checks the handle and gives the simulated
// time its work completes.
template <typename Handle>
CUresult synchronize(CUresult (*completion)(Handle, int64_t&), Handle handle) {
    int64_t done = 0;
    const CUresult r = completion(handle, done);
    return mockcuda::wait_after(r, done);
}

// Querying a stream or an event: NOT_READY until that time.
template <typename Handle>
CUresult query(CUresult (*completion)(Handle, int64_t&), Handle handle) {
    int64_t done = 0;
    if (CUresult r = completion(handle, done)) {
        return r;
    }
    return mockcuda::now_ns() >= done ? CUDA_SUCCESS : CUDA_ERROR_NOT_READY;
}

// Behind cuEventRecord and its per-thread variant (neither calls the other: a call through an
// exported name could be interposed by a preloaded library).
CUresult record(CUevent handle, CUstream hStream) {
    return mockcuda::with_context([&](Process& p, CUctx_st* ctx) {
        Event* event = mockcuda::lookup(p.events, handle);
        if (event == nullptr) {
            return CUDA_ERROR_INVALID_HANDLE;
        }
        Stream* stream = nullptr;
        if (CUresult r = mockcuda::resolve_stream(p, hStream, ctx, stream)) {
            return r;
        }
        const int64_t now = mockcuda::now_ns();
        event->recorded = true;
        event->time_ns = stream->done_ns > now ? stream->done_ns : now;
        event->active_ns = stream->active_ns;
        event->stream = stream->id;
        ++p.event_records;
        return CUDA_SUCCESS;
    });
}

// Behind cuEventElapsedTime and its _v2.
CUresult elapsed(float* ms, CUevent start, CUevent end) {
    return mockcuda::with_initialized([&](Process& p) {
        if (ms == nullptr) {
            return CUDA_ERROR_INVALID_VALUE;
        }
        const Event* first = mockcuda::lookup(p.events, start);
        const Event* second = mockcuda::lookup(p.events, end);
        if (first == nullptr || second == nullptr) {
            return CUDA_ERROR_INVALID_HANDLE;
        }
        if (!first->recorded || !second->recorded ||
            ((first->flags | second->flags) & CU_EVENT_DISABLE_TIMING) != 0) {
            return CUDA_ERROR_INVALID_HANDLE;
        }
        const int64_t now = mockcuda::now_ns();
        if (now < first->time_ns || now < second->time_ns) {
            return CUDA_ERROR_NOT_READY;
        }
        const int64_t ns = first->stream == second->stream ? second->active_ns - first->active_ns
                                                           : second->time_ns - first->time_ns;
        *ms = static_cast<float>(static_cast<double>(ns) / 1e6);
        return CUDA_SUCCESS;
    });
}

// Behind the capture entry points and their per-thread variants (none calls another). The
// default stream cannot be captured: the mock's per-thread default stream is the legacy one.
CUresult begin_capture(CUstream handle, CUstreamCaptureMode mode) {
    return mockcuda::with_stream(handle, [&](Process&, Stream* stream) {
        if (mode != CU_STREAM_CAPTURE_MODE_GLOBAL && mode != CU_STREAM_CAPTURE_MODE_THREAD_LOCAL &&
            mode != CU_STREAM_CAPTURE_MODE_RELAXED) {
            return CUDA_ERROR_INVALID_VALUE;
        }
        if (stream == &stream->ctx->default_stream) {
            return CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED;
        }
        if (stream->capture) {
            return CUDA_ERROR_ILLEGAL_STATE;
        }
        stream->capture = std::make_unique<mockcuda::Graph>();
        ++stream->ctx->capturing;
        return CUDA_SUCCESS;
    });
}

CUresult end_capture(CUstream handle, CUgraph* graph) {
    return mockcuda::with_stream(handle, [&](Process& p, Stream* stream) {
        if (graph == nullptr) {
            return CUDA_ERROR_INVALID_VALUE;
        }
        if (!stream->capture) {
            return CUDA_ERROR_ILLEGAL_STATE;
        }
        --stream->ctx->capturing;
        return mockcuda::publish(p.graphs, stream->capture.release(), graph);
    });
}

CUresult is_capturing(CUstream handle, CUstreamCaptureStatus* status) {
    return mockcuda::with_stream(handle, [&](Process&, Stream* stream) {
        if (status == nullptr) {
            return CUDA_ERROR_INVALID_VALUE;
        }
        *status = stream->capture ? CU_STREAM_CAPTURE_STATUS_ACTIVE : CU_STREAM_CAPTURE_STATUS_NONE;
        return CUDA_SUCCESS;
    });
}

}  // namespace

MOCK_API CUresult cuStreamCreate(CUstream* phStream, unsigned int flags) {
    return mockcuda::with_context([&](Process& p, CUctx_st* ctx) {
        if (phStream == nullptr || (flags & ~static_cast<unsigned int>(CU_STREAM_NON_BLOCKING))) {
            return CUDA_ERROR_INVALID_VALUE;
        }
        return mockcuda::publish(p.streams, new Stream{ctx}, phStream);
    });
}

MOCK_API CUresult cuStreamDestroy_v2(CUstream handle) {
    return mockcuda::with_initialized([&](Process& p) {
        const Stream* stream = mockcuda::lookup(p.streams, handle);
        if (stream != nullptr && stream->capture) {
            --stream->ctx->capturing;  // its capture ends with it
        }
        return mockcuda::destroy(p.streams, handle, CUDA_ERROR_INVALID_HANDLE);
    });
}

MOCK_API CUresult cuStreamSynchronize(CUstream handle) { return synchronize(stream_done, handle); }

MOCK_API CUresult cuStreamQuery(CUstream handle) { return query(stream_done, handle); }

MOCK_API CUresult cuStreamSynchronize_ptsz(CUstream handle) {
    return synchronize(stream_done, handle);
}
MOCK_API CUresult cuStreamQuery_ptsz(CUstream handle) { return query(stream_done, handle); }

MOCK_API CUresult cuEventCreate(CUevent* phEvent, unsigned int flags) {
    return mockcuda::with_context([&](Process& p, CUctx_st*) {
        constexpr unsigned int kKnown = CU_EVENT_BLOCKING_SYNC | CU_EVENT_DISABLE_TIMING | 0x4;
        if (phEvent == nullptr || (flags & ~kKnown) != 0) {
            return CUDA_ERROR_INVALID_VALUE;
        }
        return mockcuda::publish(p.events, new Event{flags}, phEvent);
    });
}

MOCK_API CUresult cuEventDestroy_v2(CUevent handle) {
    return mockcuda::with_initialized([&](Process& p) {
        return mockcuda::destroy(p.events, handle, CUDA_ERROR_INVALID_HANDLE);
    });
}

MOCK_API CUresult cuEventRecord(CUevent handle, CUstream hStream) {
    return record(handle, hStream);
}

MOCK_API CUresult cuEventRecord_ptsz(CUevent handle, CUstream hStream) {
    return record(handle, hStream);
}

MOCK_API CUresult cuEventQuery(CUevent handle) { return query(event_time, handle); }

MOCK_API CUresult cuEventSynchronize(CUevent handle) { return synchronize(event_time, handle); }

MOCK_API CUresult cuEventElapsedTime_v2(float* ms, CUevent start, CUevent end) {
    return elapsed(ms, start, end);
}

// The pre-12.8 entry point has the same signature.
MOCK_API CUresult cuEventElapsedTime(float* ms, CUevent start, CUevent end) {
    return elapsed(ms, start, end);
}

MOCK_API CUresult mockcudaGetEventRecords(unsigned long long* count) {
    return mockcuda::with_initialized([&](Process& p) {
        if (count == nullptr) {
            return CUDA_ERROR_INVALID_VALUE;
        }
        *count = p.event_records;
        return CUDA_SUCCESS;
    });
}

MOCK_API CUresult cuStreamBeginCapture_v2(CUstream handle, CUstreamCaptureMode mode) {
    return begin_capture(handle, mode);
}
MOCK_API CUresult cuStreamBeginCapture_v2_ptsz(CUstream handle, CUstreamCaptureMode mode) {
    return begin_capture(handle, mode);
}
MOCK_API CUresult cuStreamEndCapture(CUstream handle, CUgraph* graph) {
    return end_capture(handle, graph);
}
MOCK_API CUresult cuStreamEndCapture_ptsz(CUstream handle, CUgraph* graph) {
    return end_capture(handle, graph);
}
MOCK_API CUresult cuStreamIsCapturing(CUstream handle, CUstreamCaptureStatus* status) {
    return is_capturing(handle, status);
}
MOCK_API CUresult cuStreamIsCapturing_ptsz(CUstream handle, CUstreamCaptureStatus* status) {
    return is_capturing(handle, status);
}
