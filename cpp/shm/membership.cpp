// Joining, leaving and reaping slots.
#include <unistd.h>

#include "lock.h"
#include "process_identity.h"

namespace tf::shm {
namespace {

constexpr auto relaxed = std::memory_order_relaxed;

std::uint64_t held_bytes(const Region::Slot& slot) {
  std::uint64_t sum = 0;
  for (const auto& bytes : slot.bytes) {
    sum += bytes.load(relaxed);
  }
  return sum;
}

// Stages the release of an occupied slot: its bytes leave the total, it heads the free list.
void stage_release(detail::Lock& lock, const Region::Header& header, const Region::Slot& slot,
                   std::uint32_t index) {
  Intent& intent = lock.stage(index, Action::release);
  const std::uint64_t total = header.total_bytes.load(relaxed);
  const std::uint64_t held = held_bytes(slot);
  intent.total_after.store(held <= total ? total - held : 0, relaxed);
  const std::uint32_t members = header.members.load(relaxed);
  intent.members_after.store(members > 0 ? members - 1 : 0, relaxed);
  intent.next_after.store(header.free_head.load(relaxed), relaxed);
  intent.free_head_after.store(index, relaxed);
  intent.incarnation_after.store(slot.incarnation.load(relaxed) + 1, relaxed);
}

}  // namespace

bool Region::owned_by_caller(const Membership& member) noexcept {
  return member.pid == ::getpid();
}

Status Region::pop_free_slot(Membership& out) {
  const std::int64_t pid = ::getpid();
  const std::uint64_t token = detail::start_token(pid).value_or(0);
  Header& h = header();
  detail::Lock lock(h, &slot(0));
  if (!lock.held()) {
    return Status::unrecoverable;
  }
  const std::uint32_t index = h.free_head.load(relaxed);
  if (index == kNoSlot) {
    return Status::full;
  }
  Slot& s = slot(index);  // index < slot_count: checked at open, and only we write it
  const std::uint32_t next = s.next_free.load(relaxed);
  const std::uint64_t incarnation = s.incarnation.load(relaxed);
  if ((next != kNoSlot && next >= h.slot_count) || incarnation % 2 != 0) {
    return Status::unrecoverable;  // the free list was corrupted outside this protocol
  }
  Intent& intent = lock.stage(index, Action::occupy);
  intent.members_after.store(h.members.load(relaxed) + 1, relaxed);
  intent.free_head_after.store(next, relaxed);
  intent.pid.store(static_cast<std::uint64_t>(pid), relaxed);
  intent.start_token.store(token, relaxed);
  intent.incarnation_after.store(incarnation + 1, relaxed);
  lock.commit();
  out = Membership{index, incarnation + 1, pid};
  return Status::ok;
}

Status Region::join(Membership& out) {
  // One probe per join keeps dead slots from piling up without making join a scan.
  reap_slot(header().reap_cursor.fetch_add(1, relaxed) % slot_count());
  const Status status = pop_free_slot(out);
  if (status != Status::full || reap() == 0) {
    return status;
  }
  return pop_free_slot(out);
}

Status Region::leave(const Membership& member) {
  if (member.slot >= slot_count()) {
    return Status::stale;
  }
  Header& h = header();
  Slot& s = slot(member.slot);
  detail::Lock lock(h, &slot(0));
  if (const Status owner = lock.check_owner(s, member); owner != Status::ok) {
    return owner;
  }
  stage_release(lock, h, s, member.slot);
  lock.commit();
  return Status::ok;
}

Status Region::rejoin_after_fork(Membership& member) {
  if (owned_by_caller(member)) {
    return Status::ok;
  }
  Membership own;
  const Status status = join(own);
  if (status == Status::ok) {
    member = own;
  }
  return status;
}

bool Region::reap_slot(std::uint32_t index) {
  Slot& s = slot(index);
  const std::uint64_t incarnation = s.incarnation.load(std::memory_order_acquire);
  if (incarnation % 2 == 0) {
    return false;
  }
  const auto pid = static_cast<std::int64_t>(s.pid.load(relaxed));
  if (!detail::is_gone(pid, s.start_token.load(relaxed))) {
    return false;
  }
  Header& h = header();
  detail::Lock lock(h, &slot(0));
  // Re-checked under the lock: the slot may have been left and taken again meanwhile.
  if (!lock.held() || s.incarnation.load(relaxed) != incarnation) {
    return false;
  }
  stage_release(lock, h, s, index);
  lock.commit();
  return true;
}

std::uint32_t Region::reap() {
  std::uint32_t reaped = 0;
  for (std::uint32_t index = 0; index < slot_count(); ++index) {
    reaped += reap_slot(index) ? 1U : 0U;
  }
  return reaped;
}

}  // namespace tf::shm
