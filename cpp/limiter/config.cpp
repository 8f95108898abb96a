#include <cstdint>
#include <optional>
#include <sstream>
#include <string>

#include "tf/limiter.h"

namespace tf::limiter {
namespace {

// One hour: far above any sane window, and far below where ns stop being exact in a double.
constexpr std::int64_t kMaxDurationNs = 3'600'000'000'000;

std::string number(double value) {
  std::ostringstream out;
  out << value;
  return out.str();
}

std::optional<InputError> check_duration(const char* argument, std::int64_t value) {
  if (value >= 1 && value <= kMaxDurationNs) {
    return std::nullopt;
  }
  return InputError{argument, "must be from 1 to " + std::to_string(kMaxDurationNs) +
                                  " ns, got " + std::to_string(value)};
}

// A fraction in (0, 1]: a share or an averaging weight.
std::optional<InputError> check_weight(const char* argument, double weight) {
  // Written so that NaN fails too.
  if (weight > 0.0 && weight <= 1.0) {
    return std::nullopt;
  }
  return InputError{argument, "must be a number in (0, 1], got " + number(weight)};
}

std::optional<InputError> check_slots_and_weights(std::int64_t slots, double rise_weight,
                                                  double fall_weight, const char* rise_name,
                                                  const char* fall_name) {
  constexpr std::int64_t kMaxSlots = std::int64_t{1} << 20;
  if (slots < 1 || slots > kMaxSlots) {
    return InputError{"slots", "must be from 1 to " + std::to_string(kMaxSlots) + ", got " +
                                   std::to_string(slots)};
  }
  if (auto error = check_weight(rise_name, rise_weight)) {
    return error;
  }
  return check_weight(fall_name, fall_weight);
}

}  // namespace

std::optional<InputError> check_share(double share) { return check_weight("share", share); }

std::optional<InputError> validate(const LimiterConfig& config) {
  if (auto error = check_share(config.share)) {
    return error;
  }
  if (auto error = check_duration("window_ns", config.window_ns)) {
    return error;
  }
  if (auto error = check_duration("max_in_flight_ns", config.max_in_flight_ns)) {
    return error;
  }
  return check_duration("max_wait_ns", config.max_wait_ns);
}

std::optional<InputError> check_estimator(std::int64_t slots, double weight) {
  return check_slots_and_weights(slots, weight, weight, "weight", "weight");
}

std::optional<InputError> check_estimator(std::int64_t slots, double rise_weight,
                                          double fall_weight) {
  return check_slots_and_weights(slots, rise_weight, fall_weight, "rise_weight", "fall_weight");
}

}  // namespace tf::limiter
