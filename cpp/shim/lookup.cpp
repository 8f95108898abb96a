// The dynamic entry paths: cuGetProcAddress (how the CUDA runtime and PyTorch reach the
// driver) and dlsym (how ctypes and other loaders do). Both hand out the hook wherever they
// would hand out the real function it stands in for.
#include <dlfcn.h>
#include <link.h>

#include <string>
#include <string_view>

#include "state.h"

namespace {

using tf::shim::find_hook;
using tf::shim::HookInfo;

// How the driver maps a requested (name, CUDA version, flags) to an exported function, for the
// hooked names: "_v2" from `v2_since` on (0: never), and on request the per-thread form: "_ptsz"
// for stream-ordered calls, "_ptds" for synchronous copies and sets.
struct Versioning {
  std::string_view name;
  int v2_since;
  std::string_view per_thread;
};

constexpr std::string_view kNone = "";
constexpr std::string_view kPtsz = "_ptsz";
constexpr std::string_view kPtds = "_ptds";

constexpr Versioning kVersioning[] = {
    {"cuGetProcAddress", 12000, kNone},       {"cuMemAlloc", 3020, kNone},
    {"cuMemAllocPitch", 3020, kNone},         {"cuMemFree", 3020, kNone},
    {"cuMemGetInfo", 3020, kNone},            {"cuDeviceTotalMem", 3020, kNone},
    {"cuArrayCreate", 3020, kNone},           {"cuArray3DCreate", 3020, kNone},
    {"cuArrayDestroy", 0, kNone},             {"cuMemAllocManaged", 0, kNone},
    {"cuMemCreate", 0, kNone},                {"cuMemRelease", 0, kNone},
    {"cuMemPoolCreate", 0, kNone},            {"cuMemPoolDestroy", 0, kNone},
    {"cuDeviceGetDefaultMemPool", 0, kNone},  {"cuDeviceGetMemPool", 0, kNone},
    {"cuMemAllocAsync", 0, kPtsz},            {"cuMemAllocFromPoolAsync", 0, kPtsz},
    {"cuMemFreeAsync", 0, kPtsz},             {"cuLaunchKernel", 0, kPtsz},
    {"cuLaunchKernelEx", 0, kPtsz},           {"cuLaunchCooperativeKernel", 0, kPtsz},
    {"cuGraphLaunch", 0, kPtsz},              {"cuCtxSynchronize", 0, kNone},
    {"cuStreamSynchronize", 0, kPtsz},        {"cuEventSynchronize", 0, kNone},
    {"cuMemcpy", 0, kPtds},                   {"cuMemcpyHtoD", 3020, kPtds},
    {"cuMemcpyDtoH", 3020, kPtds},            {"cuMemcpyDtoD", 3020, kPtds},
    {"cuMemcpyAsync", 0, kPtsz},              {"cuMemcpyHtoDAsync", 3020, kPtsz},
    {"cuMemcpyDtoHAsync", 3020, kPtsz},       {"cuMemcpyDtoDAsync", 3020, kPtsz},
    {"cuMemsetD8", 3020, kPtds},              {"cuMemsetD16", 3020, kPtds},
    {"cuMemsetD32", 3020, kPtds},             {"cuMemsetD8Async", 0, kPtsz},
    {"cuMemsetD16Async", 0, kPtsz},           {"cuMemsetD32Async", 0, kPtsz},
    {"cuStreamBeginCapture", 10010, kPtsz},   {"cuStreamEndCapture", 0, kPtsz},
    {"cuIpcGetMemHandle", 0, kNone},         {"cuMemcpy2D", 3020, kPtds},
    {"cuMemcpy2DUnaligned", 3020, kPtds},     {"cuMemcpy2DAsync", 3020, kPtsz},
    {"cuMemsetD2D8", 3020, kPtds},            {"cuMemsetD2D16", 3020, kPtds},
    {"cuMemsetD2D32", 3020, kPtds},           {"cuMemsetD2D8Async", 0, kPtsz},
    {"cuMemsetD2D16Async", 0, kPtsz},         {"cuMemsetD2D32Async", 0, kPtsz},
    {"cuMemcpyPeer", 0, kPtds},               {"cuMemcpyPeerAsync", 0, kPtsz},
};

// The exported name the driver hands out for `symbol` at `version` with `flags`.
std::string exported_name(std::string_view symbol, int version, cuuint64_t flags) {
  for (const Versioning& entry : kVersioning) {
    if (entry.name == symbol) {
      std::string name(symbol);
      name += (entry.v2_since != 0 && version >= entry.v2_since) ? "_v2" : "";
      if ((flags & CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM) != 0) {
        name += entry.per_thread;
      }
      return name;
    }
  }
  return std::string(symbol);  // asked by its exported name already, or not hooked
}

// Puts the hook in place of a real function the driver found.
void substitute(const char* symbol, void** pfn, int version, cuuint64_t flags) {
  if (symbol == nullptr || pfn == nullptr || *pfn == nullptr) {
    return;
  }
  if (const HookInfo* hook = find_hook(exported_name(symbol, version, flags).c_str())) {
    *pfn = hook->hook;
  }
}

bool defined_in(const void* address, const link_map* object) {
  Dl_info info;
  link_map* owner = nullptr;
  return dladdr1(address, &info, reinterpret_cast<void**>(&owner), RTLD_DL_LINKMAP) != 0 &&
         owner == object;
}

// dlsym(RTLD_NEXT, name) as seen from `caller`: the first definition in an object loaded after
// the caller's. Forwarding RTLD_NEXT as is would search after the shim instead.
void* next_after(const void* caller, const char* name) {
  Dl_info info;
  link_map* object = nullptr;
  if (dladdr1(caller, &info, reinterpret_cast<void**>(&object), RTLD_DL_LINKMAP) == 0 ||
      object == nullptr) {
    return nullptr;
  }
  for (link_map* next = object->l_next; next != nullptr; next = next->l_next) {
    void* handle = dlopen(next->l_name, RTLD_LAZY | RTLD_NOLOAD);
    if (handle == nullptr) {
      continue;
    }
    void* found = tf::shim::real_dlsym(handle, name);
    dlclose(handle);
    if (found != nullptr && defined_in(found, next)) {
      return found;
    }
  }
  return nullptr;
}

}  // namespace

