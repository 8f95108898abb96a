#include "ledger.h"

#include <new>

namespace tf::shim {

void Ledger::remember(Space space, std::uint64_t key, const Record& record) noexcept {
  const std::lock_guard<std::mutex> lock(mutex_);
  try {
    records_[Key{space, key}] = record;
  } catch (const std::bad_alloc&) {
    // Out of host memory: the bytes stay charged (never under-counted) rather than crash.
  }
}

std::optional<Record> Ledger::forget(Space space, std::uint64_t key) noexcept {
  const std::lock_guard<std::mutex> lock(mutex_);
  const auto found = records_.find(Key{space, key});
  if (found == records_.end()) {
    return std::nullopt;
  }
  const Record record = found->second;
  records_.erase(found);
  return record;
}

std::optional<Record> Ledger::find(Space space, std::uint64_t key) noexcept {
  const std::lock_guard<std::mutex> lock(mutex_);
  const auto found = records_.find(Key{space, key});
  return found == records_.end() ? std::nullopt : std::optional<Record>(found->second);
}

void Ledger::after_fork_child() noexcept {
  records_.clear();
  mutex_.unlock();
}

}  // namespace tf::shim
