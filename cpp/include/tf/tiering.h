// VRAM tiering: one worker process's paged allocations on one GPU, kept in VRAM, pinned host
// memory or a file on local disk, with device pointers that never change.
//
// An allocation is an address range reserved once and backed by granularity-sized chunks, one
// physical handle each (the driver cannot unmap part of a mapping). Small allocations share a
// slab chunk. An evicted chunk's range stays reserved and is mapped again on page-in. Residency
// is decided per use: the allocations a launch or copy touches are made resident whole (kernels
// offset their pointers, so the unit is the allocation), evicting the least recently used
// others: VRAM -> host, and host -> disk when the host tier is full.
//
// The manager holds no CUDA types: everything that touches the GPU, the host pool's memory or
// the disk goes through a Backend, so the policy is the same on a GPU and on the mock driver.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <vector>

namespace tf::tiering {

enum class Tier : std::uint8_t { device, host, disk };

// What the manager asks of the driver, the host and the disk. Called with the manager's lock
// held, never concurrently.
class Backend {
 public:
  virtual ~Backend() = default;

  // Bytes the worker (all of its processes) may still place in `tier` now.
  virtual std::uint64_t room(Tier tier) = 0;
  // The worker's VRAM limit across every tier: false when `bytes` more would pass it.
  virtual bool charge(std::uint64_t bytes) = 0;
  virtual void credit(std::uint64_t bytes) = 0;
  // This process's bytes out of VRAM now, and chunks that just moved out and back in.
  virtual void report(std::uint64_t host_bytes, std::uint64_t disk_bytes,
                      std::uint64_t chunks_out, std::uint64_t chunks_in) = 0;

  virtual bool reserve(std::uint64_t size, std::uint64_t& base) = 0;
  virtual void unreserve(std::uint64_t base, std::uint64_t size) = 0;
  // New device memory of `size` bytes (a physical handle); false when the device has none.
  virtual bool create(std::uint64_t size, std::uint64_t& handle) = 0;
  virtual void release(std::uint64_t handle) = 0;
  // Maps `handle` at [at, at + size), accessible; unmaps it again.
  virtual bool map(std::uint64_t at, std::uint64_t size, std::uint64_t handle) = 0;
  virtual void unmap(std::uint64_t at, std::uint64_t size) = 0;
  // Returns once every launch and copy queued so far has completed (none may still use memory
  // that is about to move).
  virtual bool quiesce() = 0;
  // Copies between device memory and pinned host memory, queued on the backend's own stream;
  // finish() waits for all of them.
  virtual bool copy_out(void* host, std::uint64_t device, std::uint64_t size) = 0;
  virtual bool copy_in(std::uint64_t device, const void* host, std::uint64_t size) = 0;
  virtual bool finish() = 0;
  // `size` bytes of pinned host memory, kept until the process exits; null when there is none.
  virtual void* pin(std::uint64_t size) = 0;
  // The disk tier's file with `size` bytes preallocated; false: no disk tier.
  virtual bool open_disk(std::uint64_t size) = 0;
  virtual bool write_disk(std::uint64_t offset, const void* from, std::uint64_t size) = 0;
  virtual bool read_disk(std::uint64_t offset, void* to, std::uint64_t size) = 0;
};

// Why a request could not be met.
enum class Outcome {
  ok,
  over_limit,  // the worker's VRAM limit (all tiers together) is reached
  no_room,     // the allocations needed at once do not fit in VRAM, or nothing more can be
               // evicted (host and disk tiers full, or the device refused memory)
  failed,      // the driver or the disk failed mid-way
};
const char* outcome_text(Outcome outcome) noexcept;

struct Stats {
  std::uint64_t device_bytes = 0;  // chunk bytes mapped in VRAM
  std::uint64_t host_bytes = 0;
  std::uint64_t disk_bytes = 0;
  std::uint64_t chunks_out = 0;  // moved out of VRAM, ever
  std::uint64_t chunks_in = 0;   // moved back, ever
};

class Manager {
 public:
  // `granularity`: the device's allocation granularity, the chunk size.
  Manager(Backend& backend, std::uint64_t granularity);
  ~Manager();
  Manager(const Manager&) = delete;
  Manager& operator=(const Manager&) = delete;

