#include "launch_words.h"

#include <cstring>
#include <mutex>
#include <unordered_map>
#include <utility>
#include <vector>

#include "real.h"

namespace tf::shim {
namespace {

// A function's parameters as (offset, size); `known` false when the driver cannot say.
struct Layout {
  bool known = false;
  std::vector<std::pair<std::uint32_t, std::uint32_t>> params;
};

Layout query_layout(CUfunction f) {
  Layout layout;
  const auto info = plain().cuFuncGetParamInfo;
  if (info == nullptr) {
    return layout;
  }
  constexpr std::size_t kMaxParams = 32764;  // one byte each fills the largest parameter space
  for (std::size_t index = 0; index <= kMaxParams; ++index) {
    if (index == kMaxParams) {
      return layout;  // a driver that never says where the list ends is not believed
    }
    std::size_t offset = 0;
    std::size_t size = 0;
    const CUresult result = info(f, index, &offset, &size);
    if (result == CUDA_ERROR_INVALID_VALUE) {
      break;  // past the last parameter
    }
    if (result != CUDA_SUCCESS) {
      return layout;
    }
    layout.params.emplace_back(static_cast<std::uint32_t>(offset),
                               static_cast<std::uint32_t>(size));
  }
  layout.known = true;
  return layout;
}

// Layouts are asked of the driver once per function and never change: they live for the
// process, and each thread keeps a small direct-mapped cache of them so a launch takes no lock.
std::mutex g_mutex;
std::unordered_map<CUfunction, const Layout*> g_layouts;

const Layout& layout_of(CUfunction f) {
  constexpr std::size_t kWays = 64;
  struct Entry {
    CUfunction function = nullptr;
    const Layout* layout = nullptr;
  };
  thread_local Entry t_cache[kWays];  // 1 KiB: dynamic TLS, not the scarce static kind
  Entry& entry = t_cache[(reinterpret_cast<std::uintptr_t>(f) >> 4) % kWays];
  if (entry.function == f && entry.layout != nullptr) {
    return *entry.layout;
  }
  const Layout* layout = nullptr;
  {
    const std::lock_guard<std::mutex> lock(g_mutex);
    const Layout*& known = g_layouts[f];
    if (known == nullptr) {
      known = new Layout(query_layout(f));
    }
    layout = known;
  }
  entry = Entry{f, layout};
  return *layout;
}

// False when the words do not all fit: the launch is then treated as one whose pointers
// cannot be known.
bool append(LaunchWords& out, const char* bytes, std::size_t size) {
  if (size / 8 > LaunchWords::kMax - out.count) {
    return false;
  }
  for (std::size_t at = 0; at + 8 <= size; at += 8) {
    std::memcpy(&out.words[out.count++], bytes + at, 8);
  }
  return true;
}

// The parameter buffer `extra` names, or false when it names none.
bool from_extra(void** extra, LaunchWords& out) {
  const char* buffer = nullptr;
  std::size_t size = 0;
  for (std::size_t i = 0; extra[i] != CU_LAUNCH_PARAM_END; i += 2) {
    if (extra[i] == CU_LAUNCH_PARAM_BUFFER_POINTER) {
      buffer = static_cast<const char*>(extra[i + 1]);
    } else if (extra[i] == CU_LAUNCH_PARAM_BUFFER_SIZE && extra[i + 1] != nullptr) {
      size = *static_cast<const std::size_t*>(extra[i + 1]);
    }
  }
  if (buffer == nullptr) {
    return false;
  }
  return append(out, buffer, size);  // pointer parameters sit at 8-byte offsets
}

}  // namespace

bool launch_words(CUfunction f, void** params, void** extra, LaunchWords& out) {
  out.count = 0;
  if (params == nullptr) {
    return extra == nullptr || from_extra(extra, out);
  }
  const Layout& layout = layout_of(f);
  if (!layout.known) {
    return false;
  }
  for (std::size_t i = 0; i < layout.params.size(); ++i) {
    if (!append(out, static_cast<const char*>(params[i]), layout.params[i].second)) {
      return false;
    }
  }
  return true;
}

}  // namespace tf::shim
