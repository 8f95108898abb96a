// Lock-free reads for the agent and the shim, and the agent's limits update.
#include <sched.h>


#include "lock.h"

namespace tf::shm {
namespace {

constexpr auto relaxed = std::memory_order_relaxed;
constexpr auto acquire = std::memory_order_acquire;
// Spins on an odd seqlock before assuming its writer died and locking to trigger recovery.
constexpr int kSpinsBeforeRecovery = 1000;
// Tries to read a slot that keeps changing occupant before reporting it as not live.
constexpr int kSlotReadTries = 8;

// Limits and their generation as one seqlock read; false if a writer was in between.
bool try_read_limits(const Region::Header& header, Limits& out, std::uint64_t& generation) {
  const std::uint64_t before = header.limits_seq.load(acquire);
  if (before % 2 != 0) {
    return false;
  }
  generation = header.generation.load(relaxed);
  std::uint64_t words[kLimitWords] = {};
  for (std::size_t i = 0; i < kLimitWords; ++i) {
    words[i] = header.limits[i].load(relaxed);
  }
  out = limits_from_words(words);
  std::atomic_thread_fence(acquire);
  return header.limits_seq.load(relaxed) == before;
}

// Fills `out` if slot `index` is occupied and stays with one occupant while it is read.
bool read_slot(const Region::Slot& slot, std::uint32_t index, SlotView& out) {
  for (int attempt = 0; attempt < kSlotReadTries; ++attempt) {
    const std::uint64_t before = slot.incarnation.load(acquire);
    if (before % 2 == 0) {
      return false;
    }
    out.index = index;
    out.pid = static_cast<std::int64_t>(slot.pid.load(relaxed));
    out.start_token = slot.start_token.load(relaxed);
    for (std::size_t k = 0; k < kKinds; ++k) {
      out.bytes[k] = slot.bytes[k].load(relaxed);
    }
    for (std::size_t c = 0; c < kCounters; ++c) {
      out.counters[c] = slot.counters[c].load(relaxed);
    }
    for (std::size_t g = 0; g < kGauges; ++g) {
      out.gauges[g] = slot.gauges[g].load(relaxed);
    }
    std::atomic_thread_fence(acquire);
    if (slot.incarnation.load(relaxed) == before) {
      return true;
    }
  }
  return false;
}

}  // namespace

Limits Region::limits() const noexcept {
  Limits out;
  std::uint64_t generation = 0;
  read_limits(out, generation);
  return out;
}

void Region::read_limits(Limits& out, std::uint64_t& generation) const noexcept {
  for (int spin = 0;; ++spin) {
    if (try_read_limits(header(), out, generation)) {
      return;
    }
    if (spin == kSpinsBeforeRecovery) {
      detail::Lock recover(header(), &slot(0));  // replays a dead writer's intent
      spin = 0;
    }
    sched_yield();
  }
}

std::uint64_t Region::set_limits(const Limits& limits) {
  validate_limits(limits);
  Header& h = header();
  detail::Lock lock(h, &slot(0));
  if (!lock.held()) {
    throw RegionError(RegionError::Cause::format, path_, 0,
                      path_ + ": region mutex is unrecoverable");
  }
  Intent& intent = lock.stage(kNoSlot, Action::limits);
  std::uint64_t words[kLimitWords] = {};
  limits_to_words(limits, words);
  for (std::size_t i = 0; i < kLimitWords; ++i) {
    intent.limits[i].store(words[i], relaxed);
  }
  const std::uint64_t generation = h.generation.load(relaxed) + 1;
  intent.generation_after.store(generation, relaxed);
  lock.commit();
  return generation;
}

std::uint64_t Region::total_bytes() const noexcept { return header().total_bytes.load(relaxed); }

std::uint64_t Region::gauge_total(Gauge gauge) const noexcept {
  std::uint64_t total = 0;
  for (std::uint32_t index = 0; index < slot_count(); ++index) {
    const Slot& s = slot(index);
    if (s.incarnation.load(relaxed) % 2 != 0) {
      total += s.gauges[static_cast<std::size_t>(gauge)].load(relaxed);
    }
  }
  return total;
}

Snapshot Region::snapshot() const {
  const Header& h = header();
  Snapshot out;
  out.layout_version = h.layout_version;
  out.slot_count = h.slot_count;
  read_limits(out.limits, out.generation);
  out.worker = h.worker;
  out.total_bytes = h.total_bytes.load(relaxed);
  out.members = h.members.load(relaxed);
  SlotView view;
  for (std::uint32_t index = 0; index < h.slot_count; ++index) {
    if (read_slot(slot(index), index, view)) {
      out.slots.push_back(view);
    }
  }
  return out;
}

}  // namespace tf::shm