  // A new allocation of `size` > 0 bytes, resident, its address in `ptr`.
  Outcome allocate(std::uint64_t size, std::uint64_t& ptr);
  // Frees the allocation starting at `ptr`; false when it is not one of this manager's.
  bool release(std::uint64_t ptr);
  // Whether anything is allocated: nothing to page otherwise.
  bool empty() const noexcept { return live_.load(std::memory_order_relaxed) == 0; }

  // A launch or copy is about to use whatever allocations contain any of `words` (pointers,
  // or any 8-byte values that might be): they are made resident whole and marked used.
  // Each of these three, when it returns ok, begins a use that lasts until done(): the caller
  // queues its work in between, and nothing is evicted until it has.
  Outcome use(const std::uint64_t* words, std::size_t count);
  // Every allocation made resident: for uses whose pointers cannot be known.
  Outcome use_all();
  // The allocation containing `address` stays resident from now on (exported memory).
  Outcome pin(std::uint64_t address);
  void done() noexcept;


 private:
  struct Chunk {
    Tier tier = Tier::device;
    std::uint64_t handle = 0;  // device: the physical handle
    std::uint32_t slot = 0;    // host or disk: the slot index
  };
  struct Segment;
  struct Allocation {
    std::uint64_t size = 0;
    Segment* segment = nullptr;
    std::uint32_t first = 0;  // chunk indices covered, inclusive
    std::uint32_t last = 0;
    std::uint64_t last_use = 0;
  };
  using Allocations = std::map<std::uint64_t, Allocation>;
  using Touched = std::vector<Allocations::iterator>;

  bool resident(const Allocation& allocation) const;
  Outcome allocate_in_slab(std::uint64_t size, std::uint64_t& ptr);
  Outcome new_segment(std::uint64_t size, bool slab, Segment*& out);
  void drop_segment(Segment& segment);
  Outcome begun(Outcome outcome) noexcept;  // counts a use in flight when `outcome` is ok
  Outcome make_resident(const Touched& touched);  // page_in(), then release_spares()
  Outcome page_in(const Touched& touched);
  Outcome make_device_room(std::uint64_t bytes, const Touched& keep);
  Allocations::iterator least_recent(Tier tier, const Touched& keep);
  Outcome evict(Allocation& victim);
  // A host slot with room for `pending` more bytes taken but not reported yet.
  bool take_host_slot(std::uint32_t& slot, std::uint64_t pending);
  bool take_disk_slot(std::uint32_t& slot);
  bool demote_host_chunks();
  void* host_slot(std::uint32_t slot) const;
  void give_back(Chunk& chunk);
  // Maps a chunk at `at`, reusing a handle evicted earlier in the same call when there is one
  // (no release and create between a page-out and a page-in); and its reverse.
  bool back(std::uint64_t at, std::uint64_t& handle);
  void unback(std::uint64_t at, std::uint64_t handle);
  // Releases the handles no chunk took: called as each public call returns.
  void release_spares();
  void report(std::uint64_t chunks_out, std::uint64_t chunks_in);

  Backend& backend_;
  const std::uint64_t granularity_;
  std::mutex mutex_;
  Allocations allocations_;
  std::map<std::uint64_t, std::unique_ptr<Segment>> segments_;
  std::atomic<std::size_t> live_{0};
  std::atomic<int> in_flight_{0};  // uses begun and not done
  std::uint64_t clock_ = 0;      // bumped on every use, for least-recently-used order
  std::uint64_t chunks_away_ = 0;  // chunks not in VRAM now: none means every use is resident
  Stats stats_;
  // While a page-in makes room: the bytes it will take out of the host and disk tiers.
  struct Slack {
    std::uint64_t host = 0;
    std::uint64_t disk = 0;
  };
  Slack slack_;

  // The host tier: pinned blocks carved into chunk slots.
  std::vector<std::uint64_t> spares_;  // unmapped handles, within one call
  std::vector<char*> host_blocks_;
  std::vector<std::uint32_t> host_free_;
  std::uint32_t host_slots_ = 0;
  // The disk tier: one preallocated file of chunk slots, opened on first need.
  bool disk_tried_ = false;
  std::uint64_t disk_slots_ = 0;
  std::uint64_t disk_used_ = 0;  // slots handed out at least once
  std::vector<std::uint32_t> disk_free_;
  void* staging_ = nullptr;  // one pinned chunk between the disk and the device
};

}  // namespace tf::tiering
