// The in-file layout of a shared region (see tf/shm.h for the protocol). Every field that more
// than one process touches after creation is a lock-free std::atomic, so the file can be
// mapped at any address by processes built separately against this header.
#pragma once

#include <pthread.h>

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "tf/shm.h"

namespace tf::shm {

using A64 = std::atomic<std::uint64_t>;
using A32 = std::atomic<std::uint32_t>;
static_assert(A64::is_always_lock_free, "the region needs lock-free 64-bit atomics");
static_assert(A32::is_always_lock_free, "the region needs lock-free 32-bit atomics");
static_assert(sizeof(A64) == 8 && sizeof(A32) == 4, "atomics must be bare integers in the file");

inline constexpr std::uint32_t kNoSlot = 0xFFFFFFFFU;
// Limits as words: vram bytes, the bit patterns of the three TFLOPS doubles, host bytes, disk
// bytes.
inline constexpr std::size_t kLimitWords = 6;

// What an intent does to its slot besides the header fields it always sets.
enum class Action : std::uint32_t { none = 0, set_bytes = 1, occupy = 2, release = 3, limits = 4 };

// A redo record: absolute values to store, so replaying it after the holder died mid-way is
// idempotent. Written under the mutex, armed last, disarmed after it has been applied.
struct Intent {
  A64 armed;
  A64 total_after;
  A32 members_after;
  A32 free_head_after;
  A32 slot;
  A32 action;
  A32 kind;
  A32 next_after;
  A64 bytes_after;
  A64 incarnation_after;
  A64 pid;
  A64 start_token;
  A64 generation_after;
  A64 limits[kLimitWords];
};

struct Region::Header {
  std::uint64_t magic;
  std::uint32_t layout_version;
  std::uint32_t header_size;
  std::uint32_t slot_count;
  std::uint32_t slot_size;
  std::uint64_t file_size;
  A64 limits_seq;  // seqlock over limits[]: odd while a writer is between its two stores
  A64 generation;
  A64 limits[kLimitWords];
  A64 total_bytes;
  A32 members;
  A32 free_head;
  A32 reap_cursor;
  std::uint32_t reserved;
  char worker[kMaxWorkerName + 1];
  alignas(64) Intent intent;
  alignas(64) pthread_mutex_t mutex;
};

struct Region::Slot {
  A64 incarnation;  // odd while occupied; bumped on every occupy and release
  A64 pid;
  A64 start_token;
  A32 next_free;
  std::uint32_t reserved;
  A64 bytes[kKinds];
  A64 counters[kCounters];
  A64 gauges[kGauges];
  std::uint64_t padding[1];
};

static_assert(sizeof(Region::Header) <= kHeaderSize, "header outgrew its reserved size");
static_assert(sizeof(Region::Slot) == kSlotSize, "slot size is part of the layout version");
static_assert(offsetof(Region::Header, layout_version) == 8, "version offset is fixed");
static_assert(offsetof(Region::Header, limits_seq) == 32, "layout changed: bump the version");
static_assert(offsetof(Region::Slot, bytes) == 32, "layout changed: bump the version");

inline std::size_t file_size_for(std::uint32_t slot_count) {
  return std::size_t{kHeaderSize} + std::size_t{slot_count} * kSlotSize;
}

// Limits as the words the header and intents hold, and back.
void limits_to_words(const Limits& limits, std::uint64_t (&words)[kLimitWords]) noexcept;
Limits limits_from_words(const std::uint64_t (&words)[kLimitWords]) noexcept;

// Stores everything the armed intent says. Caller holds the mutex (or just recovered it).
void apply_intent(Region::Header& header, Region::Slot* slots);

}  // namespace tf::shm
