#include <cmath>
#include <cstdint>

#include "tf/limiter.h"

namespace tf::limiter {

CostEstimator::CostEstimator(std::uint32_t slots, double weight)
    : slots_(slots), weight_(weight) {}

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
  slot.average_ns += weight_ * (busy - slot.average_ns);
}

}  // namespace tf::limiter