extern "C" {

CUresult cuGetProcAddress(const char* symbol, void** pfn, int cudaVersion, cuuint64_t flags) {
  const auto real = TF_REAL(cuGetProcAddress);
  if (real == nullptr) {
    return tf::shim::kMissingReal;
  }
  const CUresult result = real(symbol, pfn, cudaVersion, flags);
  if (result == CUDA_SUCCESS) {
    substitute(symbol, pfn, cudaVersion, flags);
  }
  return result;
}

CUresult cuGetProcAddress_v2(const char* symbol, void** pfn, int cudaVersion, cuuint64_t flags,
                             CUdriverProcAddressQueryResult* symbolStatus) {
  const auto real = TF_REAL(cuGetProcAddress_v2);
  if (real == nullptr) {
    return tf::shim::kMissingReal;
  }
  const CUresult result = real(symbol, pfn, cudaVersion, flags, symbolStatus);
  if (result == CUDA_SUCCESS) {
    substitute(symbol, pfn, cudaVersion, flags);
  }
  return result;
}

TF_SHIM_EXPORT __attribute__((noinline)) void* dlsym(void* handle, const char* name) noexcept {
  void* found = handle == RTLD_NEXT ? next_after(__builtin_return_address(0), name)
                                    : tf::shim::real_dlsym(handle, name);
  const HookInfo* hook = find_hook(name);
  if (found == nullptr || hook == nullptr || tf::shim::initialising_here()) {
    return found;
  }
  // Only a lookup that found the real function gets the hook; any other definition of the
  // name (the shim's own export, another library's) is returned untouched.
  const auto index = static_cast<std::size_t>(hook - tf::shim::kHooks);
  return found == tf::shim::real_of(static_cast<tf::shim::Hook>(index)) ? hook->hook : found;
}

}  // extern "C"
