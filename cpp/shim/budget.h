// One device's VRAM budget: the worker's shared region when there is one (a limit across all of
// the worker's processes), else the limit from the environment within this process.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>

#include "tf/shm.h"

namespace tf::shim {

class Budget {
 public:
  // Joins the region at `shm_path` if given; on any failure says so once and keeps `env_limit`.
  void configure(int device, std::optional<std::uint64_t> env_limit, const std::string& shm_path,
                 const std::string& worker);
  // The parts of the environment's limit that may be paged out (used while no region is
  // joined); host + disk above the limit turns paging off with one line.
  void set_env_tiers(std::uint64_t host, std::uint64_t disk);

  // Whether allocations on this device are charged at all.
  bool enforcing() const noexcept { return shared() || env_limit_.has_value(); }
  // The virtual device size (only meaningful when enforcing).
  std::uint64_t limit() const noexcept;
  // Bytes charged by the whole worker (the region's total, or this process's own).
  std::uint64_t used() const;

  // False when `bytes` more would take the worker past the limit; nothing is charged then.
  bool try_charge(shm::Kind kind, std::uint64_t bytes);
  void credit(shm::Kind kind, std::uint64_t bytes);

  // Paging: the part of the limit that may live in `gauge`'s tier (the region's, else the
  // environment's), what the worker holds there now, and this process's share of that.
  std::uint64_t tier_limit(shm::Gauge gauge) const noexcept;
  std::uint64_t offloaded(shm::Gauge gauge) const noexcept;
  void set_offloaded(shm::Gauge gauge, std::uint64_t bytes) noexcept;

  // The joined region while it works (its limits also set the TFLOPS share), else null.
  const shm::Region* region() const noexcept { return shared() ? &*region_ : nullptr; }
  // Adds to this process's counters in the region without a lock; dropped while this process
  // holds no slot (no region, or a forked child before its first charge).
  void count(shm::Counter counter, std::uint64_t amount) noexcept;

  // pthread_atfork: no charge is half done across fork. In the child the allocations start
  // from zero and it takes a slot of its own on its next charge (the parent keeps its own).
  void before_fork() noexcept { mutex_.lock(); }
  void after_fork_parent() noexcept { mutex_.unlock(); }
  void after_fork_child() noexcept;

 private:
  bool shared() const noexcept { return region_.has_value() && !region_failed_.load(); }
  // Called with mutex_ held: region charge with one rejoin if this slot was reaped.
  shm::Status region_charge(shm::Kind kind, std::uint64_t bytes);
  void fall_back(shm::Status status);
  // Makes the current membership the one count() uses.
  void publish_membership();

  int device_ = 0;
  std::optional<std::uint64_t> env_limit_;
  std::optional<shm::Region> region_;
  shm::Membership member_;
  std::mutex mutex_;  // membership changes and the region calls that depend on it
  bool rejoin_ = false;
  std::atomic<bool> region_failed_{false};
  std::atomic<std::uint64_t> own_{0};  // this process's charged bytes
  std::uint64_t env_tiers_[shm::kGauges] = {};
  std::atomic<std::uint64_t> own_offloaded_[shm::kGauges] = {};
  // A copy of member_ for lock-free readers. Replaced copies are never freed: a reader may
  // still hold one, and there is one per join (a few per process).
  std::atomic<const shm::Membership*> counting_{nullptr};
};

}  // namespace tf::shim
