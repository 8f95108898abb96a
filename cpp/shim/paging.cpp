#include "paging.h"

#include "devices.h"
#include "launch_words.h"
#include "log.h"
#include "real.h"
#include "state.h"

namespace tf::shim {
namespace {

using tiering::Manager;
using tiering::Outcome;

// Captures in progress: their launches only record work, which runs (and is paged for) when
// the graph launches, and allocations made meanwhile are never paged.
std::atomic<int> g_captures{0};

bool capturing(CUstream stream) {
  if (g_captures.load(std::memory_order_relaxed) == 0) {
    return false;
  }
  CUstreamCaptureStatus status = CU_STREAM_CAPTURE_STATUS_NONE;
  const auto query = plain().cuStreamIsCapturing;
  return query == nullptr || query(stream, &status) != CUDA_SUCCESS ||
         status != CU_STREAM_CAPTURE_STATUS_NONE;
}

CUresult refused(const char* what, int device, Outcome outcome) {
  if (outcome == Outcome::ok) {
    return CUDA_SUCCESS;
  }
  static std::atomic<bool> said{false};
  if (!said.exchange(true)) {
    warn(std::string(what) + " on device " + std::to_string(device) + " refused: " +
         tiering::outcome_text(outcome) + " (said once)");
  }
  return CUDA_ERROR_OUT_OF_MEMORY;
}

// Calls `step(device, manager)` for every device with paged allocations, until one fails.
template <typename Step>
CUresult each_active(Step step) {
  State& shim = state();
  if (!shim.paging_on) {
    return CUDA_SUCCESS;
  }
  for (int device = 0; device < kMaxDevices; ++device) {
    if (Manager* manager = shim.paging[static_cast<std::size_t>(device)].active()) {
      if (const CUresult result = step(device, *manager); result != CUDA_SUCCESS) {
        return result;
      }
    }
  }
  return CUDA_SUCCESS;
}

}  // namespace

void Paging::configure(int device, Budget& budget, const std::string& spill_dir) {
  device_ = device;
  if (!budget.enforcing() || budget.tier_limit(shm::Gauge::host) +
                                     budget.tier_limit(shm::Gauge::disk) == 0) {
    return;
  }
  budget_ = &budget;
  spill_dir_ = spill_dir;
}

CUresult Paging::allocate(CUdeviceptr* dptr, std::uint64_t bytes) {
  Manager* manager = active();
  if (manager == nullptr) {
    const std::lock_guard<std::mutex> lock(mutex_);
    if (manager_ == nullptr) {
      const std::uint64_t granularity = DriverBackend::granularity(device_);
      if (granularity == 0) {
        return CUDA_ERROR_NOT_SUPPORTED;  // no VMM: the caller allocates as without paging
      }
      backend_ = std::make_unique<DriverBackend>(device_, *budget_, spill_dir_);
      manager_ = std::make_unique<Manager>(*backend_, granularity);
      active_.store(manager_.get(), std::memory_order_release);
    }
    manager = manager_.get();
  }
  std::uint64_t ptr = 0;
  const Outcome outcome = manager->allocate(bytes, ptr);
  if (outcome != Outcome::ok) {
    return CUDA_ERROR_OUT_OF_MEMORY;  // as an allocation past the limit always has
  }
  *dptr = ptr;
  return CUDA_SUCCESS;
}

std::optional<CUresult> paged_alloc(CUdeviceptr* dptr, std::uint64_t bytes) {
  State& shim = state();
  if (!shim.paging_on || dptr == nullptr || bytes == 0 ||
      g_captures.load(std::memory_order_relaxed) > 0) {
    return std::nullopt;
  }
  const int device = current_device();
  if (device < 0 || device >= kMaxDevices) {
    return std::nullopt;
  }
  Paging& paging = shim.paging[static_cast<std::size_t>(device)];
  if (!paging.enabled()) {
    return std::nullopt;
  }
  const CUresult result = paging.allocate(dptr, bytes);
  return result == CUDA_ERROR_NOT_SUPPORTED ? std::nullopt : std::optional<CUresult>(result);
}

std::optional<CUresult> paged_free(CUdeviceptr ptr) {
  bool freed = false;
  each_active([&](int, Manager& manager) {
    freed = freed || manager.release(ptr);
    return CUDA_SUCCESS;
  });
  return freed ? std::optional<CUresult>(CUDA_SUCCESS) : std::nullopt;
}

CUresult page_for_launch(CUfunction f, void** params, void** extra, CUstream stream) {
  State& shim = state();
  if (!shim.paging_on) {
    return CUDA_SUCCESS;
  }
  const int device = launch_device();
  if (device < 0 || device >= kMaxDevices) {
    return CUDA_SUCCESS;
  }
  Manager* manager = shim.paging[static_cast<std::size_t>(device)].active();
  if (manager == nullptr || manager->empty() || capturing(stream)) {
    return CUDA_SUCCESS;
  }
  LaunchWords words;  // on the stack: too large for the static TLS a preloaded library gets
  const Outcome outcome = launch_words(f, params, extra, words)
                              ? manager->use(words.words, words.count)
                              : manager->use_all();
  return refused("a kernel launch", device, outcome);
}

CUresult page_for_graph(CUstream stream) {
  if (capturing(stream)) {
    return CUDA_SUCCESS;
  }
  return each_active([](int device, Manager& manager) {
    return refused("a graph launch", device, manager.use_all());
  });
}

CUresult page_for_copy(CUdeviceptr dst, std::size_t dst_bytes, CUdeviceptr src,
                       std::size_t src_bytes) {
  const std::uint64_t words[4] = {dst, dst + (dst_bytes > 0 ? dst_bytes - 1 : 0), src,
                                  src + (src_bytes > 0 ? src_bytes - 1 : 0)};
  const std::size_t count = src_bytes > 0 ? 4 : 2;
  return each_active([&](int device, Manager& manager) {
    return manager.empty() ? CUDA_SUCCESS
                           : refused("a copy", device, manager.use(words, count));
  });
}

CUresult pin_exported(CUdeviceptr ptr) {
  return each_active([ptr](int device, Manager& manager) {
    return refused("an IPC export", device, manager.pin(ptr));
  });
}

void capture_begun(CUresult result) noexcept {
  if (result == CUDA_SUCCESS) {
    g_captures.fetch_add(1, std::memory_order_relaxed);
  }
}

void capture_ended(CUresult result) noexcept {
  // An invalidated capture has ended too.
  if ((result == CUDA_SUCCESS || result == CUDA_ERROR_STREAM_CAPTURE_INVALIDATED) &&
      g_captures.load(std::memory_order_relaxed) > 0) {
    g_captures.fetch_sub(1, std::memory_order_relaxed);
  }
}

}  // namespace tf::shim
