// Logging for all tensor-fusion native code.
//
// One process-wide level, controlled by TF_LOG_LEVEL (the same variable the Python side reads).
// level() is a relaxed atomic load so hot paths can test `enabled(...)` before formatting
// anything. Nothing here throws and nothing takes a lock: the future CUDA shim logs from inside
// intercepted calls, possibly around fork(), where a held mutex could deadlock the child.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace tf::log {

enum class Level { trace, debug, info, warn, error };

// The environment variable init_from_env() reads.
inline constexpr std::string_view kEnvVar = "TF_LOG_LEVEL";
// The valid names, most to least verbose, as they appear in error messages.
inline constexpr std::string_view kValidLevels = "trace, debug, info, warn, error";

// Case-insensitive (ASCII) name -> level; "warning" is accepted as warn. Surrounding whitespace
// is not stripped, so " info" is rejected just as the Python side rejects it.
std::optional<Level> parse_level(std::string_view name) noexcept;

// Lower-case canonical name: "trace", "debug", "info", "warn", "error".
const char* level_name(Level lvl) noexcept;

void set_level(Level lvl) noexcept;
Level level() noexcept;

inline bool enabled(Level lvl) noexcept {
  return static_cast<int>(lvl) >= static_cast<int>(level());
}

// Sets the level from TF_LOG_LEVEL (unset or empty means info). Returns "" on success; for an
// unknown value returns a one-line message naming the variable, the value and the valid levels,
// and sets the level to info. Meant to be called once at startup.
std::string init_from_env() noexcept;

// Writes "tensorfusion[native] LEVEL: msg\n" to stderr in a single write when lvl is enabled.
// Newlines inside msg are written as "\n" so one call is always one line.
void log(Level lvl, std::string_view msg) noexcept;

}  // namespace tf::log
