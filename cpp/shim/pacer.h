// One device's launch pacing: the TFLOPS limiter is asked before a launch (with the launch
// site's estimated cost) and told afterwards how much GPU time the launch really took, measured
// with a pair of CUDA events around it and collected once the events complete, never waited for.
// The time between the events also holds any wait behind other work on the device; the charge
// leaves it out (see charge()).
//
// That costs a lock, clock reads and four driver calls per launch, which only matters where the
// limit sets the pace: with the bucket near empty. While it holds more than its reserve, the
// limiter grants a slice of it that launches spend lock-free at their site's estimate (the fast
// path: a subtraction from the calling thread's chunk of the grant). About one launch per
// clock tick (1 to 10 ms) and one in 1024 per thread, the first launches of a site and any
// launch the grant cannot cover still take the measured path, which keeps the estimates
// current and renews the grant.
//
// The fast path writes no shared counter either: a thread tallies its own fast-path launches
// and their busy time, and hands the tally to the region's counters with its next measured or
// unpaced launch, its next take from the grant, a synchronisation call it makes (which reports
// the waiting thread's launches, not other threads'), or its exit. The counters therefore trail
// a launching thread by at most 1,023 launches and one chunk (200 us) of busy time. A process
// that ends without running thread exits (_exit, a fatal signal) loses the tallies not yet
// reported, each within that bound.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <mutex>
#include <optional>
#include <vector>

#include "budget.h"
#include "cuda_abi.h"
#include "tf/limiter.h"

namespace tf::shim {

class Pacer {
 public:
  // `env_share`: the share of busy time from the environment (nullopt: not paced). A region
  // joined by `budget` whose limits name a TFLOPS limit and peak overrides it, now and
  // whenever the agent changes them.
  void configure(std::optional<double> env_share, Budget& budget);

  // Whether launches on this device need more than the real call (counting or pacing).
  bool watched() const noexcept { return budget_ != nullptr; }
  // The share of busy time launches are paced to, as the region (or environment) sets it at
  // this moment; nullopt: not paced.
  std::optional<double> paced_share() const noexcept;

  // Runs `launch()`, the real call on `stream`, once the limiter admits it. `site` names the
  // launched code (CUfunction or graph) for its cost estimate; `per_thread` says whether
  // `stream` is to be read as a per-thread default stream (the _ptsz entry points).
  template <typename Launch>
  CUresult run(std::uint64_t site, CUstream stream, bool per_thread, Launch launch);

  // Collects the measurements of launches that have completed, after the workload waited for
  // its work, and reports the calling (waiting) thread's tally: the counters then hold that
  // thread's launches without waiting for its next one; other threads' tallies wait for theirs.
  void collect();

  // Adds the calling thread's tally of fast-path launches to the counters, if it is this
  // pacer's.
  void report() const noexcept;

  // pthread_atfork: the child keeps the share but none of the parent's events.
  void before_fork() noexcept { mutex_.lock(); }
  void after_fork_parent() noexcept { mutex_.unlock(); }
  void after_fork_child() noexcept;

 private:
  static constexpr std::size_t kStreams = 8;     // streams measured at once
  static constexpr std::uint32_t kPending = 32;  // launches measured per stream at once

  struct Pending {
    CUevent start = nullptr;
    CUevent end = nullptr;
    std::uint64_t site = 0;
    std::int64_t issued_ns = 0;  // when the start event was recorded
    bool ready = false;   // the launch returned and its end event is recorded
    bool failed = false;  // the launch failed: no GPU time to collect
  };
  struct Ring {
    CUstream stream = nullptr;
    bool per_thread = false;
    std::uint32_t head = 0;
    std::uint32_t size = 0;
    std::array<Pending, kPending> items;
  };
  // Where a launch's measurement goes; ring null: the launch is charged its estimate.
  struct Timing {
    Ring* ring = nullptr;
    std::uint32_t index = 0;
  };

  // The region's share when it names one, else the environment's (>= 1 or none: not paced).
  std::optional<double> wanted_share() const noexcept;
  // Now and then rereads the region's limits (a few atomic loads) and applies a change.
  void refresh() noexcept;
  void apply(std::optional<double> share);
  // The fast path: takes the estimated cost of a launch of `site` from the grant, tallies the
  // launch, and returns the cost; or kMeasure when the launch must take the measured path.
  // (Not an optional: returning one through memory costs a store-forwarding stall on this
  // path.)
  static constexpr std::int64_t kMeasure = -1;
  std::int64_t prepaid(std::uint64_t site) noexcept;
  // Makes this pacer the calling thread's: reports the tally it kept for another one and
  // starts an empty chunk.
  void adopt() noexcept;
  // Undoes prepaid() for a launch that failed: its cost back to the chunk, out of the tally.
  void give_back(std::int64_t cost) noexcept;
  // Sleeps (holding no lock) until the limiter admits a launch of `site`; true if it waited.
  bool wait_for_admission(std::uint64_t site);
  // With mutex_ held: gives what the fast path left of the grant back to the limiter;
  // renew_grant() then takes a new one.
  void reclaim_grant(std::int64_t now_ns);
  void renew_grant(std::int64_t now_ns);
  // Reserves a ring entry and records its start event on `stream`, if events are available.
  Timing start_timing(std::uint64_t site, CUstream stream, bool per_thread);
  // Records the end event (or gives the admitted cost back when the launch failed).
  void finish_timing(const Timing& timing, std::uint64_t site, CUresult result);
  // With mutex_ held: feeds every completed launch to the limiter, in order per stream.
  void harvest(std::int64_t now_ns);
  // With mutex_ held: the busy time charged for a completed, measured launch.
  std::int64_t charge(const Pending& entry, std::int64_t now_ns);
  bool take_event(CUevent& event);

  Budget* budget_ = nullptr;
  std::optional<double> env_share_;
  std::atomic<bool> paced_{false};
  std::atomic<double> share_{1.0};
  std::atomic<std::int64_t> grant_ns_{0};  // busy time the fast path may still spend
  std::atomic<std::int64_t> sampled_tick_{-1};  // the clock tick of the last measured launch

  // Everything below (the fast path reads the estimator without it); never held across a
  // sleep or a launch.
  std::mutex mutex_;
  std::optional<limiter::Limiter> limiter_;
  std::optional<limiter::CostEstimator> estimator_;
  std::array<Ring, kStreams> rings_;
  std::vector<CUevent> spare_;  // created and not pending
};

template <typename Launch>
CUresult Pacer::run(std::uint64_t site, CUstream stream, bool per_thread, Launch launch) {
  refresh();
  if (!paced_.load(std::memory_order_relaxed)) {
    report();  // the limit was lifted: the fast path, and with it the tally, stop here
    const CUresult result = launch();
    if (result == CUDA_SUCCESS) {
      budget_->count(shm::Counter::launches, 1);
    }
    return result;
  }
  if (const std::int64_t cost = prepaid(site); cost != kMeasure) {
    const CUresult result = launch();
    if (result != CUDA_SUCCESS) {
      give_back(cost);  // nothing ran
    }
    return result;
  }
  report();
  const bool throttled = wait_for_admission(site);
  const Timing timing = start_timing(site, stream, per_thread);
  const CUresult result = launch();
  finish_timing(timing, site, result);
  if (result == CUDA_SUCCESS) {
    budget_->count(shm::Counter::launches, 1);
    if (throttled) {
      budget_->count(shm::Counter::throttled_launches, 1);
    }
  }
  return result;
}

}  // namespace tf::shim
