// The TFLOPS limiter: paces one workload's kernel launches so that its share of the GPU's busy
// time tracks `share` (tflops-limit / peak TFLOPS) over a short window.
//
// A token bucket over GPU busy time. Tokens (ns of GPU time) refill at `share` ns per ns of
// wall time, up to `share * window_ns`. The bucket starts empty: the burst allowance makes up
// for time a workload left the GPU idle, and one that has just started has left none (a full
// bucket let every new process run far above its share for its first window). A launch is
// charged its estimated cost when admitted, and the charge is corrected by the measured busy
// time when the launch completes, so a wrong estimate shifts single waits but not the
// long-run share. The controller only ever compares time with time: no SM count, no device
// size, no feedback from other workloads' usage, so its gain is the same on every GPU and two
// limiters on one GPU cannot chase each other.
//
// Work in flight (estimated cost admitted but not yet completed) is bounded, so kernels queued
// ahead on a stream cannot escape the rate. The bound decays at `share` ns per ns while no
// launch completes, so lost completions delay launches but never stall them for good.
//
// Time is passed in by the caller on every call (monotonic ns): the shim reads the monotonic
// clock, tests and the simulator drive a virtual one. One thread calls admit/complete (the
// hot path, no locks, syscalls or allocation); set_share and counters may be called from any
// thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace tf::limiter {

// A bad setting: its name as the caller spelled it, and what is wrong with it.
struct InputError {
  std::string argument;
  std::string message;
};

struct LimiterConfig {
  double share = 1.0;                       // of busy time, 0 < share <= 1
  std::int64_t window_ns = 100'000'000;     // burst allowance: share * window of busy time
  std::int64_t max_in_flight_ns = 20'000'000;  // estimated cost admitted but not completed
  std::int64_t max_wait_ns = 50'000'000;    // the longest single wait admit() asks for
};

// "share: must be a number in (0, 1], got V" unless 0 < share <= 1.
std::optional<InputError> check_share(double share);
// The first bad field of `config` (durations must be from 1 ns to one hour).
std::optional<InputError> validate(const LimiterConfig& config);

struct Counters {
  std::uint64_t launches = 0;   // admit() calls that returned 0
  std::uint64_t throttled = 0;  // launches that were told to wait at least once
  std::uint64_t wait_ns = 0;    // sum of the waits admit() returned
  std::uint64_t busy_ns = 0;    // sum of the busy times complete() reported
};

class Limiter {
 public:
  // `config` must pass validate().
  explicit Limiter(const LimiterConfig& config);

  // The wait in ns before this launch may go; 0 means go now and charges `cost_ns`. After a
  // wait the caller sleeps (holding no lock) and asks again. Never above max_wait_ns.
  std::int64_t admit(std::int64_t now_ns, std::int64_t cost_ns);

  // One admitted launch finished after `busy_ns` of GPU time. Launches complete in the order
  // they were admitted (one stream); a completion with nothing in flight is charged in full.
  void complete(std::int64_t now_ns, std::int64_t busy_ns);

  // Busy time that launches may spend without calling admit() or complete(), taken from the
  // bucket now: the tokens above a reserve of a quarter of the burst allowance, at most
  // `most_ns`, and 0 while the bucket holds less. A launch paid this way is charged its
  // estimate once and never corrected by a measurement, which is harmless while the bucket
  // stays well above empty; near empty, where the pace is set, every launch goes through
  // admit() and complete() again.
  std::int64_t grant(std::int64_t now_ns, std::int64_t most_ns);
  // Gives the unspent part of a grant back (the bucket still holds at most its capacity).
  void refund(std::int64_t now_ns, std::int64_t unspent_ns);

  // Moves the rate (the agent bursts between request and limit). Refuses a value that fails
  // check_share and keeps the previous one.
  std::optional<InputError> set_share(double share);
  double share() const { return share_.load(std::memory_order_relaxed); }

  Counters counters() const;
  // Estimated cost admitted and not yet completed, before decay.
  double in_flight_ns() const { return in_flight_ns_; }
  // Busy-time budget left (negative: owed).
  double tokens_ns() const { return tokens_ns_; }

 private:
  void refill(std::int64_t now_ns, double share);
  // Single writer: a relaxed load and store, no read-modify-write on the hot path.
  static void add(std::atomic<std::uint64_t>& counter, std::uint64_t value);

  std::atomic<double> share_;
  const double window_ns_;
  const double max_in_flight_ns_;
  const std::int64_t max_wait_ns_;

  double tokens_ns_ = 0.0;
  std::int64_t refilled_at_ns_ = 0;
  bool started_ = false;  // the first call sets the clock origin
  double in_flight_ns_ = 0.0;
  std::uint64_t in_flight_launches_ = 0;
  std::int64_t progress_at_ns_ = 0;  // last completion, or when work went in flight
  bool waited_ = false;              // the launch being admitted was told to wait

  std::atomic<std::uint64_t> launches_{0};
  std::atomic<std::uint64_t> throttled_{0};
  std::atomic<std::uint64_t> wait_ns_{0};
  std::atomic<std::uint64_t> busy_ns_{0};
};

// Per launch-site estimate of a kernel's busy time: an exponential average of measurements in
// a fixed, direct-mapped table (allocated once; a colliding site takes the slot over).
// One thread at a time observes; estimate() may run on any thread meanwhile, without a lock
// (a read racing a slot's takeover by another site may return the previous site's average).
class CostEstimator {
 public:
  // `slots` >= 1; 0 < `weight` <= 1 is the weight of each new measurement.
  CostEstimator(std::uint32_t slots, double weight);
  // Measurements above the average weigh `rise_weight`, those below `fall_weight` (each in
  // (0, 1]). With a fast fall and a slow rise the average follows a site's lowest recent
  // measurements: its own device time when most measurements also hold time spent queued
  // behind other work.
  CostEstimator(std::uint32_t slots, double rise_weight, double fall_weight);

  // The average for `site`, or `fallback_ns` if the site has no measurement yet.
  std::int64_t estimate(std::uint64_t site, std::int64_t fallback_ns) const;
  void observe(std::uint64_t site, std::int64_t busy_ns);

 private:
  // Relaxed atomics: plain loads and stores on the hot path, and no data race with a reader.
  struct Slot {
    std::atomic<std::uint64_t> site{0};
    std::atomic<double> average_ns{-1.0};  // negative: no measurement yet
  };

  // Where `site` lives; a power-of-two table masks instead of dividing (a hot-path saving).
  std::size_t index_of(std::uint64_t site) const {
    return mask_ != 0 ? site & mask_ : site % slots_.size();
  }

  std::vector<Slot> slots_;
  std::uint64_t mask_;  // slots - 1 for a power of two above 1, else 0
  double rise_weight_;
  double fall_weight_;
};

// The first bad argument of CostEstimator's constructors (slots from 1 to 2^20, weights in
// (0, 1]), named as the caller spells it.
std::optional<InputError> check_estimator(std::int64_t slots, double weight);
std::optional<InputError> check_estimator(std::int64_t slots, double rise_weight,
                                          double fall_weight);

}  // namespace tf::limiter
