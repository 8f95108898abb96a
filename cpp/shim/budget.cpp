#include "budget.h"

#include <limits>

#include "log.h"

namespace tf::shim {
namespace {

using shm::Status;

std::string fallback_note(const std::optional<std::uint64_t>& env_limit) {
  return env_limit ? "enforcing TF_VRAM_LIMIT within this process" : "no VRAM limit enforced";
}

}  // namespace

void Budget::configure(int device, std::optional<std::uint64_t> env_limit,
                       const std::string& shm_path, const std::string& worker) {
  device_ = device;
  env_limit_ = env_limit;
  if (shm_path.empty()) {
    return;
  }
  const std::string fallback = fallback_note(env_limit);
  const std::string where = "device " + std::to_string(device) + ": region " + shm_path;
  try {
    shm::Region region = shm::Region::open(shm_path);
    if (!worker.empty() && region.snapshot().worker != worker) {
      warn(where + " belongs to another worker than TF_WORKER_NAME=" + worker + "; " + fallback);
      return;
    }
    const Status status = region.join(member_);
    if (status != Status::ok) {
      warn(where + ": cannot join (" + shm::status_name(status) + "); " + fallback);
      return;
    }
    region_.emplace(std::move(region));
    publish_membership();
  } catch (const shm::RegionError& error) {
    warn(where + ": " + error.what() + "; " + fallback);
  }
}

std::uint64_t Budget::limit() const noexcept {
  return shared() ? region_->limits().vram_bytes : env_limit_.value_or(0);
}

std::uint64_t Budget::used() const {
  return shared() ? region_->total_bytes() : own_.load(std::memory_order_relaxed);
}

void Budget::set_env_tiers(std::uint64_t host, std::uint64_t disk) {
  if (!shm::tiers_fit(env_limit_.value_or(0), host, disk)) {
    if (host + disk > 0) {
      warn("device " + std::to_string(device_) +
           ": TF_VRAM_HOST_LIMIT + TF_VRAM_DISK_LIMIT exceed TF_VRAM_LIMIT; nothing is paged");
    }
    return;
  }
  env_tiers_[static_cast<std::size_t>(shm::Gauge::host)] = host;
  env_tiers_[static_cast<std::size_t>(shm::Gauge::disk)] = disk;
}

std::uint64_t Budget::tier_limit(shm::Gauge gauge) const noexcept {
  if (shared()) {
    const shm::Limits limits = region_->limits();
    return gauge == shm::Gauge::host ? limits.host_bytes : limits.disk_bytes;
  }
  return env_tiers_[static_cast<std::size_t>(gauge)];
}

std::uint64_t Budget::offloaded(shm::Gauge gauge) const noexcept {
  return shared() ? region_->gauge_total(gauge)
                  : own_offloaded_[static_cast<std::size_t>(gauge)].load(std::memory_order_relaxed);
}

void Budget::set_offloaded(shm::Gauge gauge, std::uint64_t bytes) noexcept {
  own_offloaded_[static_cast<std::size_t>(gauge)].store(bytes, std::memory_order_relaxed);
  const shm::Membership* member = counting_.load(std::memory_order_acquire);
  if (member != nullptr && shared()) {
    region_->set_gauge(*member, gauge, bytes);
  }
}

bool Budget::try_charge(shm::Kind kind, std::uint64_t bytes) {
  if (shared()) {
    const std::lock_guard<std::mutex> lock(mutex_);
    const Status status = region_charge(kind, bytes);
    if (status == Status::ok) {
      own_.fetch_add(bytes, std::memory_order_relaxed);
      return true;
    }
    if (status == Status::over_limit) {
      return false;
    }
    fall_back(status);
  }
  const std::uint64_t limit = env_limit_.value_or(std::numeric_limits<std::uint64_t>::max());
  std::uint64_t current = own_.load(std::memory_order_relaxed);
  do {
    if (bytes > limit || current > limit - bytes) {
      return false;
    }
  } while (!own_.compare_exchange_weak(current, current + bytes, std::memory_order_relaxed));
  return true;
}

void Budget::credit(shm::Kind kind, std::uint64_t bytes) {
  own_.fetch_sub(bytes, std::memory_order_relaxed);
  if (shared()) {
    const std::lock_guard<std::mutex> lock(mutex_);
    // A stale slot was reaped with its bytes, so there is nothing left to give back.
    const Status status = rejoin_ ? Status::ok : region_->credit(member_, kind, bytes);
    if (status != Status::ok && status != Status::stale) {
      fall_back(status);
    }
  }
}

void Budget::count(shm::Counter counter, std::uint64_t amount) noexcept {
  const shm::Membership* member = counting_.load(std::memory_order_acquire);
  if (member != nullptr && shared()) {
    region_->add(*member, counter, amount);
  }
}

void Budget::publish_membership() {
  counting_.store(new shm::Membership(member_), std::memory_order_release);
}

void Budget::after_fork_child() noexcept {
  own_.store(0, std::memory_order_relaxed);
  counting_.store(nullptr, std::memory_order_relaxed);  // the parent's slot is not ours
  rejoin_ = region_.has_value();
  mutex_.unlock();
}

Status Budget::region_charge(shm::Kind kind, std::uint64_t bytes) {
  if (rejoin_) {
    if (const Status status = region_->rejoin_after_fork(member_); status != Status::ok) {
      return status;
    }
    rejoin_ = false;
    publish_membership();
  }
  Status status = region_->try_charge(member_, kind, bytes);
  if (status == Status::stale) {  // reaped while alive (another pid namespace's view): rejoin
    status = region_->join(member_);
    if (status == Status::ok) {
      publish_membership();
      status = region_->try_charge(member_, kind, bytes);
    }
  }
  return status;
}

void Budget::fall_back(Status status) {
  if (!region_failed_.exchange(true)) {
    warn("device " + std::to_string(device_) + ": region " + region_->path() + " failed (" +
         shm::status_name(status) + "); " + fallback_note(env_limit_));
  }
}

}  // namespace tf::shim
