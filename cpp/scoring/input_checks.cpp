#include "input_checks.h"

#include <cmath>
#include <sstream>
#include <string>

namespace tf::scoring::detail {
namespace {

// Formats through an ostream so that doubles print compactly ("0.5", "inf", "nan") rather
// than with std::to_string's fixed six decimals.
template <typename... Parts>
InputError make_error(std::string_view argument, const Parts&... parts) {
  std::ostringstream message;
  (message << ... << parts);
  return InputError{std::string(argument), message.str()};
}

}  // namespace

InputError element_error(std::string_view argument, std::size_t index, std::int64_t value,
                         std::string_view problem) {
  return make_error(argument, "value ", value, " at index ", index, ' ', problem);
}

std::optional<InputError> check_range(std::string_view argument, std::int64_t value,
                                      std::int64_t low, std::int64_t high) {
  if (value >= low && value <= high) {
    return std::nullopt;
  }
  return make_error(argument, "must be from ", low, " to ", high, ", got ", value);
}

std::optional<InputError> check_weight(std::string_view argument, double value) {
  if (std::isfinite(value) && value >= 0.0) {
    return std::nullopt;
  }
  return make_error(argument, "must be a finite number >= 0, got ", value);
}

std::optional<InputError> check_non_negative(std::string_view argument,
                                             const std::int64_t* values, std::size_t count) {
  // OR-ing the values keeps any sign bit and vectorises; the search below runs only on error.
  std::int64_t signs = 0;
  for (std::size_t i = 0; i < count; ++i) {
    signs |= values[i];
  }
  if (signs >= 0) {
    return std::nullopt;
  }
  for (std::size_t i = 0; i < count; ++i) {
    if (values[i] < 0) {
      return element_error(argument, i, values[i], "must be >= 0");
    }
  }
  return std::nullopt;
}

}  // namespace tf::scoring::detail
