// Creating, validating and mapping region files.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <new>
#include <string>

#include "layout.h"
#include "tf/shm.h"

namespace tf::shm {
namespace {

[[noreturn]] void fail_os(const std::string& path, const char* what) {
  const int error_number = errno;
  // The path travels separately (OSError.filename), so the message does not repeat it.
  throw RegionError(RegionError::Cause::os, path, error_number,
                    std::string("cannot ") + what + ": " + std::strerror(error_number));
}

[[noreturn]] void fail_format(const std::string& path, const std::string& what) {
  throw RegionError(RegionError::Cause::format, path, 0, path + ": " + what);
}

[[noreturn]] void fail_argument(const std::string& message) {
  throw RegionError(RegionError::Cause::argument, "", 0, message);
}

// Closes a descriptor and, until released, unmaps and unlinks what a failed create left.
class Cleanup {
 public:
  explicit Cleanup(int fd) noexcept : fd_(fd) {}
  Cleanup(const Cleanup&) = delete;
  Cleanup& operator=(const Cleanup&) = delete;
  ~Cleanup() {
    if (base_ != nullptr) {
      ::munmap(base_, size_);
    }
    if (!unlink_.empty()) {
      ::unlink(unlink_.c_str());
    }
    ::close(fd_);
  }
  void on_failure(void* base, std::size_t size, std::string unlink_path) {
    base_ = base;
    size_ = size;
    unlink_ = std::move(unlink_path);
  }
  void release() noexcept {
    base_ = nullptr;
    unlink_.clear();
  }

