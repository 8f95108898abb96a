// The shim's only output: one line on stderr per problem, never on a per-call path.
#pragma once

#include <string>

namespace tf::shim {

void warn(const std::string& message) noexcept;

}  // namespace tf::shim
