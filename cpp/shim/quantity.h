// Byte counts as the node agent writes them: plain integers or Kubernetes quantities.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace tf::shim {

// "1073741824", "1Gi", "1.5G", "512M", "2e9": a whole number of bytes that fits 64 bits, or
// nullopt (negative, fractional bytes, unknown suffix, overflow, empty).
std::optional<std::uint64_t> parse_bytes(std::string_view text) noexcept;

}  // namespace tf::shim
