// The accounting mutex: robust and process-shared, so a holder killed mid-update hands the
// next locker EOWNERDEAD, which then replays the armed intent before going on.
#pragma once

#include "layout.h"

namespace tf::shm::detail {

class Lock {
 public:
  Lock(Region::Header& header, Region::Slot* slots) noexcept;
  Lock(const Lock&) = delete;
  Lock& operator=(const Lock&) = delete;
  ~Lock();
  // False when the mutex could not be taken (ENOTRECOVERABLE or a corrupt mutex).
  bool held() const noexcept { return held_; }
  // ok if the lock is held and `member` still owns its slot; else unrecoverable or stale.
  Status check_owner(const Region::Slot& slot, const Membership& member) const noexcept;
  // Arms the staged intent, applies it and disarms it.
  void commit() noexcept;
  // Starts an intent for `action` on `slot` whose header fields keep their current values;
  // the caller then overrides what its action changes.
  Intent& stage(std::uint32_t slot, Action action) noexcept;

 private:
  Region::Header& header_;
  Region::Slot* slots_;
  bool held_ = false;
};

}  // namespace tf::shm::detail
