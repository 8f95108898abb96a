#include "quantity.h"


namespace tf::shim {
namespace {

__extension__ typedef unsigned __int128 u128;  // exact products of a 64-bit mantissa and a unit

struct Suffix {
  std::string_view text;
  unsigned base;
  unsigned power;
};

constexpr Suffix kSuffixes[] = {
    {"Ki", 1024, 1}, {"Mi", 1024, 2}, {"Gi", 1024, 3}, {"Ti", 1024, 4}, {"Pi", 1024, 5},
    {"Ei", 1024, 6}, {"k", 1000, 1},  {"M", 1000, 2},  {"G", 1000, 3},  {"T", 1000, 4},
    {"P", 1000, 5},  {"E", 1000, 6},  {"", 1000, 0},
};

// base^power as a 128-bit integer (at most 1024^6 = 2^60).
u128 power_of(unsigned base, unsigned power) {
  u128 value = 1;
  for (unsigned i = 0; i < power; ++i) {
    value *= base;
  }
  return value;
}

// The multiplier for `suffix` (a unit or a decimal exponent "e9"), or nullopt.
std::optional<u128> multiplier(std::string_view suffix) {
  if (suffix.size() >= 2 && (suffix[0] == 'e' || suffix[0] == 'E')) {
    unsigned exponent = 0;
    for (const char c : suffix.substr(1)) {
      if (c < '0' || c > '9' || exponent > 18) {
        return std::nullopt;
      }
      exponent = exponent * 10 + static_cast<unsigned>(c - '0');
    }
    return exponent <= 18 ? std::optional<u128>(power_of(10, exponent)) : std::nullopt;
  }
  for (const Suffix& known : kSuffixes) {
    if (suffix == known.text) {
      return power_of(known.base, known.power);
    }
  }
  return std::nullopt;
}

}  // namespace

std::optional<std::uint64_t> parse_bytes(std::string_view text) noexcept {
  // Mantissa digits with at most one '.', kept as an integer and a count of fraction digits.
  u128 mantissa = 0;
  unsigned fraction_digits = 0;
  bool seen_point = false;
  bool seen_digit = false;
  std::size_t i = 0;
  for (; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '.' && !seen_point) {
      seen_point = true;
    } else if (c >= '0' && c <= '9') {
      if (mantissa > (u128(1) << 64) || fraction_digits >= 18) {
        return std::nullopt;
      }
      mantissa = mantissa * 10 + static_cast<unsigned>(c - '0');
      fraction_digits += seen_point ? 1 : 0;
      seen_digit = true;
    } else {
      break;
    }
  }
  const std::optional<u128> unit = multiplier(text.substr(i));
  // mantissa <= 2^64 and unit <= 2^60 keep the product within 128 bits.
  if (!seen_digit || !unit || mantissa > (u128(1) << 64)) {
    return std::nullopt;
  }
  const u128 scaled = mantissa * *unit;
  const u128 divisor = power_of(10, fraction_digits);
  if (scaled % divisor != 0 || scaled / divisor > UINT64_MAX) {
    return std::nullopt;  // fractional bytes or beyond 64 bits
  }
  return static_cast<std::uint64_t>(scaled / divisor);
}

}  // namespace tf::shim
