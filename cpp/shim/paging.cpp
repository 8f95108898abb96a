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

// Set while this thread holds a use: a driver entry point calling another through an
// exported name comes back into a hook, which must not page (or wait for itself) again.
TF_SHIM_TLS thread_local bool t_holding = false;

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

// Runs `step(manager)` on every device with paged allocations now until one refuses; `use`
// holds each that began.
template <typename Step>
PagedUse each_active(const char* what, Step step) {
  State& shim = state();
  PagedUse use;
  if (!shim.paging_on || t_holding) {
    return use;
  }
  for (int device = 0; device < kMaxDevices; ++device) {
    Manager* manager = shim.paging[static_cast<std::size_t>(device)].active();
    if (manager != nullptr && !manager->empty()) {
      const Outcome outcome = step(*manager);
      if (outcome != Outcome::ok) {
        return PagedUse(refused(what, device, outcome));  // `use` gives back what began
      }
      use.hold(device);
    }
  }
  return use;
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
  State& shim = state();
  if (!shim.paging_on) {
    return std::nullopt;
  }
  for (Paging& paging : shim.paging) {
    if (Manager* manager = paging.active(); manager != nullptr && manager->release(ptr)) {
      return CUDA_SUCCESS;
    }
  }
  return std::nullopt;
}

PagedUse::~PagedUse() {
  if (held_ == 0) {
    return;
  }
  State& shim = state();
  for (std::uint32_t left = held_; left != 0; left &= left - 1) {
    shim.paging[static_cast<std::size_t>(__builtin_ctz(left))].active()->done();
  }
  t_holding = false;
}

void PagedUse::hold(int device) noexcept {
  held_ |= 1U << device;
  t_holding = true;
}

PagedUse page_for_launch(CUfunction f, void** params, void** extra, CUstream stream) {
  State& shim = state();
  PagedUse use;
  if (!shim.paging_on || t_holding) {
    return use;
  }
  const int device = launch_device();
  if (device < 0 || device >= kMaxDevices) {
    return use;
  }
  Manager* manager = shim.paging[static_cast<std::size_t>(device)].active();
  if (manager == nullptr || manager->empty() || capturing(stream)) {
    return use;
  }
  LaunchWords words;  // on the stack: too large for the static TLS a preloaded library gets
  const Outcome outcome = launch_words(f, params, extra, words)
                              ? manager->use(words.words, words.count)
                              : manager->use_all();
  if (outcome != Outcome::ok) {
    return PagedUse(refused("a kernel launch", device, outcome));
  }
  use.hold(device);
  return use;
}

PagedUse page_for_graph(CUstream stream) {
  if (capturing(stream)) {
    return PagedUse();
  }
  return each_active("a graph launch", [](Manager& manager) { return manager.use_all(); });
}

PagedUse page_for_copy(CUdeviceptr dst, std::size_t dst_bytes, CUdeviceptr src,
                       std::size_t src_bytes, CUstream stream) {
  if (capturing(stream)) {
    return PagedUse();  // recorded into a graph, paged for when the graph launches
  }
  const std::uint64_t words[4] = {dst, dst + (dst_bytes > 0 ? dst_bytes - 1 : 0), src,
                                  src + (src_bytes > 0 ? src_bytes - 1 : 0)};
  const std::size_t count = src_bytes > 0 ? 4 : 2;
  return each_active("a copy", [&](Manager& manager) { return manager.use(words, count); });
}

PagedUse pin_exported(CUdeviceptr ptr) {
  return each_active("an IPC export", [ptr](Manager& manager) { return manager.pin(ptr); });
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
