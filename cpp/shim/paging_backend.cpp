#include "paging_backend.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "log.h"
#include "real.h"
#include "state.h"

namespace tf::shim {
namespace {

using tiering::Tier;

std::uint64_t minus(std::uint64_t a, std::uint64_t b) { return a > b ? a - b : 0; }

CUmemAllocationProp device_prop(int device) {
  CUmemAllocationProp prop{};
  prop.type = CU_MEM_ALLOCATION_TYPE_PINNED;
  prop.location = CUmemLocation{CU_MEM_LOCATION_TYPE_DEVICE, device};
  return prop;
}

// pread/pwrite until all of `size` moved; false on an error or end of file.
template <typename Io, typename Buffer>
bool whole(Io io, int fd, Buffer buffer, std::uint64_t size, std::uint64_t offset) {
  while (size > 0) {
    const ssize_t done = io(fd, buffer, size, static_cast<off_t>(offset));
    if (done < 0 && errno == EINTR) {
      continue;
    }
    if (done <= 0) {
      return false;
    }
    buffer += done;
    size -= static_cast<std::uint64_t>(done);
    offset += static_cast<std::uint64_t>(done);
  }
  return true;
}

// Makes `context` current for a scope, then the caller's again.
class InContext {
 public:
  explicit InContext(CUcontext context) {
    const Plain& real = plain();
    if (context == nullptr || real.cuCtxGetCurrent == nullptr || real.cuCtxSetCurrent == nullptr ||
        real.cuCtxGetCurrent(&previous_) != CUDA_SUCCESS || previous_ == context) {
      return;
    }
    switched_ = real.cuCtxSetCurrent(context) == CUDA_SUCCESS;
  }
  ~InContext() {
    if (switched_) {
      plain().cuCtxSetCurrent(previous_);
    }
  }
  InContext(const InContext&) = delete;
  InContext& operator=(const InContext&) = delete;

