#include "process_identity.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace tf::shm::detail {
namespace {

struct Stat {
  char state = '?';
  std::uint64_t start_token = 0;
};

enum class Read { ok, gone, unknown };

// Raw open/read rather than stdio: this runs in a forked child's atfork handler too.
Read read_stat(std::int64_t pid, Stat& out) noexcept {
  if (pid <= 0) {
    return Read::gone;
  }
  char path[48];
  std::snprintf(path, sizeof path, "/proc/%lld/stat", static_cast<long long>(pid));
  const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return (errno == ENOENT || errno == ESRCH) ? Read::gone : Read::unknown;
  }
  char buffer[1024];
  const ssize_t got = ::read(fd, buffer, sizeof buffer - 1);
  ::close(fd);
  if (got <= 0) {
    return got == 0 || errno == ESRCH ? Read::gone : Read::unknown;
  }
  buffer[got] = '\0';
  // The command name (field 2) is in parentheses and may itself hold spaces and ')'.
  const char* cursor = std::strrchr(buffer, ')');
  if (cursor == nullptr || cursor[1] != ' ') {
    return Read::unknown;
  }
  cursor += 2;
  out.state = *cursor;
  // cursor is at field 3; skip to field 22.
  for (int field = 3; field < 22; ++field) {
    cursor = std::strchr(cursor, ' ');
    if (cursor == nullptr) {
      return Read::unknown;
    }
    ++cursor;
  }
  char* end = nullptr;
  out.start_token = std::strtoull(cursor, &end, 10);
  return end == cursor ? Read::unknown : Read::ok;
}

}  // namespace

std::optional<std::uint64_t> start_token(std::int64_t pid) noexcept {
  Stat stat;
  if (read_stat(pid, stat) != Read::ok) {
    return std::nullopt;
  }
  return stat.start_token;
}

bool is_gone(std::int64_t pid, std::uint64_t token) noexcept {
  Stat stat;
  switch (read_stat(pid, stat)) {
    case Read::gone:
      return true;
    case Read::unknown:
      return false;
    case Read::ok:
      break;
  }
  // A zero token means the joiner could not read its own; then only the pid is compared.
  return stat.state == 'Z' || stat.state == 'X' || (token != 0 && stat.start_token != token);
}

}  // namespace tf::shm::detail
