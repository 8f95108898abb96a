// The driver's per-process state: configuration, contexts, streams, events, allocations and
// kernels, behind one mutex. Handles given to callers are pointers to these objects; every
// entry point checks a handle against the live set before using it, so a stale or made-up
// handle is an error code, never a crash.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "config.h"
#include "kernels.h"
#include "mockcuda/cuda.h"
#include "shared_state.h"

struct CUctx_st;

namespace mockcuda {

// A number no other stream of the process has had (a freed stream's address may come back).
uint64_t next_stream_id();

// A kernel launch as a graph holds it: what runs, for how long, on which argument values
// (copied when the node was made).
struct KernelNode {
    const Kernel* kernel;  // a built-in kernel, or nullptr for one that only takes time
    int64_t ns;
    std::vector<unsigned char> args;
};

struct Graph {
    std::vector<KernelNode> nodes;
};

struct Stream {
    CUctx_st* ctx;
    std::unique_ptr<Graph> capture = nullptr;  // the graph being captured, while capturing
    int64_t done_ns = 0;  // when the last work queued on it completes
    // Simulated time the stream has been active up to done_ns: its work's durations and its
    // waits behind other work on the device, never the host's time between queueing calls.
    int64_t active_ns = 0;
    uint64_t id = next_stream_id();
};

struct Event {
    unsigned int flags;
    bool recorded = false;
    int64_t time_ns = 0;    // when it completes: the work queued before it has completed
    int64_t active_ns = 0;  // the stream's active time at that point
    uint64_t stream = 0;    // the id of the stream it was recorded on
};

struct Function {
    std::string name;
    double ns_per_block;
    const Kernel* kernel;  // the built-in kernel of that name, or nullptr
};

struct Module {
    std::vector<std::unique_ptr<Function>> functions;
};

// A contiguous device allocation (cuMemAlloc*, managed, async, arrays) or a VMM mapping.
struct Allocation {
    uint64_t size;     // bytes addressable
    uint64_t charged;  // bytes counted against the device (0 for VMM mappings: see Physical)
    int device;
    CUctx_st* ctx;
    bool is_array;
    bool is_vmm;
    uint64_t handle;  // the Physical behind a VMM mapping
    bool accessible;  // by the device: linear memory always, a mapping after cuMemSetAccess
};

// A cuMemCreate handle: memory charged at creation, held until released and unmapped.
struct Physical {
    int fd;  // memfd backing, so several mappings see the same bytes
    uint64_t size;
    int device;  // -1 for host memory, charged to no device
    int mappings = 0;
    bool released = false;
};

// A stream-ordered memory pool: its allocations land on `device` whatever the stream's.
struct Pool {
    int device;
};

struct Process {
    std::mutex mutex;
    std::atomic<bool> initialized{false};  // also read without the mutex
    Config config;
    std::unique_ptr<SharedState> shared;
    CUctx_st* primary[kMaxDevices] = {};
    int primary_refs[kMaxDevices] = {};
    std::unordered_set<CUctx_st*> contexts;
    std::unordered_set<Stream*> streams;
    std::unordered_set<Event*> events;
    std::unordered_set<Module*> modules;
    std::unordered_set<Function*> functions;
    std::unordered_set<Graph*> graphs;
    std::unordered_set<Graph*> graph_execs;
    std::unordered_set<Pool*> pools;
    Pool* default_pool[kMaxDevices] = {};  // created on first request, never destroyed
    std::unordered_set<void*> host_allocations;
    std::map<uintptr_t, Allocation> allocations;  // by base address
    std::unordered_map<uint64_t, Physical> physical;
    std::map<uintptr_t, uint64_t> reservations;  // cuMemAddressReserve: base -> size
    uint64_t next_physical = 1;
    int64_t memcreate_calls = 0;  // successful cuMemCreate calls (MOCKCUDA_FAIL_MEMCREATE_AFTER)
    bool faulted = false;         // an illegal address was touched: the process is done
    uintptr_t fault_address = 0;  // the first one
    uint64_t event_records = 0;  // successful cuEventRecord calls (mockcudaGetEventRecords)
};

Process& process();
CUctx_st*& current_context();  // per thread, as in the driver

// Checks made by nearly every entry point, to be called with the process mutex held.
CUresult check_initialized(const Process& p);
CUresult check_device(const Process& p, CUdevice device);
// The physical device (NVML's index) behind a valid ordinal: CUDA_VISIBLE_DEVICES renumbers.
int physical_device(const Process& p, CUdevice device);
// INVALID_CONTEXT when none, ILLEGAL_ADDRESS once the process has faulted.
CUresult current_or_error(const Process& p, CUctx_st*& ctx);
// The stream a handle names in `ctx`: 0, CU_STREAM_LEGACY and CU_STREAM_PER_THREAD are the
// context's default stream. INVALID_HANDLE for an unknown handle.
CUresult resolve_stream(const Process& p, CUstream handle, CUctx_st* ctx, Stream*& stream);
// Frees what a destroyed context owned.
void release_context_memory(Process& p, CUctx_st* ctx);
// A linear allocation of `size` bytes on `device`, owned by `ctx`, its address in `*dptr`.
CUresult allocate_linear(Process& p, CUctx_st* ctx, int device, uint64_t size,
                         CUdeviceptr* dptr);
// The allocation containing [ptr, ptr + bytes), or nullptr.
const Allocation* find_allocation(const Process& p, uintptr_t ptr, uint64_t bytes);
// True when [ptr, ptr + size) lies inside one range from cuMemAddressReserve.
bool within_reservation(const Process& p, uintptr_t ptr, uint64_t size);
// True when the device may touch every byte of [ptr, ptr + bytes): each lies in a linear
// allocation or in a mapped, accessible VMM range. Otherwise the first byte it may not touch
// is in `bad`.
bool device_accessible(const Process& p, uintptr_t ptr, uint64_t bytes, uintptr_t& bad);
// Records an access to `address` the device may not make (the first one sticks) and returns
// the error every later call gets.
CUresult fault(Process& p, uintptr_t address);
// Queues `ns` of work on `stream` on the device's shared timeline.
void queue_work(Process& p, Stream* stream, int64_t ns);

}  // namespace mockcuda

// The object behind a CUcontext.
struct CUctx_st {
    int device;
    bool primary;
    mockcuda::Stream default_stream{this};
    int64_t done_ns = 0;  // completion of the last work queued in this context
    int capturing = 0;    // streams of this context being captured
};
