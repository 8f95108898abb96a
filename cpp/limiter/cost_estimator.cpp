#include <atomic>
#include <cstdint>

#include "tf/limiter.h"

namespace tf::limiter {

CostEstimator::CostEstimator(std::uint32_t slots, double weight)
    : CostEstimator(slots, weight, weight) {}

CostEstimator::CostEstimator(std::uint32_t slots, double rise_weight, double fall_weight)
    : slots_(slots),
      mask_(slots > 1 && (slots & (slots - 1)) == 0 ? slots - 1 : 0),
      rise_weight_(rise_weight),
      fall_weight_(fall_weight) {}

std::int64_t CostEstimator::estimate(std::uint64_t site, std::int64_t fallback_ns) const {
  const Slot& slot = slots_[index_of(site)];
  const double average = slot.average_ns.load(std::memory_order_relaxed);
  if (average < 0.0 || slot.site.load(std::memory_order_relaxed) != site) {
    return fallback_ns;
  }
  return static_cast<std::int64_t>(average + 0.5);  // llround of a non-negative, without libm
}

void CostEstimator::observe(std::uint64_t site, std::int64_t busy_ns) {
  Slot& slot = slots_[index_of(site)];
  const double busy = static_cast<double>(busy_ns > 0 ? busy_ns : 0);
  const double average = slot.average_ns.load(std::memory_order_relaxed);
  if (average < 0.0 || slot.site.load(std::memory_order_relaxed) != site) {
    slot.site.store(site, std::memory_order_relaxed);
    slot.average_ns.store(busy, std::memory_order_relaxed);
    return;
  }
  const double weight = busy > average ? rise_weight_ : fall_weight_;
  slot.average_ns.store(average + weight * (busy - average), std::memory_order_relaxed);
}

}  // namespace tf::limiter
