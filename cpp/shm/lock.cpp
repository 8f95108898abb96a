#include "lock.h"

#include <cerrno>
#include <cstring>

namespace tf::shm {

namespace {

constexpr auto relaxed = std::memory_order_relaxed;

void apply_slot(const Intent& intent, Region::Slot& slot) noexcept {
  switch (static_cast<Action>(intent.action.load(relaxed))) {
    case Action::set_bytes:
      if (const std::uint32_t kind = intent.kind.load(relaxed); kind < kKinds) {
        slot.bytes[kind].store(intent.bytes_after.load(relaxed), relaxed);
      }
      break;
    case Action::occupy:
      slot.pid.store(intent.pid.load(relaxed), relaxed);
      slot.start_token.store(intent.start_token.load(relaxed), relaxed);
      for (auto& bytes : slot.bytes) {
        bytes.store(0, relaxed);
      }
      for (auto& counter : slot.counters) {
        counter.store(0, relaxed);
      }
      for (auto& gauge : slot.gauges) {
        gauge.store(0, relaxed);
      }
      // Readers check the incarnation last, so publish it after the fields.
      slot.incarnation.store(intent.incarnation_after.load(relaxed), std::memory_order_release);
      break;
    case Action::release:
      slot.incarnation.store(intent.incarnation_after.load(relaxed), std::memory_order_release);
      for (auto& bytes : slot.bytes) {
        bytes.store(0, relaxed);
      }
      for (auto& gauge : slot.gauges) {
        gauge.store(0, relaxed);
      }
      slot.next_free.store(intent.next_after.load(relaxed), relaxed);
      break;
    case Action::none:
    case Action::limits:
      break;
  }
}

void apply_limits(const Intent& intent, Region::Header& header) noexcept {
  // Odd whatever state a dead writer left it in, then even again: readers retry in between.
  const std::uint64_t odd = header.limits_seq.load(relaxed) | 1U;
  header.limits_seq.store(odd, relaxed);
  std::atomic_thread_fence(std::memory_order_release);
  for (std::size_t i = 0; i < kLimitWords; ++i) {
    header.limits[i].store(intent.limits[i].load(relaxed), relaxed);
  }
  header.generation.store(intent.generation_after.load(relaxed), relaxed);
  header.limits_seq.store(odd + 1, std::memory_order_release);
}

std::uint64_t to_bits(double value) {
  std::uint64_t bits = 0;
  std::memcpy(&bits, &value, sizeof bits);
  return bits;
}

double from_bits(std::uint64_t bits) {
  double value = 0.0;
  std::memcpy(&value, &bits, sizeof value);
  return value;
}

}  // namespace

void limits_to_words(const Limits& limits, std::uint64_t (&words)[kLimitWords]) noexcept {
  words[0] = limits.vram_bytes;
  words[1] = to_bits(limits.tflops_limit);
  words[2] = to_bits(limits.tflops_request);
  words[3] = to_bits(limits.gpu_peak_tflops);
  words[4] = limits.host_bytes;
  words[5] = limits.disk_bytes;
}

Limits limits_from_words(const std::uint64_t (&words)[kLimitWords]) noexcept {
  return Limits{words[0],          from_bits(words[1]), from_bits(words[2]),
                from_bits(words[3]), words[4],          words[5]};
}

void apply_intent(Region::Header& header, Region::Slot* slots) {
  const Intent& intent = header.intent;
  if (static_cast<Action>(intent.action.load(relaxed)) == Action::limits) {
    apply_limits(intent, header);
    return;
  }
  const std::uint32_t index = intent.slot.load(relaxed);
  if (index < header.slot_count) {
    apply_slot(intent, slots[index]);
  }
  header.total_bytes.store(intent.total_after.load(relaxed), relaxed);
  header.members.store(intent.members_after.load(relaxed), relaxed);
  header.free_head.store(intent.free_head_after.load(relaxed), relaxed);
}

namespace detail {

Lock::Lock(Region::Header& header, Region::Slot* slots) noexcept
    : header_(header), slots_(slots) {
  const int rc = pthread_mutex_lock(&header_.mutex);
  if (rc == EOWNERDEAD) {
    if (header_.intent.armed.load(std::memory_order_acquire) != 0) {
      apply_intent(header_, slots_);
      header_.intent.armed.store(0, std::memory_order_release);
    }
    held_ = pthread_mutex_consistent(&header_.mutex) == 0;
    if (!held_) {
      pthread_mutex_unlock(&header_.mutex);
    }
    return;
  }
  held_ = rc == 0;
}

Lock::~Lock() {
  if (held_) {
    pthread_mutex_unlock(&header_.mutex);
  }
}

Status Lock::check_owner(const Region::Slot& slot, const Membership& member) const noexcept {
  if (!held_) {
    return Status::unrecoverable;
  }
  return slot.incarnation.load(relaxed) == member.incarnation ? Status::ok : Status::stale;
}

Intent& Lock::stage(std::uint32_t slot, Action action) noexcept {
  Intent& intent = header_.intent;
  intent.slot.store(slot, relaxed);
  intent.action.store(static_cast<std::uint32_t>(action), relaxed);
  intent.total_after.store(header_.total_bytes.load(relaxed), relaxed);
  intent.members_after.store(header_.members.load(relaxed), relaxed);
  intent.free_head_after.store(header_.free_head.load(relaxed), relaxed);
  return intent;
}

void Lock::commit() noexcept {
  header_.intent.armed.store(1, std::memory_order_release);
  apply_intent(header_, slots_);
  header_.intent.armed.store(0, std::memory_order_release);
}

}  // namespace detail
}  // namespace tf::shm
