#include <cmath>
#include <cstdint>

#include "tf/limiter.h"

namespace tf::limiter {

CostEstimator::CostEstimator(std::uint32_t slots, double weight)
    : CostEstimator(slots, weight, weight) {}

CostEstimator::CostEstimator(std::uint32_t slots, double rise_weight, double fall_weight)
    : slots_(slots), rise_weight_(rise_weight), fall_weight_(fall_weight) {}

std::int64_t CostEstimator::estimate(std::uint64_t site, std::int64_t fallback_ns) const {
  const Slot& slot = slots_[site % slots_.size()];
  if (!slot.used || slot.site != site) {
    return fallback_ns;
  }
  return std::llround(slot.average_ns);
}

void CostEstimator::observe(std::uint64_t site, std::int64_t busy_ns) {
  Slot& slot = slots_[site % slots_.size()];
  const double busy = static_cast<double>(busy_ns > 0 ? busy_ns : 0);
  if (!slot.used || slot.site != site) {
    slot = Slot{site, busy, true};
    return;
  }
  const double weight = busy > slot.average_ns ? rise_weight_ : fall_weight_;
  slot.average_ns += weight * (busy - slot.average_ns);
}

}  // namespace tf::limiter
