// Facts about how this native build was made, for `tensor-fusion version` and bug reports.
// Every value is fixed at compile time by CMake; there is deliberately no build timestamp so
// that two builds of the same source are byte-identical.
#pragma once

#include <string_view>

namespace tf {

struct BuildInfo {
  std::string_view version;           // package version, e.g. "0.1.0"
  std::string_view compiler_id;       // CMake's compiler id, e.g. "GNU", "Clang"
  std::string_view compiler_version;  // e.g. "12.2.0"
  std::string_view cxx_standard;      // e.g. "17"
  std::string_view build_type;        // e.g. "Release"; "unknown" if none was set
  bool werror;                        // built with warnings as errors (TF_WERROR)
};

const BuildInfo& build_info() noexcept;

}  // namespace tf
