#include "tf/build_info.h"

// CMake defines these for this file only; the fallbacks keep it compilable (and honest) when
// built some other way.
#ifndef TF_BUILD_VERSION
#define TF_BUILD_VERSION "0+unknown"
#endif
#ifndef TF_BUILD_COMPILER_ID
#define TF_BUILD_COMPILER_ID "unknown"
#endif
#ifndef TF_BUILD_COMPILER_VERSION
#define TF_BUILD_COMPILER_VERSION "unknown"
#endif
#ifndef TF_BUILD_CXX_STANDARD
#define TF_BUILD_CXX_STANDARD "unknown"
#endif
#ifndef TF_BUILD_TYPE
#define TF_BUILD_TYPE ""
#endif
#ifndef TF_BUILD_WERROR
#define TF_BUILD_WERROR 0
#endif

namespace tf {
namespace {

constexpr std::string_view or_unknown(std::string_view value) noexcept {
  return value.empty() ? std::string_view{"unknown"} : value;
}

}  // namespace

const BuildInfo& build_info() noexcept {
  static constexpr BuildInfo info{
      TF_BUILD_VERSION,
      TF_BUILD_COMPILER_ID,
      TF_BUILD_COMPILER_VERSION,
      TF_BUILD_CXX_STANDARD,
      or_unknown(TF_BUILD_TYPE),
      TF_BUILD_WERROR != 0,
  };
  return info;
}

}  // namespace tf
