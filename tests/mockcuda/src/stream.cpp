// Streams and events over the simulated timeline. Work queued on a stream completes at a
// simulated time (see launch.cpp); synchronising sleeps until then, and an event holds the
// completion time of the work before it, so elapsed times are simulated busy time.
#include "export.h"
#include "runtime.h"

using mockcuda::Event;
using mockcuda::Process;
using mockcuda::Stream;
using mockcuda::process;

namespace {

// Resolves a stream handle in the current context and returns when its work completes.
CUresult stream_done(CUstream handle, int64_t& done) {
    Process& p = process();
    std::lock_guard<std::mutex> lock(p.mutex);
    CUctx_st* ctx = nullptr;
    if (CUresult r = mockcuda::current_or_error(p, ctx)) {
        return r;
    }
    Stream* stream = nullptr;
    if (CUresult r = mockcuda::resolve_stream(p, handle, ctx, stream)) {
        return r;
    }
    done = stream->done_ns;
    return CUDA_SUCCESS;
}

CUresult event_time(CUevent handle, int64_t& time) {
    Process& p = process();
    std::lock_guard<std::mutex> lock(p.mutex);
    if (CUresult r = mockcuda::check_initialized(p)) {
        return r;
    }
    auto* event = reinterpret_cast<Event*>(handle);
    if (p.events.count(event) == 0) {
        return CUDA_ERROR_INVALID_HANDLE;
    }
    time = event->recorded ? event->time_ns : 0;  // an unrecorded event is complete
    return CUDA_SUCCESS;
}

}  // namespace

MOCK_API CUresult cuStreamCreate(CUstream* phStream, unsigned int flags) {
    Process& p = process();
    std::lock_guard<std::mutex> lock(p.mutex);
    CUctx_st* ctx = nullptr;
    if (CUresult r = mockcuda::current_or_error(p, ctx)) {
        return r;
    }
    if (phStream == nullptr || (flags & ~static_cast<unsigned int>(CU_STREAM_NON_BLOCKING))) {
        return CUDA_ERROR_INVALID_VALUE;
    }
    auto* stream = new Stream{ctx};
    p.streams.insert(stream);
    *phStream = reinterpret_cast<CUstream>(stream);
    return CUDA_SUCCESS;
}

MOCK_API CUresult cuStreamDestroy_v2(CUstream handle) {
    Process& p = process();
    std::lock_guard<std::mutex> lock(p.mutex);
    if (CUresult r = mockcuda::check_initialized(p)) {
        return r;
    }
    auto* stream = reinterpret_cast<Stream*>(handle);
    if (p.streams.erase(stream) == 0) {
        return CUDA_ERROR_INVALID_HANDLE;
    }
    delete stream;
    return CUDA_SUCCESS;
}

MOCK_API CUresult cuStreamSynchronize(CUstream handle) {
    int64_t done = 0;
    if (CUresult r = stream_done(handle, done)) {
        return r;
    }
    mockcuda::sleep_until_ns(done);
    return CUDA_SUCCESS;
}

MOCK_API CUresult cuStreamQuery(CUstream handle) {
    int64_t done = 0;
    if (CUresult r = stream_done(handle, done)) {
        return r;
    }
    return mockcuda::now_ns() >= done ? CUDA_SUCCESS : CUDA_ERROR_NOT_READY;
}

MOCK_API CUresult cuStreamSynchronize_ptsz(CUstream handle) {
    return cuStreamSynchronize(handle);
}
MOCK_API CUresult cuStreamQuery_ptsz(CUstream handle) { return cuStreamQuery(handle); }

MOCK_API CUresult cuEventCreate(CUevent* phEvent, unsigned int flags) {
    Process& p = process();
    std::lock_guard<std::mutex> lock(p.mutex);
    CUctx_st* ctx = nullptr;
    if (CUresult r = mockcuda::current_or_error(p, ctx)) {
        return r;
    }
    constexpr unsigned int kKnown = CU_EVENT_BLOCKING_SYNC | CU_EVENT_DISABLE_TIMING | 0x4;
    if (phEvent == nullptr || (flags & ~kKnown) != 0) {
        return CUDA_ERROR_INVALID_VALUE;
    }
    auto* event = new Event{flags};
    p.events.insert(event);
    *phEvent = reinterpret_cast<CUevent>(event);
    return CUDA_SUCCESS;
}

MOCK_API CUresult cuEventDestroy_v2(CUevent handle) {
    Process& p = process();
    std::lock_guard<std::mutex> lock(p.mutex);
    if (CUresult r = mockcuda::check_initialized(p)) {
        return r;
    }
    auto* event = reinterpret_cast<Event*>(handle);
    if (p.events.erase(event) == 0) {
        return CUDA_ERROR_INVALID_HANDLE;
    }
    delete event;
    return CUDA_SUCCESS;
}

MOCK_API CUresult cuEventRecord(CUevent handle, CUstream hStream) {
    Process& p = process();
    std::lock_guard<std::mutex> lock(p.mutex);
    CUctx_st* ctx = nullptr;
    if (CUresult r = mockcuda::current_or_error(p, ctx)) {
        return r;
    }
    auto* event = reinterpret_cast<Event*>(handle);
    if (p.events.count(event) == 0) {
        return CUDA_ERROR_INVALID_HANDLE;
    }
    Stream* stream = nullptr;
    if (CUresult r = mockcuda::resolve_stream(p, hStream, ctx, stream)) {
        return r;
    }
    const int64_t now = mockcuda::now_ns();
    event->recorded = true;
    event->time_ns = stream->done_ns > now ? stream->done_ns : now;
    return CUDA_SUCCESS;
}

MOCK_API CUresult cuEventRecord_ptsz(CUevent handle, CUstream hStream) {
    return cuEventRecord(handle, hStream);
}

MOCK_API CUresult cuEventQuery(CUevent handle) {
    int64_t time = 0;
    if (CUresult r = event_time(handle, time)) {
        return r;
    }
    return mockcuda::now_ns() >= time ? CUDA_SUCCESS : CUDA_ERROR_NOT_READY;
}

MOCK_API CUresult cuEventSynchronize(CUevent handle) {
    int64_t time = 0;
    if (CUresult r = event_time(handle, time)) {
        return r;
    }
    mockcuda::sleep_until_ns(time);
    return CUDA_SUCCESS;
}

MOCK_API CUresult cuEventElapsedTime_v2(float* ms, CUevent start, CUevent end) {
    Process& p = process();
    std::lock_guard<std::mutex> lock(p.mutex);
    if (CUresult r = mockcuda::check_initialized(p)) {
        return r;
    }
    if (ms == nullptr) {
        return CUDA_ERROR_INVALID_VALUE;
    }
    auto* first = reinterpret_cast<Event*>(start);
    auto* second = reinterpret_cast<Event*>(end);
    if (p.events.count(first) == 0 || p.events.count(second) == 0) {
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
    *ms = static_cast<float>(static_cast<double>(second->time_ns - first->time_ns) / 1e6);
    return CUDA_SUCCESS;
}

// The pre-12.8 entry point has the same signature.
MOCK_API CUresult cuEventElapsedTime(float* ms, CUevent start, CUevent end) {
    return cuEventElapsedTime_v2(ms, start, end);
}