 private:
  int fd_;
  void* base_ = nullptr;
  std::size_t size_ = 0;
  std::string unlink_;
};

void* map_file(int fd, std::size_t size, const std::string& path) {
  void* base = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (base == MAP_FAILED) {
    fail_os(path, "map");
  }
  return base;
}

void check_create_arguments(std::uint64_t slot_count, const std::string& worker,
                            const Limits& limits) {
  if (slot_count < kMinSlots || slot_count > kMaxSlots) {
    fail_argument("slots: must be from " + std::to_string(kMinSlots) + " to " +
                  std::to_string(kMaxSlots) + ", got " + std::to_string(slot_count));
  }
  if (worker.empty() || worker.size() > kMaxWorkerName) {
    fail_argument("worker: must be 1 to " + std::to_string(kMaxWorkerName) +
                  " bytes, got " + std::to_string(worker.size()));
  }
  if (worker.find('\0') != std::string::npos) {
    fail_argument("worker: must not contain NUL");
  }
  validate_limits(limits);
}

void initialise(void* base, std::uint32_t slot_count, const std::string& worker,
                const Limits& limits, const std::string& path) {
  auto* header = new (base) Region::Header{};
  header->layout_version = kLayoutVersion;
  header->header_size = kHeaderSize;
  header->slot_count = slot_count;
  header->slot_size = kSlotSize;
  header->file_size = file_size_for(slot_count);
  std::uint64_t words[kLimitWords] = {};
  limits_to_words(limits, words);
  for (std::size_t i = 0; i < kLimitWords; ++i) {
    header->limits[i].store(words[i]);
  }
  std::memcpy(header->worker, worker.data(), worker.size());
  header->free_head.store(0);
  auto* slots = reinterpret_cast<Region::Slot*>(static_cast<char*>(base) + kHeaderSize);
  for (std::uint32_t i = 0; i < slot_count; ++i) {
    auto* slot = new (&slots[i]) Region::Slot{};
    slot->next_free.store(i + 1 < slot_count ? i + 1 : kNoSlot);
  }

  pthread_mutexattr_t attributes;
  pthread_mutexattr_init(&attributes);
  pthread_mutexattr_setpshared(&attributes, PTHREAD_PROCESS_SHARED);
  pthread_mutexattr_setrobust(&attributes, PTHREAD_MUTEX_ROBUST);
  const int rc = pthread_mutex_init(&header->mutex, &attributes);
  pthread_mutexattr_destroy(&attributes);
  if (rc != 0) {
    errno = rc;
    fail_os(path, "initialise the region mutex");
  }
  // The magic goes in last: nothing half-built ever looks like a region.
  std::atomic_thread_fence(std::memory_order_release);
  header->magic = kMagic;
}

void validate(const Region::Header& header, std::size_t actual_size, const std::string& path) {
  if (header.magic != kMagic) {
    fail_format(path, "not a tensor-fusion shared region (bad magic)");
  }
  if (header.layout_version != kLayoutVersion) {
    fail_format(path, "region layout version " + std::to_string(header.layout_version) +
                          ", this build reads version " + std::to_string(kLayoutVersion));
  }
  if (header.header_size != kHeaderSize || header.slot_size != kSlotSize) {
    fail_format(path, "corrupt header: header size " + std::to_string(header.header_size) +
                          ", slot size " + std::to_string(header.slot_size));
  }
  if (header.slot_count < kMinSlots || header.slot_count > kMaxSlots) {
    fail_format(path, "corrupt header: slot count " + std::to_string(header.slot_count));
  }
  const std::size_t expected = file_size_for(header.slot_count);
  if (header.file_size != expected || actual_size != expected) {
    fail_format(path, "truncated or corrupt: file is " + std::to_string(actual_size) +
                          " bytes, " + std::to_string(header.slot_count) + " slots need " +
                          std::to_string(expected));
  }
  if (std::memchr(header.worker, '\0', sizeof header.worker) == nullptr) {
    fail_format(path, "corrupt header: worker name is not terminated");
  }
  const std::uint32_t head = header.free_head.load();
  if ((head != kNoSlot && head >= header.slot_count) ||
      header.members.load() > header.slot_count) {
    fail_format(path, "corrupt header: free list or member count out of range");
  }
}

}  // namespace

Region::Region(std::string path, void* base, std::size_t size) noexcept
    : path_(std::move(path)), base_(base), size_(size) {}

Region::Region(Region&& other) noexcept
    : path_(std::move(other.path_)), base_(other.base_), size_(other.size_) {
  other.base_ = nullptr;
  other.size_ = 0;
}

Region& Region::operator=(Region&& other) noexcept {
  if (this != &other) {
    if (base_ != nullptr) {
      ::munmap(base_, size_);
    }
    path_ = std::move(other.path_);
    base_ = other.base_;
    size_ = other.size_;
    other.base_ = nullptr;
    other.size_ = 0;
  }
  return *this;
}

Region::~Region() {
  if (base_ != nullptr) {
    ::munmap(base_, size_);
  }
}

Region::Header& Region::header() const noexcept { return *static_cast<Header*>(base_); }

Region::Slot& Region::slot(std::uint32_t index) const noexcept {
  return reinterpret_cast<Slot*>(static_cast<char*>(base_) + kHeaderSize)[index];
}

std::uint32_t Region::slot_count() const noexcept { return header().slot_count; }

Region Region::create(const std::string& path, std::uint64_t slot_count,
                      const std::string& worker, const Limits& limits) {
  check_create_arguments(slot_count, worker, limits);
  const auto count = static_cast<std::uint32_t>(slot_count);  // <= kMaxSlots: checked
  const std::string temporary = path + ".tmp." + std::to_string(::getpid());
  const int fd = ::open(temporary.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) {
    fail_os(path, "create");
  }
  Cleanup cleanup(fd);
  cleanup.on_failure(nullptr, 0, temporary);
  const std::size_t size = file_size_for(count);
  // Members run under other uids than the agent; the directory decides who can reach it.
  if (::fchmod(fd, 0666) != 0 || ::ftruncate(fd, static_cast<off_t>(size)) != 0) {
    fail_os(path, "size");
  }
  void* base = map_file(fd, size, path);
  cleanup.on_failure(base, size, temporary);
  initialise(base, count, worker, limits, path);
  // link() refuses an existing name, so a live region is never replaced under its members.
  if (::link(temporary.c_str(), path.c_str()) != 0) {
    fail_os(path, "publish");
  }
  ::unlink(temporary.c_str());
  cleanup.release();
  return Region(path, base, size);
}

Region Region::open(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) {
    fail_os(path, "open");
  }
  Cleanup cleanup(fd);
  struct stat info {};
  if (::fstat(fd, &info) != 0) {
    fail_os(path, "stat");
  }
  if (!S_ISREG(info.st_mode)) {
    fail_format(path, "not a regular file");
  }
  const auto actual = static_cast<std::size_t>(info.st_size);
  if (actual < kHeaderSize) {
    fail_format(path, "truncated: " + std::to_string(actual) + " bytes, a region header is " +
                          std::to_string(kHeaderSize));
  }
  void* base = map_file(fd, actual, path);
  cleanup.on_failure(base, actual, "");
  validate(*static_cast<Header*>(base), actual, path);
  cleanup.release();
  return Region(path, base, actual);
}

}  // namespace tf::shm
