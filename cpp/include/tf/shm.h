// The shared region: one file per worker and GPU, mapped by every process of the worker (the
// shim, as members) and by the node agent (creator and reader).
//
// Layout (version kLayoutVersion, native byte order, all counters 64-bit lock-free atomics):
//   offset 0    header, kHeaderSize bytes: magic, layout version, header size, slot count, slot
//               size, file size, limits generation, limits, worker name, accounting state
//   kHeaderSize slot_count slots of kSlotSize bytes: incarnation, pid, start-time token, bytes
//               by kind, launch and paging counters, bytes paged out per tier
//
// Concurrency:
// - VRAM accounting (join, leave, reap, try_charge, credit) is serialised by one robust,
//   process-shared mutex in the header. Each of these writes an intent record first and then
//   applies it, so when a holder is SIGKILLed the next locker (EOWNERDEAD) replays the intent
//   and the books stay exact. No call that can block (a /proc read, a wait) runs under it.
// - Launch and paging counters are relaxed atomic adds by the slot's own process: no lock.
// - Readers (snapshot, limits) take no lock. Limits are read under a seqlock. Slots are read
//   field by field (each field atomic); the slot's incarnation, read before and after, proves
//   every field came from the same occupant. Bytes by kind are each exact at some instant but
//   are not one cut across kinds.
#pragma once

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace tf::shm {

inline constexpr std::uint64_t kMagic = 0x3147455253465446ULL;  // "TFSREGE1" little-endian
inline constexpr std::uint32_t kLayoutVersion = 2;
inline constexpr std::uint32_t kHeaderSize = 1024;
inline constexpr std::uint32_t kSlotSize = 128;
inline constexpr std::uint32_t kMinSlots = 1;
inline constexpr std::uint32_t kMaxSlots = 4096;
// Longest worker name in bytes (the field holds one more for the terminating NUL).
inline constexpr std::size_t kMaxWorkerName = 127;

// Where charged VRAM came from; the shim charges each allocation path under its own kind.
enum class Kind : std::uint8_t { device, managed, array, vmm };
inline constexpr std::size_t kKinds = 4;
const char* kind_name(Kind kind) noexcept;

enum class Counter : std::uint8_t {
  launches,
  throttled_launches,
  busy_ns,
  pages_evicted,
  pages_resumed
};
inline constexpr std::size_t kCounters = 5;
const char* counter_name(Counter counter) noexcept;

// Where a process's paged-out VRAM lives: gauges its own process sets (no lock), so the worker's
// device-resident bytes are its charged total less the sum of these over its processes.
enum class Gauge : std::uint8_t { host, disk };
inline constexpr std::size_t kGauges = 2;
const char* gauge_name(Gauge gauge) noexcept;

struct Limits {
  std::uint64_t vram_bytes = 0;
  double tflops_limit = 0.0;
  double tflops_request = 0.0;
  double gpu_peak_tflops = 0.0;
  // The parts of vram_bytes that may live in pinned host memory and in a file on the node's
  // disk; VRAM itself holds at most vram_bytes - host_bytes - disk_bytes. Both 0: no paging.
  std::uint64_t host_bytes = 0;
  std::uint64_t disk_bytes = 0;
};

// Why a region could not be created or opened, or an argument was refused. `os` carries errno.
class RegionError : public std::runtime_error {
 public:
  enum class Cause { argument, os, format };
  RegionError(Cause cause, std::string path, int error_number, const std::string& message);
  Cause cause() const noexcept { return cause_; }
  const std::string& path() const noexcept { return path_; }
  int error_number() const noexcept { return errno_; }

 private:
  Cause cause_;
  std::string path_;
  int errno_;
};

enum class Status {
  ok,
  over_limit,     // the charge would take the worker past its VRAM limit
  over_credit,    // more bytes credited than the slot holds of that kind
  stale,          // the slot was left or reaped; this membership no longer owns it
  full,           // no free slot, even after reaping dead processes
  unrecoverable,  // the mutex is unusable (a holder died and recovery itself failed)
};
const char* status_name(Status status) noexcept;

// A process's claim on one slot. The incarnation identifies this occupancy, so a membership
// kept past leave/reap (or copied into a forked child) cannot touch the next occupant's books.
struct Membership {
  std::uint32_t slot = 0;
  std::uint64_t incarnation = 0;
  std::int64_t pid = 0;
};

struct SlotView {
  std::uint32_t index = 0;
  std::int64_t pid = 0;
  std::uint64_t start_token = 0;
  std::uint64_t bytes[kKinds] = {};
  std::uint64_t counters[kCounters] = {};
  std::uint64_t gauges[kGauges] = {};
};

struct Snapshot {
  std::uint32_t layout_version = 0;
  std::uint32_t slot_count = 0;
  std::uint64_t generation = 0;
  Limits limits;
  std::string worker;
  std::uint64_t total_bytes = 0;
  std::uint32_t members = 0;
  std::vector<SlotView> slots;  // live slots only, by index
};

class Region {
 public:
  // Creates the file atomically (built under a temporary name, then linked into place); fails
  // with an os error (EEXIST) if `path` exists. Throws RegionError.
  static Region create(const std::string& path, std::uint64_t slot_count,
                       const std::string& worker, const Limits& limits);
  // Maps an existing region after checking magic, version, sizes and indices. Throws
  // RegionError: os for a path that cannot be opened or mapped, format for anything else.
  static Region open(const std::string& path);

  Region(Region&& other) noexcept;
  Region& operator=(Region&& other) noexcept;
  Region(const Region&) = delete;
  Region& operator=(const Region&) = delete;
  ~Region();

  const std::string& path() const noexcept { return path_; }
  std::uint32_t slot_count() const noexcept;

  // Claims a free slot for the calling process in O(1): pops the free list and checks one
  // other slot for a dead owner on the way (amortised reaping). Reaps every slot only when
  // the list is empty. On success `out` holds the claim.
  Status join(Membership& out);
  // Returns the slot and every byte it still holds.
  Status leave(const Membership& member);
  // In a forked child whose `member` was inherited from the parent: joins a slot of its own
  // and replaces `member` (the parent keeps its slot). A no-op in the process that joined.
  Status rejoin_after_fork(Membership& member);

  // Charges `bytes` of `kind` to the member's slot if the worker's total stays within the
  // VRAM limit. Never refuses spuriously: the check and the update happen under the mutex.
  Status try_charge(const Membership& member, Kind kind, std::uint64_t bytes);
  Status credit(const Membership& member, Kind kind, std::uint64_t bytes);
  // Lock-free; an add from a stale membership is dropped (returns stale).
  Status add(const Membership& member, Counter counter, std::uint64_t amount) noexcept;
  // Lock-free store of the member's own gauge; stale as add().
  Status set_gauge(const Membership& member, Gauge gauge, std::uint64_t value) noexcept;
  // The gauge summed over occupied slots (O(slots), lock-free: each slot exact at some instant).
  std::uint64_t gauge_total(Gauge gauge) const noexcept;

  // Frees every slot whose process is gone (no /proc entry, a zombie, or a different start
  // time); returns how many. Pids are read in the caller's pid namespace.
  std::uint32_t reap();

  // Replaces the limits and bumps the generation; returns the new generation. Throws
  // RegionError (argument) for invalid limits, before anything is written.
  std::uint64_t set_limits(const Limits& limits);
  Limits limits() const noexcept;
  // The worker's charged bytes (every kind, every process), lock-free.
  std::uint64_t total_bytes() const noexcept;
  Snapshot snapshot() const;

  // Whether `member` was claimed by the calling process (false in a forked child).
  static bool owned_by_caller(const Membership& member) noexcept;

  // Opaque in-file layout (cpp/shm/layout.h).
  struct Header;
  struct Slot;

 private:
  Region(std::string path, void* base, std::size_t size) noexcept;
  Header& header() const noexcept;
  Slot& slot(std::uint32_t index) const noexcept;
  bool reap_slot(std::uint32_t index);
  void read_limits(Limits& out, std::uint64_t& generation) const noexcept;
  Status pop_free_slot(Membership& out);

  std::string path_;
  void* base_ = nullptr;
  std::size_t size_ = 0;
};

// Throws RegionError (argument) naming the field: finite values, request <= limit, peak > 0,
// tiers_fit(vram_bytes, host_bytes, disk_bytes).
void validate_limits(const Limits& limits);
// Whether host + disk bytes paged out of a limit of `vram` bytes fit in it (no overflow).
bool tiers_fit(std::uint64_t vram, std::uint64_t host, std::uint64_t disk) noexcept;

}  // namespace tf::shm
