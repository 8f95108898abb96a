// Integer arithmetic the scoring kernels share: a 128-bit integer for products and sums that
// can pass 64 bits, and a request's TFLOPS on a GPU when it asks for a share of it.
#pragma once

#include <cstdint>

#include "tf/scoring.h"

namespace tf::scoring::detail {

// GCC and Clang have a 128-bit integer (`__extension__` keeps -Wpedantic quiet about it).
__extension__ typedef __int128 Wide;

// ceil(capacity * ppm / kPpmScale) for capacity >= 0 and 0 <= ppm <= kPpmScale. Splitting
// capacity at the scale keeps every product within capacity, so nothing can overflow.
inline std::int64_t ceil_ppm(std::int64_t capacity, std::int64_t ppm) {
  const std::int64_t whole = capacity / kPpmScale;
  const std::int64_t rest = capacity % kPpmScale;
  return whole * ppm + (rest * ppm + kPpmScale - 1) / kPpmScale;
}

}  // namespace tf::scoring::detail
