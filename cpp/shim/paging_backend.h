// The tier manager's backend on the real driver: VMM chunks on the device, copies on a stream of
// its own, pinned host memory, and the disk tier's file; budgets from the worker's VRAM budget.
#pragma once

#include <string>

#include "budget.h"
#include "cuda_abi.h"
#include "tf/tiering.h"

namespace tf::shim {

class DriverBackend final : public tiering::Backend {
 public:
  // Copies and waits run in the context current at construction (the first paged allocation's),
  // whatever context the thread that causes them has current.
  DriverBackend(int device, Budget& budget, std::string spill_dir);
  ~DriverBackend() override;
  DriverBackend(const DriverBackend&) = delete;
  DriverBackend& operator=(const DriverBackend&) = delete;

  // The device's allocation granularity (the chunk size), or 0 when the driver cannot say.
  static std::uint64_t granularity(int device) noexcept;

  std::uint64_t room(tiering::Tier tier) override;
  bool charge(std::uint64_t bytes) override;
  void credit(std::uint64_t bytes) override;
  void report(std::uint64_t host_bytes, std::uint64_t disk_bytes, std::uint64_t chunks_out,
              std::uint64_t chunks_in) override;
  bool reserve(std::uint64_t size, std::uint64_t& base) override;
  void unreserve(std::uint64_t base, std::uint64_t size) override;
  bool create(std::uint64_t size, std::uint64_t& handle) override;
  void release(std::uint64_t handle) override;
  bool map(std::uint64_t at, std::uint64_t size, std::uint64_t handle) override;
  void unmap(std::uint64_t at, std::uint64_t size) override;
  bool quiesce() override;
  bool copy_out(void* host, std::uint64_t device, std::uint64_t size) override;
  bool copy_in(std::uint64_t device, const void* host, std::uint64_t size) override;
  bool finish() override;
  void* pin(std::uint64_t size) override;
  bool open_disk(std::uint64_t size) override;
  bool write_disk(std::uint64_t offset, const void* from, std::uint64_t size) override;
  bool read_disk(std::uint64_t offset, void* to, std::uint64_t size) override;

 private:
  // The copy stream, created in the current context on first use; null if it cannot be.
  CUstream stream();

  int device_;
  Budget& budget_;
  std::string spill_dir_;
  CUcontext context_ = nullptr;
  CUstream stream_ = nullptr;
  int disk_fd_ = -1;
};

}  // namespace tf::shim