 private:
  CUcontext previous_ = nullptr;
  bool switched_ = false;
};

}  // namespace

DriverBackend::DriverBackend(int device, Budget& budget, std::string spill_dir)
    : device_(device), budget_(budget), spill_dir_(std::move(spill_dir)) {
  if (plain().cuCtxGetCurrent != nullptr) {
    plain().cuCtxGetCurrent(&context_);
  }
}

DriverBackend::~DriverBackend() {
  if (disk_fd_ >= 0) {
    close(disk_fd_);
  }
}

std::uint64_t DriverBackend::granularity(int device) noexcept {
  const auto query = plain().cuMemGetAllocationGranularity;
  const CUmemAllocationProp prop = device_prop(device);
  std::size_t bytes = 0;
  return query != nullptr && query(&bytes, &prop, CU_MEM_ALLOC_GRANULARITY_MINIMUM) == CUDA_SUCCESS
             ? bytes
             : 0;
}

std::uint64_t DriverBackend::room(Tier tier) {
  switch (tier) {
    case Tier::device: {
      const std::uint64_t vram =
          minus(minus(budget_.limit(), budget_.tier_limit(shm::Gauge::host)),
                budget_.tier_limit(shm::Gauge::disk));
      const std::uint64_t away =
          budget_.offloaded(shm::Gauge::host) + budget_.offloaded(shm::Gauge::disk);
      return minus(vram, minus(budget_.used(), away));
    }
    case Tier::host:
      return minus(budget_.tier_limit(shm::Gauge::host), budget_.offloaded(shm::Gauge::host));
    case Tier::disk:
      return minus(budget_.tier_limit(shm::Gauge::disk), budget_.offloaded(shm::Gauge::disk));
  }
  return 0;
}

bool DriverBackend::charge(std::uint64_t bytes) {
  return budget_.try_charge(shm::Kind::device, bytes);
}

void DriverBackend::credit(std::uint64_t bytes) { budget_.credit(shm::Kind::device, bytes); }

void DriverBackend::report(std::uint64_t host_bytes, std::uint64_t disk_bytes,
                           std::uint64_t chunks_out, std::uint64_t chunks_in) {
  budget_.set_offloaded(shm::Gauge::host, host_bytes);
  budget_.set_offloaded(shm::Gauge::disk, disk_bytes);
  if (chunks_out > 0) {
    budget_.count(shm::Counter::pages_evicted, chunks_out);
  }
  if (chunks_in > 0) {
    budget_.count(shm::Counter::pages_resumed, chunks_in);
  }
}

bool DriverBackend::reserve(std::uint64_t size, std::uint64_t& base) {
  const auto reserve_range = plain().cuMemAddressReserve;
  CUdeviceptr at = 0;
  if (reserve_range == nullptr || reserve_range(&at, size, 0, 0, 0) != CUDA_SUCCESS) {
    return false;
  }
  base = at;
  return true;
}

void DriverBackend::unreserve(std::uint64_t base, std::uint64_t size) {
  plain().cuMemAddressFree(base, size);
}

bool DriverBackend::create(std::uint64_t size, std::uint64_t& handle) {
  const auto create_handle = TF_REAL(cuMemCreate);  // the real one: the pager charges itself
  const CUmemAllocationProp prop = device_prop(device_);
  CUmemGenericAllocationHandle made = 0;
  if (create_handle == nullptr || create_handle(&made, size, &prop, 0) != CUDA_SUCCESS) {
    return false;
  }
  handle = made;
  return true;
}

void DriverBackend::release(std::uint64_t handle) { TF_REAL(cuMemRelease)(handle); }

bool DriverBackend::map(std::uint64_t at, std::uint64_t size, std::uint64_t handle) {
  const Plain& real = plain();
  if (real.cuMemMap == nullptr || real.cuMemSetAccess == nullptr || real.cuMemUnmap == nullptr ||
      real.cuMemMap(at, size, 0, handle, 0) != CUDA_SUCCESS) {
    return false;
  }
  // A mapping starts inaccessible, every time it is made.
  const CUmemAccessDesc access{device_prop(device_).location, CU_MEM_ACCESS_FLAGS_PROT_READWRITE};
  if (real.cuMemSetAccess(at, size, &access, 1) != CUDA_SUCCESS) {
    real.cuMemUnmap(at, size);
    return false;
  }
  return true;
}

void DriverBackend::unmap(std::uint64_t at, std::uint64_t size) { plain().cuMemUnmap(at, size); }

bool DriverBackend::quiesce() {
  const InContext in(context_);
  return TF_REAL(cuCtxSynchronize)() == CUDA_SUCCESS;
}

CUstream DriverBackend::stream() {
  if (stream_ == nullptr && plain().cuStreamCreate != nullptr) {
    const InContext in(context_);
    plain().cuStreamCreate(&stream_, CU_STREAM_NON_BLOCKING);
  }
  return stream_;
}

bool DriverBackend::copy_out(void* host, std::uint64_t device, std::uint64_t size) {
  const CUstream on = stream();
  const InContext in(context_);
  return on != nullptr && TF_REAL(cuMemcpyDtoHAsync_v2)(host, device, size, on) == CUDA_SUCCESS;
}

bool DriverBackend::copy_in(std::uint64_t device, const void* host, std::uint64_t size) {
  const CUstream on = stream();
  const InContext in(context_);
  return on != nullptr && TF_REAL(cuMemcpyHtoDAsync_v2)(device, host, size, on) == CUDA_SUCCESS;
}

bool DriverBackend::finish() {
  const InContext in(context_);
  return stream_ == nullptr || TF_REAL(cuStreamSynchronize)(stream_) == CUDA_SUCCESS;
}

void* DriverBackend::pin(std::uint64_t size) {
  void* memory = nullptr;
  const auto alloc = plain().cuMemHostAlloc;
  return alloc != nullptr && alloc(&memory, size, CU_MEMHOSTALLOC_PORTABLE) == CUDA_SUCCESS
             ? memory
             : nullptr;
}

bool DriverBackend::open_disk(std::uint64_t size) {
  const std::string where = "device " + std::to_string(device_) + ": disk tier";
  if (spill_dir_.empty()) {
    warn(where + " has a budget but TF_VRAM_SPILL_DIR is unset; nothing is paged to disk");
    return false;
  }
  std::string name = spill_dir_ + "/tf-spill-" + std::to_string(getpid()) + "-" +
                     std::to_string(device_) + "-XXXXXX";
  std::vector<char> path(name.begin(), name.end());
  path.push_back('\0');
  const int fd = mkostemp(path.data(), O_CLOEXEC);
  if (fd < 0) {
    warn(where + ": cannot create a file in " + spill_dir_ + " (" + std::strerror(errno) +
         "); nothing is paged to disk");
    return false;
  }
  unlink(path.data());  // the space goes back to the disk whenever the process ends
  if (const int error = posix_fallocate(fd, 0, static_cast<off_t>(size)); error != 0) {
    warn(where + ": cannot reserve " + std::to_string(size) + " bytes in " + spill_dir_ + " (" +
         std::strerror(error) + "); nothing is paged to disk");
    close(fd);
    return false;
  }
  disk_fd_ = fd;
  return true;
}

bool DriverBackend::write_disk(std::uint64_t offset, const void* from, std::uint64_t size) {
  return disk_fd_ >= 0 && whole(pwrite, disk_fd_, static_cast<const char*>(from), size, offset);
}

bool DriverBackend::read_disk(std::uint64_t offset, void* to, std::uint64_t size) {
  return disk_fd_ >= 0 && whole(pread, disk_fd_, static_cast<char*>(to), size, offset);
}

}  // namespace tf::shim
