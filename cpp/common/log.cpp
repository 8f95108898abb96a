#include "tf/log.h"

#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstdio>
#include <cstdlib>

namespace tf::log {
namespace {

// Constant-initialised, so it is valid before any static constructor runs (the shim may log
// while the dynamic loader is still initialising other libraries).
std::atomic<Level> g_level{Level::info};

char ascii_lower(char c) noexcept {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

bool iequals(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) {
    return false;
  }
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (ascii_lower(a[i]) != ascii_lower(b[i])) {
      return false;
    }
  }
  return true;
}

const char* upper_name(Level lvl) noexcept {
  switch (lvl) {
    case Level::trace: return "TRACE";
    case Level::debug: return "DEBUG";
    case Level::info: return "INFO";
    case Level::warn: return "WARN";
    case Level::error: return "ERROR";
  }
  return "?";
}

// Quotes a user-supplied value for an error message: printable ASCII as is, everything else
// escaped, so a stray newline or control byte in the environment cannot break the line.
std::string quote(std::string_view value) {
  std::string out;
  out.reserve(value.size() + 2);
  out.push_back('\'');
  for (char c : value) {
    const auto byte = static_cast<unsigned char>(c);
    if (c == '\'' || c == '\\') {
      out.push_back('\\');
      out.push_back(c);
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c == '\r') {
      out += "\\r";
    } else if (byte < 0x20 || byte >= 0x7f) {
      char buf[5];
      std::snprintf(buf, sizeof buf, "\\x%02x", static_cast<unsigned int>(byte));
      out += buf;
    } else {
      out.push_back(c);
    }
  }
  out.push_back('\'');
  return out;
}

// One write(2) per line keeps concurrent lines from interleaving without a lock; loop only for
// the rare partial write or EINTR.
void write_stderr(const char* data, std::size_t size) noexcept {
  while (size > 0) {
    const ssize_t n = ::write(STDERR_FILENO, data, size);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      return;  // Nowhere to report a failure to log.
    }
    data += n;
    size -= static_cast<std::size_t>(n);
  }
}

}  // namespace

std::optional<Level> parse_level(std::string_view name) noexcept {
  for (Level lvl : {Level::trace, Level::debug, Level::info, Level::warn, Level::error}) {
    if (iequals(name, level_name(lvl))) {
      return lvl;
    }
  }
  if (iequals(name, "warning")) {
    return Level::warn;
  }
  return std::nullopt;
}

const char* level_name(Level lvl) noexcept {
  switch (lvl) {
    case Level::trace: return "trace";
    case Level::debug: return "debug";
    case Level::info: return "info";
    case Level::warn: return "warn";
    case Level::error: return "error";
  }
  return "?";
}

void set_level(Level lvl) noexcept { g_level.store(lvl, std::memory_order_relaxed); }

Level level() noexcept { return g_level.load(std::memory_order_relaxed); }

std::string init_from_env() noexcept {
  // kEnvVar views a string literal, so data() is NUL-terminated.
  const char* raw = std::getenv(kEnvVar.data());
  const std::string_view value = raw == nullptr ? std::string_view{} : std::string_view{raw};
  if (value.empty()) {
    set_level(Level::info);
    return {};
  }
  if (const auto parsed = parse_level(value)) {
    set_level(*parsed);
    return {};
  }
  set_level(Level::info);
  try {
    std::string msg(kEnvVar);
    msg += ": invalid log level ";
    msg += quote(value);
    msg += "; valid levels: ";
    msg += kValidLevels;
    return msg;
  } catch (...) {
    return {};  // Out of memory: the level is still a sane default.
  }
}

void log(Level lvl, std::string_view msg) noexcept {
  if (!enabled(lvl)) {
    return;
  }
  const int saved_errno = errno;  // Callers may be mid-way through reporting their own errno.
  try {
    std::string line = "tensorfusion[native] ";
    line += upper_name(lvl);
    line += ": ";
    line.reserve(line.size() + msg.size() + 1);
    for (char c : msg) {
      if (c == '\n') {
        line += "\\n";
      } else {
        line.push_back(c);
      }
    }
    line.push_back('\n');
    write_stderr(line.data(), line.size());
  } catch (...) {
    // Allocation failed; dropping one log line beats terminating the host process.
  }
  errno = saved_errno;
}

}  // namespace tf::log
