#include <cstddef>
#include <cstdint>
#include <optional>

#include "input_checks.h"
#include "tf/scoring.h"

namespace tf::scoring {
namespace {

// One step of long division: floor(10 * rem / divisor), leaving 10 * rem mod divisor in rem.
// Adding rem ten times keeps every intermediate below 2 * divisor, which fits in uint64 for
// any int64 divisor, where 10 * rem itself could overflow.
std::int64_t next_decimal_digit(std::uint64_t& rem, std::uint64_t divisor) {
  std::uint64_t acc = 0;
  std::int64_t digit = 0;
  for (int step = 0; step < 10; ++step) {
    acc += rem;
    if (acc >= divisor) {
      acc -= divisor;
      ++digit;
    }
  }
  rem = acc;
  return digit;
}

// requested * 100 / capacity truncated, exact for any int64 operands, or 100 when capacity is
// 0 or requested exceeds it (kube-scheduler's rule).
std::int64_t utilization_percent(std::int64_t requested, std::int64_t capacity) {
  if (capacity == 0 || requested >= capacity) {
    return kMaxUtilization;
  }
  auto rem = static_cast<std::uint64_t>(requested);
  const auto divisor = static_cast<std::uint64_t>(capacity);
  const std::int64_t tens = next_decimal_digit(rem, divisor);
  return 10 * tens + next_decimal_digit(rem, divisor);
}

std::int64_t shape_score(const Shape& s, std::int64_t p) {
  for (std::size_t i = 0; i < s.count; ++i) {
    if (p <= s.utilization[i]) {
      if (i == 0) {
        return s.score[0];
      }
      // C++ integer division truncates toward zero, as Go's does in kube-scheduler.
      return s.score[i - 1] + (s.score[i] - s.score[i - 1]) * (p - s.utilization[i - 1]) /
                                  (s.utilization[i] - s.utilization[i - 1]);
    }
  }
  return s.score[s.count - 1];
}

}  // namespace

std::optional<InputError> validate_broken_linear(const UsageColumns& usage, const Shape& shape) {
  if (auto error = detail::check_non_negative("requested", usage.requested, usage.count)) {
    return error;
  }
  if (auto error = detail::check_non_negative("capacity", usage.capacity, usage.count)) {
    return error;
  }
  if (shape.count == 0) {
    return InputError{"utilization", "the shape needs at least one point"};
  }
  for (std::size_t i = 0; i < shape.count; ++i) {
    const std::int64_t u = shape.utilization[i];
    if (u < 0 || u > kMaxUtilization) {
      return detail::element_error("utilization", i, u, "must be from 0 to 100");
    }
    if (i > 0 && u <= shape.utilization[i - 1]) {
      return detail::element_error("utilization", i, u,
                                   "must be greater than the previous point's");
    }
    if (shape.score[i] < 0 || shape.score[i] > kMaxShapeScore) {
      return detail::element_error("score", i, shape.score[i], "must be from 0 to 100");
    }
  }
  return std::nullopt;
}

void broken_linear(const UsageColumns& usage, const Shape& shape, std::int64_t* out) noexcept {
  for (std::size_t i = 0; i < usage.count; ++i) {
    out[i] = shape_score(shape, utilization_percent(usage.requested[i], usage.capacity[i]));
  }
}

}  // namespace tf::scoring
