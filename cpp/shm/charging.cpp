// VRAM charging against the worker's limit, and the lock-free activity counters.
#include "lock.h"

namespace tf::shm {
namespace {

constexpr auto relaxed = std::memory_order_relaxed;

void commit_bytes(detail::Lock& lock, std::uint32_t slot, std::size_t kind,
                  std::uint64_t bytes_after, std::uint64_t total_after) {
  Intent& intent = lock.stage(slot, Action::set_bytes);
  intent.kind.store(static_cast<std::uint32_t>(kind), relaxed);
  intent.bytes_after.store(bytes_after, relaxed);
  intent.total_after.store(total_after, relaxed);
  lock.commit();
}

}  // namespace

Status Region::try_charge(const Membership& member, Kind kind, std::uint64_t bytes) {
  if (member.slot >= slot_count()) {
    return Status::stale;
  }
  Header& h = header();
  Slot& s = slot(member.slot);
  const auto k = static_cast<std::size_t>(kind);
  bool reaped = false;
  while (true) {
    {
      detail::Lock lock(h, &slot(0));
      if (const Status owner = lock.check_owner(s, member); owner != Status::ok) {
        return owner;
      }
      const std::uint64_t total = h.total_bytes.load(relaxed);
      const std::uint64_t limit = h.limits[0].load(relaxed);
      if (bytes <= limit && total <= limit - bytes) {
        commit_bytes(lock, member.slot, k, s.bytes[k].load(relaxed) + bytes, total + bytes);
        return Status::ok;
      }
    }
    // Over the limit: bytes of crashed members may be what is in the way. The scan runs
    // only on this refusal path, never on a charge that fits.
    if (reaped || reap() == 0) {
      return Status::over_limit;
    }
    reaped = true;
  }
}

Status Region::credit(const Membership& member, Kind kind, std::uint64_t bytes) {
  if (member.slot >= slot_count()) {
    return Status::stale;
  }
  Header& h = header();
  Slot& s = slot(member.slot);
  const auto k = static_cast<std::size_t>(kind);
  detail::Lock lock(h, &slot(0));
  if (const Status owner = lock.check_owner(s, member); owner != Status::ok) {
    return owner;
  }
  const std::uint64_t held = s.bytes[k].load(relaxed);
  if (bytes > held) {
    return Status::over_credit;
  }
  const std::uint64_t total = h.total_bytes.load(relaxed);
  commit_bytes(lock, member.slot, k, held - bytes, bytes <= total ? total - bytes : 0);
  return Status::ok;
}

Status Region::add(const Membership& member, Counter counter, std::uint64_t amount) noexcept {
  if (member.slot >= slot_count()) {
    return Status::stale;
  }
  Slot& s = slot(member.slot);
  if (s.incarnation.load(relaxed) != member.incarnation) {
    return Status::stale;
  }
  s.counters[static_cast<std::size_t>(counter)].fetch_add(amount, relaxed);
  return Status::ok;
}

Status Region::set_gauge(const Membership& member, Gauge gauge, std::uint64_t value) noexcept {
  if (member.slot >= slot_count()) {
    return Status::stale;
  }
  Slot& s = slot(member.slot);
  if (s.incarnation.load(relaxed) != member.incarnation) {
    return Status::stale;
  }
  s.gauges[static_cast<std::size_t>(gauge)].store(value, relaxed);
  return Status::ok;
}

}  // namespace tf::shm
