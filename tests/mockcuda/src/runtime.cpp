#include "runtime.h"

#include <pthread.h>
#include <unistd.h>

#include <algorithm>

namespace mockcuda {

namespace {

Process* g_process = nullptr;

// A forked child holds none of its parent's contexts or memory (as with the real driver, it
// must call cuInit again); its copy of the tables is dropped and the parent's slot left alone.
void before_fork() { g_process->mutex.lock(); }
void after_fork_parent() { g_process->mutex.unlock(); }
void after_fork_child() {
    Process* old = g_process;
    if (old->shared) {
        old->shared.release();  // still the parent's: the mapping is left, its slot untouched
    }
    g_process = new Process();  // the old tables leak: they belong to the parent's objects
    current_context() = nullptr;
}

__attribute__((destructor)) void release_slot_at_exit() {
    if (g_process != nullptr && g_process->shared) {
        g_process->shared->release();
    }
}

}  // namespace

uint64_t next_stream_id() {
    static std::atomic<uint64_t> last{0};
    return last.fetch_add(1, std::memory_order_relaxed) + 1;
}

Process& process() {
    static std::once_flag once;
    std::call_once(once, [] {
        g_process = new Process();
        pthread_atfork(before_fork, after_fork_parent, after_fork_child);
    });
    return *g_process;
}

CUctx_st*& current_context() {
    thread_local CUctx_st* current = nullptr;
    return current;
}

CUresult check_initialized(const Process& p) {
    return p.initialized.load() ? CUDA_SUCCESS : CUDA_ERROR_NOT_INITIALIZED;
}

CUresult check_device(const Process& p, CUdevice device) {
    if (!p.initialized) {
        return CUDA_ERROR_NOT_INITIALIZED;
    }
    const auto visible = static_cast<CUdevice>(p.config.visible.size());
    return device >= 0 && device < visible ? CUDA_SUCCESS : CUDA_ERROR_INVALID_DEVICE;
}

int physical_device(const Process& p, CUdevice device) {
    return p.config.visible[static_cast<size_t>(device)];
}

CUresult current_or_error(const Process& p, CUctx_st*& ctx) {
    if (!p.initialized) {
        return CUDA_ERROR_NOT_INITIALIZED;
    }
    ctx = current_context();
    if (ctx == nullptr || p.contexts.count(ctx) == 0) {
        return CUDA_ERROR_INVALID_CONTEXT;
    }
    return p.faulted ? CUDA_ERROR_ILLEGAL_ADDRESS : CUDA_SUCCESS;
}

CUresult resolve_stream(const Process& p, CUstream handle, CUctx_st* ctx, Stream*& stream) {
    if (handle == nullptr || handle == CU_STREAM_LEGACY || handle == CU_STREAM_PER_THREAD) {
        stream = &ctx->default_stream;
        return CUDA_SUCCESS;
    }
    auto* candidate = reinterpret_cast<Stream*>(handle);
    if (p.streams.count(candidate) == 0) {
        return CUDA_ERROR_INVALID_HANDLE;
    }
    stream = candidate;
    return CUDA_SUCCESS;
}

const Allocation* find_allocation(const Process& p, uintptr_t ptr, uint64_t bytes) {
    auto it = p.allocations.upper_bound(ptr);
    if (it == p.allocations.begin()) {
        return nullptr;
    }
    --it;
    const uint64_t offset = ptr - it->first;
    if (offset >= it->second.size || bytes > it->second.size - offset) {
        return nullptr;
    }
    return &it->second;
}

bool within_reservation(const Process& p, uintptr_t ptr, uint64_t size) {
    auto it = p.reservations.upper_bound(ptr);
    if (it == p.reservations.begin()) {
        return false;
    }
    --it;
    const uint64_t offset = ptr - it->first;
    return offset < it->second && size <= it->second - offset;
}

// Walks the allocations covering the range back to back (a VMM allocation is several mappings).
bool device_accessible(const Process& p, uintptr_t ptr, uint64_t bytes, uintptr_t& bad) {
    if (bytes > UINTPTR_MAX - ptr) {
        bad = ptr;
        return false;
    }
    const uintptr_t end = ptr + bytes;
    for (uintptr_t at = ptr; at < end;) {
        auto it = p.allocations.upper_bound(at);
        if (it == p.allocations.begin()) {
            bad = at;
            return false;
        }
        --it;
        if (at - it->first >= it->second.size || !it->second.accessible) {
            bad = at;
            return false;
        }
        at = it->first + it->second.size;
    }
    return true;
}

CUresult fault(Process& p, uintptr_t address) {
    if (!p.faulted) {
        p.faulted = true;
        p.fault_address = address;
    }
    return CUDA_ERROR_ILLEGAL_ADDRESS;
}

void queue_work(Process& p, Stream* stream, int64_t ns) {
    const int64_t now = now_ns();
    const int64_t end = p.shared->enqueue(stream->ctx->device, now, ns);
    // Active from now on if the stream was idle, else from where its earlier work ends.
    stream->active_ns += end - std::max(now, stream->done_ns);
    stream->done_ns = end;
    stream->ctx->done_ns = std::max(stream->ctx->done_ns, end);
}

}  // namespace mockcuda
