// VRAM paging in the hooks: a device whose budget names a host or disk tier serves
// cuMemAlloc / cuMemAllocPitch from the tier manager, and every launch, copy and set on it first
// makes the allocations it touches resident. Everything else, and every device without a tier,
// behaves as without paging.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>

#include "budget.h"
#include "cuda_abi.h"
#include "paging_backend.h"
#include "real.h"
#include "tf/tiering.h"

namespace tf::shim {

class Paging {
 public:
  // On when `budget` (the region's limits, else the environment's) names a host or disk tier.
  void configure(int device, Budget& budget, const std::string& spill_dir);
  bool enabled() const noexcept { return budget_ != nullptr; }
  // The tier manager once something was paged on this device; null before.
  tiering::Manager* active() const noexcept { return active_.load(std::memory_order_acquire); }
  // A paged allocation of `bytes` on this device.
  CUresult allocate(CUdeviceptr* dptr, std::uint64_t bytes);

 private:
  int device_ = 0;
  Budget* budget_ = nullptr;
  std::string spill_dir_;
  std::mutex mutex_;  // building the manager
  std::unique_ptr<DriverBackend> backend_;
  std::unique_ptr<tiering::Manager> manager_;
  std::atomic<tiering::Manager*> active_{nullptr};
};

// What a launch, copy or export made resident stays so until this is destroyed: the hook keeps
// it across its real call, so the work is queued before anything can be evicted.
class PagedUse {
 public:
  explicit PagedUse(CUresult result = CUDA_SUCCESS) noexcept : result_(result) {}
  PagedUse(PagedUse&& other) noexcept
      : result_(other.result_), held_(std::exchange(other.held_, 0U)) {}
  PagedUse(const PagedUse&) = delete;
  PagedUse& operator=(const PagedUse&) = delete;
  PagedUse& operator=(PagedUse&&) = delete;
  ~PagedUse();
  CUresult result() const noexcept { return result_; }
  // Records that `device`'s manager began this use (its done() is due).
  void hold(int device) noexcept;

 private:
  CUresult result_;
  std::uint32_t held_ = 0;  // devices, one bit each
};

// The hooks' entry points; each is a flag check while no device pages.
// nullopt: not a paged allocation (capturing, no tier, or another device): the caller goes on.
std::optional<CUresult> paged_alloc(CUdeviceptr* dptr, std::uint64_t bytes);
std::optional<CUresult> paged_free(CUdeviceptr ptr);
PagedUse page_for_launch(CUfunction f, void** params, void** extra, CUstream stream);
// A graph's kernels cannot be seen from here: the whole worker is made resident.
PagedUse page_for_graph(CUstream stream);
// A copy or set on `stream` touching [dst, dst + dst_bytes) and [src, src + src_bytes) (0
// bytes: none).
PagedUse page_for_copy(CUdeviceptr dst, std::size_t dst_bytes, CUdeviceptr src,
                       std::size_t src_bytes, CUstream stream);
// Exported memory stays resident from now on.
PagedUse pin_exported(CUdeviceptr ptr);
// Pages for a copy or set on `stream` (null: a synchronous one) touching [dst, dst +
// dst_bytes) and [src, src + src_bytes) (host ranges and others' memory are ignored), then
// makes the real call while what it touches is held resident.
template <typename Real, typename... Args>
CUresult paged_call(Real real, CUstream stream, CUdeviceptr dst, std::size_t dst_bytes,
                    CUdeviceptr src, std::size_t src_bytes, Args... args) {
  if (real == nullptr) {
    return kMissingReal;
  }
  const PagedUse use = page_for_copy(dst, dst_bytes, src, src_bytes, stream);
  return use.result() != CUDA_SUCCESS ? use.result() : real(args...);
}

// Stream capture begun or ended (by `result` of the call that tried).
void capture_begun(CUresult result) noexcept;
void capture_ended(CUresult result) noexcept;

}  // namespace tf::shim
