// Shared wording and checks for the validate_* functions of the scoring kernels, so that every
// message has the shape "argument: what is wrong".
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

#include "tf/scoring.h"

namespace tf::scoring::detail {

// "argument: value V at index I <problem>"
InputError element_error(std::string_view argument, std::size_t index, std::int64_t value,
                         std::string_view problem);

// "argument: must be from LOW to HIGH, got V" unless low <= value <= high.
std::optional<InputError> check_range(std::string_view argument, std::int64_t value,
                                      std::int64_t low, std::int64_t high);

// "argument: must be a finite number >= 0, got V" for a negative, infinite or NaN value.
std::optional<InputError> check_weight(std::string_view argument, double value);

// The first negative entry of a column, reported by element_error.
std::optional<InputError> check_non_negative(std::string_view argument,
                                             const std::int64_t* values, std::size_t count);

}  // namespace tf::scoring::detail
