#include "pacer.h"

#include <time.h>

#include <algorithm>
#include <cmath>

#include "hooks.h"
#include "real.h"

namespace tf::shim {
namespace {

// A site's cost before its first measurement; the measurement corrects the charge.
constexpr std::int64_t kUnmeasuredCostNs = 50'000;
constexpr std::uint32_t kEstimatorSlots = 1024;
// A measurement is the kernel's own device time plus any time it waited behind other streams'
// or processes' kernels on a shared device, which those are charged for already. A site's
// estimate drops to a lower measurement at once and climbs slowly, so it settles on the
// kernel's own time whenever some launches find the device free, and still follows a kernel
// that really got slower.
constexpr double kEstimatorRise = 1.0 / 32;
constexpr double kEstimatorFall = 1.0;
// Launches per thread between two reads of the region's limits.
constexpr std::uint32_t kRefreshEvery = 64;
// The longest one launch is held back in all: pacing slows a workload, never stops it.
constexpr std::int64_t kMaxHoldNs = 200'000'000;
// Which launches take the measured path although the grant would cover them, so the estimates
// the fast path charges keep following the kernels: every kClockEvery-th launch of a thread
// reads the clock's tick and is measured if none was since the tick began, and every
// kSampleEvery-th is measured anyway (both powers of two).
constexpr std::uint32_t kClockEvery = 16;
constexpr std::uint32_t kSampleEvery = 1024;
// The most busy time one grant hands the fast path: what launches may add before the limiter
// sees the bucket again (besides the samples), small next to the reserve it keeps.
constexpr std::int64_t kGrantNs = 2'000'000;

// What a thread takes from a grant at once (at least the launch's cost), so that its fast path
// touches no shared cache line between takes. Taken counts as spent for the limiter (a thread
// that stops launching leaves at most this much unused), but the busy time counter counts
// only what launches cost: it reports work, never grants.
constexpr std::int64_t kChunkNs = 200'000;

// Launches this thread sent to a pacer's fast path or measured path (the sampling clock).
TF_SHIM_TLS thread_local std::uint32_t t_launches = 0;
// The pacer whose fast path this thread last took, the unspent part of the last chunk it took
// from that pacer's grant, and its tally there: launches and their busy time not yet counted.
TF_SHIM_TLS thread_local const Pacer* t_chunk_pacer = nullptr;
TF_SHIM_TLS thread_local std::int64_t t_chunk_ns = 0;
TF_SHIM_TLS thread_local std::uint64_t t_tally_launches = 0;
TF_SHIM_TLS thread_local std::uint64_t t_tally_busy_ns = 0;
// Set once the thread's tally was reported at its exit: launches after that (from other
// thread_local destructors, atexit handlers) take the measured path, which counts directly.
TF_SHIM_TLS thread_local bool t_exiting = false;

// Counts the tally of a thread that ends. arm() does nothing, but naming a thread_local with a
// destructor constructs it in the calling thread and registers that destructor for the thread's
// exit; so the thread's first adopt() arms it, and a thread that never takes the fast path
// registers nothing.
struct ExitReport {
  void arm() noexcept {}
  ~ExitReport() {
    if (t_chunk_pacer != nullptr) {
      t_chunk_pacer->report();
    }
    t_chunk_pacer = nullptr;
    t_exiting = true;
  }
};
TF_SHIM_TLS thread_local ExitReport t_exit_report;

std::int64_t now_ns() noexcept {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);  // the vDSO: no system call
  return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

// The kernel's tick (1 to 10 ms apart) as a cheap clock: a few ns to read where the exact
// clock costs tens on some machines.
std::int64_t tick_ns() noexcept {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

void sleep_ns(std::int64_t ns) noexcept {
  const timespec ts{static_cast<time_t>(ns / 1'000'000'000),
                    static_cast<long>(ns % 1'000'000'000)};
  nanosleep(&ts, nullptr);  // an interrupted sleep just asks the limiter again sooner
}

// The region's share of busy time when it names a TFLOPS limit and peak; nullopt otherwise.
std::optional<double> region_share(const shm::Limits& limits) {
  if (limits.tflops_limit <= 0.0 || limits.gpu_peak_tflops <= 0.0) {
    return std::nullopt;
  }
  return limits.tflops_limit / limits.gpu_peak_tflops;
}

}  // namespace

void Pacer::configure(std::optional<double> env_share, Budget& budget) {
  env_share_ = env_share;
  if (!env_share && budget.region() == nullptr) {
    return;  // nothing to pace or count: launches pass straight through
  }
  budget_ = &budget;
  limiter_.emplace(limiter::LimiterConfig{});
  estimator_.emplace(kEstimatorSlots, kEstimatorRise, kEstimatorFall);
  spare_.reserve(2 * kStreams * kPending);
  apply(env_share);
  refresh();
}

std::optional<double> Pacer::wanted_share() const noexcept {
  const shm::Region* region = budget_->region();
  const std::optional<double> share = region ? region_share(region->limits()) : std::nullopt;
  return share ? share : env_share_;
}

void Pacer::refresh() noexcept {
  TF_SHIM_TLS thread_local std::uint32_t t_calls = 0;
  if (budget_->region() == nullptr || t_calls++ % kRefreshEvery != 0) {
    return;
  }
  apply(wanted_share());
}

void Pacer::apply(std::optional<double> share) {
  // A limit at or above the peak paces nothing, like an absent one.
  const bool pace = share && *share < 1.0;
  const double value = pace ? *share : 1.0;
  if (pace == paced_.load(std::memory_order_relaxed) &&
      value == share_.load(std::memory_order_relaxed)) {
    return;
  }
  const std::lock_guard<std::mutex> lock(mutex_);
  if (limiter_->set_share(value)) {
    return;  // the agent's validation keeps this from happening; keep the previous rate
  }
  share_.store(value, std::memory_order_relaxed);
  paced_.store(pace, std::memory_order_relaxed);
}

std::optional<double> Pacer::paced_share() const noexcept {
  if (!watched()) {
    return std::nullopt;
  }
  const std::optional<double> share = wanted_share();
  return share && *share < 1.0 ? share : std::nullopt;
}

std::int64_t Pacer::prepaid(std::uint64_t site) noexcept {
  if ((++t_launches & (kClockEvery - 1)) == 0 &&
      ((t_launches & (kSampleEvery - 1)) == 0 ||
       tick_ns() != sampled_tick_.load(std::memory_order_relaxed))) {
    return kMeasure;  // a sample
  }
  const std::int64_t cost = estimator_->estimate(site, kMeasure);
  if (cost == kMeasure) {
    return kMeasure;  // never measured: the first launches of a site are
  }
  if (t_chunk_pacer != this) {
    if (t_exiting) {
      return kMeasure;  // no exit report is left to count a tally
    }
    adopt();
  }
  const std::int64_t held = t_chunk_ns;
  if (held < cost) {
    std::int64_t left = grant_ns_.load(std::memory_order_relaxed);
    std::int64_t take = 0;
    do {
      if (left + held < cost) {
        return kMeasure;
      }
      take = std::min(left, std::max(kChunkNs, cost - held));
    } while (!grant_ns_.compare_exchange_weak(left, left - take, std::memory_order_relaxed));
    t_chunk_ns = held + take;
    report();  // so the tally never holds more than a chunk of busy time
  }
  t_chunk_ns -= cost;
  ++t_tally_launches;
  // The counter counts the launch's work; the limiter was charged for the whole chunk.
  t_tally_busy_ns += static_cast<std::uint64_t>(cost);
  return cost;
}

void Pacer::adopt() noexcept {
  if (t_chunk_pacer != nullptr) {
    t_chunk_pacer->report();
  }
  t_exit_report.arm();
  t_chunk_pacer = this;
  t_chunk_ns = 0;
}

void Pacer::give_back(std::int64_t cost) noexcept {
  t_chunk_ns += cost;
  --t_tally_launches;
  t_tally_busy_ns -= static_cast<std::uint64_t>(cost);
}

void Pacer::report() const noexcept {
  if (t_chunk_pacer != this || t_tally_launches == 0) {
    return;
  }
  budget_->count(shm::Counter::launches, t_tally_launches);
  budget_->count(shm::Counter::busy_ns, t_tally_busy_ns);
  t_tally_launches = 0;
  t_tally_busy_ns = 0;
}

void Pacer::reclaim_grant(std::int64_t now) {
  limiter_->refund(now, grant_ns_.exchange(0, std::memory_order_relaxed));
}

void Pacer::renew_grant(std::int64_t now) {
  // grant_ns_ is 0 since reclaim_grant() and only ever taken from meanwhile.
  grant_ns_.store(limiter_->grant(now, kGrantNs), std::memory_order_relaxed);
}

bool Pacer::wait_for_admission(std::uint64_t site) {
  bool throttled = false;
  std::int64_t held = 0;
  for (;;) {
    std::int64_t wait = 0;
    {
      const std::lock_guard<std::mutex> lock(mutex_);
      const std::int64_t now = now_ns();
      harvest(now);
      reclaim_grant(now);
      wait = limiter_->admit(now, estimator_->estimate(site, kUnmeasuredCostNs));
      if (wait <= 0) {
        renew_grant(now);
        sampled_tick_.store(tick_ns(), std::memory_order_relaxed);
      }
    }
    if (wait <= 0 || held >= kMaxHoldNs) {
      return throttled;
    }
    throttled = true;
    sleep_ns(wait);
    held += wait;
  }
}

void Pacer::collect() {
  report();
  const std::lock_guard<std::mutex> lock(mutex_);
  harvest(now_ns());
}

bool Pacer::take_event(CUevent& event) {
  if (!spare_.empty()) {
    event = spare_.back();
    spare_.pop_back();
    return true;
  }
  const cuEventCreate_fn create = plain().cuEventCreate;
  return create != nullptr && create(&event, 0) == CUDA_SUCCESS;
}

Pacer::Timing Pacer::start_timing(std::uint64_t site, CUstream stream, bool per_thread) {
  const cuEventRecord_fn record = per_thread ? plain().cuEventRecord_ptsz : plain().cuEventRecord;
  if (record == nullptr || plain().cuEventQuery == nullptr ||
      plain().cuEventElapsedTime == nullptr) {
    return Timing{};
  }
  Timing timing;
  Pending* entry = nullptr;
  {
    const std::lock_guard<std::mutex> lock(mutex_);
    const auto key = reinterpret_cast<std::uintptr_t>(stream) >> 4;
    Ring& ring = rings_[(key ^ (per_thread ? 1U : 0U)) % kStreams];
    const bool ours = ring.size == 0 || (ring.stream == stream && ring.per_thread == per_thread);
    if (!ours || ring.size == kPending) {
      return Timing{};  // too much measured at once: this launch is charged its estimate
    }
    CUevent start = nullptr;
    CUevent end = nullptr;
    if (!take_event(start)) {
      return Timing{};
    }
    if (!take_event(end)) {
      spare_.push_back(start);
      return Timing{};
    }
    ring.stream = stream;
    ring.per_thread = per_thread;
    timing = Timing{&ring, (ring.head + ring.size) % kPending};
    ++ring.size;
    entry = &ring.items[timing.index];
    *entry = Pending{start, end, site, now_ns(), false, false};
  }
  // The entry is reserved (not ready), so no other thread touches it until finish_timing.
  if (record(entry->start, stream) != CUDA_SUCCESS) {
    entry->failed = true;
  }
  return timing;
}

void Pacer::finish_timing(const Timing& timing, std::uint64_t site, CUresult result) {
  if (timing.ring == nullptr) {
    const std::lock_guard<std::mutex> lock(mutex_);
    if (result != CUDA_SUCCESS) {
      limiter_->complete(now_ns(), 0);
      return;
    }
    // The limiter is charged a guess for a site never measured; the counter only what is known.
    limiter_->complete(now_ns(), estimator_->estimate(site, kUnmeasuredCostNs));
    budget_->count(shm::Counter::busy_ns, static_cast<std::uint64_t>(estimator_->estimate(site, 0)));
    return;
  }
  Pending& entry = timing.ring->items[timing.index];
  const cuEventRecord_fn record =
      timing.ring->per_thread ? plain().cuEventRecord_ptsz : plain().cuEventRecord;
  const bool measured = result == CUDA_SUCCESS && !entry.failed &&
                        record(entry.end, timing.ring->stream) == CUDA_SUCCESS;
  const std::lock_guard<std::mutex> lock(mutex_);
  entry.failed = !measured;
  entry.ready = true;
}

void Pacer::harvest(std::int64_t now) {
  for (Ring& ring : rings_) {
    while (ring.size > 0) {
      Pending& entry = ring.items[ring.head];
      if (!entry.ready) {
        break;
      }
      std::int64_t busy = 0;
      if (!entry.failed) {
        if (plain().cuEventQuery(entry.end) == CUDA_ERROR_NOT_READY) {
          break;
        }
        busy = charge(entry, now);
        budget_->count(shm::Counter::busy_ns, static_cast<std::uint64_t>(busy));
      }
      limiter_->complete(now, busy);
      spare_.push_back(entry.start);
      spare_.push_back(entry.end);
      ring.head = (ring.head + 1) % kPending;
      --ring.size;
    }
  }
}

std::int64_t Pacer::charge(const Pending& entry, std::int64_t now) {
  float ms = 0.0F;
  if (plain().cuEventElapsedTime(&ms, entry.start, entry.end) != CUDA_SUCCESS) {
    return estimator_->estimate(entry.site, kUnmeasuredCostNs);
  }
  // The start event waits for this stream's earlier work, so the time between the events is
  // the launch's own plus what it queued behind on the device; it cannot exceed the time the
  // launch has existed.
  const std::int64_t measured = std::llround(static_cast<double>(ms) * 1e6);
  const std::int64_t elapsed = std::clamp<std::int64_t>(measured, 0, now - entry.issued_ns);
  estimator_->observe(entry.site, elapsed);
  // Charging the site's settled estimate leaves out the queueing, which the kernels queued
  // ahead are charged for by their own limiters.
  return std::min(elapsed, estimator_->estimate(entry.site, elapsed));
}

void Pacer::after_fork_child() noexcept {
  // The parent's events belong to its context; the child must not query or reuse them.
  for (Ring& ring : rings_) {
    ring.head = 0;
    ring.size = 0;
  }
  spare_.clear();
  // The parent counts the tally it forked with, and its limiter was charged for the chunk: the
  // child starts with neither.
  if (t_chunk_pacer == this) {
    t_chunk_ns = 0;
    t_tally_launches = 0;
    t_tally_busy_ns = 0;
  }
  mutex_.unlock();
}

}  // namespace tf::shim
