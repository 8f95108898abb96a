#include "log.h"

#include <unistd.h>

namespace tf::shim {

void warn(const std::string& message) noexcept {
  // One write(2) per line so lines of concurrent processes never interleave.
  const std::string line = "tensor-fusion shim: " + message + "\n";
  const ssize_t ignored = ::write(STDERR_FILENO, line.data(), line.size());
  static_cast<void>(ignored);
}

}  // namespace tf::shim
