// The registry of hooks: exported name, hook address, and the library holding the real one.
#include <cstring>

#include "hooks.h"

namespace tf::shim {

const HookInfo kHooks[kHookCount] = {
#define TF_SHIM_HOOK_ENTRY(name, library) \
  {#name, reinterpret_cast<void*>(&::name), Library::library},
    TF_SHIM_HOOKS(TF_SHIM_HOOK_ENTRY)
#undef TF_SHIM_HOOK_ENTRY
};

const HookInfo* find_hook(const char* name) noexcept {
  // Cheap reject: every hooked name starts with "cu" or "nvml".
  if (name == nullptr || (name[0] != 'c' && name[0] != 'n')) {
    return nullptr;
  }
  for (const HookInfo& info : kHooks) {
    if (std::strcmp(info.name, name) == 0) {
      return &info;
    }
  }
  return nullptr;
}

}  // namespace tf::shim
