#include "tf/limiter.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <optional>

namespace tf::limiter {
namespace {

// The part of the burst allowance grant() never hands out: whatever is spent on estimates
// alone, the bucket keeps this much before launches are measured one by one again.
constexpr double kGrantReserve = 0.25;

}  // namespace

Limiter::Limiter(const LimiterConfig& config)
    : share_(config.share),
      window_ns_(static_cast<double>(config.window_ns)),
      max_in_flight_ns_(static_cast<double>(config.max_in_flight_ns)),
      max_wait_ns_(config.max_wait_ns) {}

void Limiter::add(std::atomic<std::uint64_t>& counter, std::uint64_t value) {
  counter.store(counter.load(std::memory_order_relaxed) + value, std::memory_order_relaxed);
}

void Limiter::refill(std::int64_t now_ns, double share) {
  if (!started_) {
    started_ = true;
    refilled_at_ns_ = now_ns;
    return;
  }
  // A clock that steps back refills nothing rather than draining the bucket.
  if (now_ns > refilled_at_ns_) {
    const double elapsed = static_cast<double>(now_ns - refilled_at_ns_);
    tokens_ns_ = std::min(tokens_ns_ + share * elapsed, share * window_ns_);
    refilled_at_ns_ = now_ns;
  }
}

std::int64_t Limiter::admit(std::int64_t now_ns, std::int64_t cost_ns) {
  const double share = share_.load(std::memory_order_relaxed);
  refill(now_ns, share);
  const double cost = static_cast<double>(std::max<std::int64_t>(cost_ns, 0));

  // Borrowing (admitting at any non-negative balance) lets a kernel longer than the whole
  // bucket run; the debt it leaves is paid by the next waits.
  double wait = tokens_ns_ < 0.0 ? -tokens_ns_ / share : 0.0;
  if (in_flight_launches_ > 0) {
    const double stalled = static_cast<double>(std::max<std::int64_t>(now_ns - progress_at_ns_, 0));
    const double in_flight = in_flight_ns_ - share * stalled;
    const double excess = in_flight + cost - max_in_flight_ns_;
    // Go once the decayed in-flight work leaves room for this launch, or has drained.
    if (in_flight > 0.0 && excess > 0.0) {
      wait = std::max(wait, std::min(in_flight, excess) / share);
    }
  }
  if (wait > 0.0) {
    const auto capped = std::min(static_cast<std::int64_t>(std::ceil(wait)), max_wait_ns_);
    waited_ = true;
    add(wait_ns_, static_cast<std::uint64_t>(capped));
    return capped;
  }

  tokens_ns_ -= cost;
  if (in_flight_launches_ == 0) {
    progress_at_ns_ = now_ns;
  }
  in_flight_ns_ += cost;
  ++in_flight_launches_;
  add(launches_, 1);
  if (waited_) {
    waited_ = false;
    add(throttled_, 1);
  }
  return 0;
}

void Limiter::complete(std::int64_t now_ns, std::int64_t busy_ns) {
  refill(now_ns, share_.load(std::memory_order_relaxed));
  const double busy = static_cast<double>(std::max<std::int64_t>(busy_ns, 0));
  // Completions carry no launch id; each takes the mean estimate in flight, and the last one
  // takes the remainder, so the estimates charged and refunded add up exactly.
  double estimate = 0.0;
  if (in_flight_launches_ > 0) {
    estimate = in_flight_launches_ == 1 ? in_flight_ns_
                                         : in_flight_ns_ / static_cast<double>(in_flight_launches_);
    --in_flight_launches_;
    in_flight_ns_ = in_flight_launches_ == 0 ? 0.0 : in_flight_ns_ - estimate;
  }
  tokens_ns_ -= busy - estimate;
  progress_at_ns_ = now_ns;
  add(busy_ns_, static_cast<std::uint64_t>(busy));
}

std::int64_t Limiter::grant(std::int64_t now_ns, std::int64_t most_ns) {
  const double share = share_.load(std::memory_order_relaxed);
  refill(now_ns, share);
  const double spare = tokens_ns_ - kGrantReserve * share * window_ns_;
  if (spare < 1.0 || most_ns <= 0) {
    return 0;
  }
  const auto granted = static_cast<std::int64_t>(std::min(spare, static_cast<double>(most_ns)));
  tokens_ns_ -= static_cast<double>(granted);
  return granted;
}

void Limiter::refund(std::int64_t now_ns, std::int64_t unspent_ns) {
  const double share = share_.load(std::memory_order_relaxed);
  refill(now_ns, share);
  const double unspent = static_cast<double>(std::max<std::int64_t>(unspent_ns, 0));
  tokens_ns_ = std::max(tokens_ns_, std::min(tokens_ns_ + unspent, share * window_ns_));
}

std::optional<InputError> Limiter::set_share(double share) {
  auto error = check_share(share);
  if (!error) {
    share_.store(share, std::memory_order_relaxed);
  }
  return error;
}

Counters Limiter::counters() const {
  return Counters{launches_.load(std::memory_order_relaxed),
                  throttled_.load(std::memory_order_relaxed),
                  wait_ns_.load(std::memory_order_relaxed),
                  busy_ns_.load(std::memory_order_relaxed)};
}

}  // namespace tf::limiter
