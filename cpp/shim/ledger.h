// Which live allocation holds how many bytes of which device's budget, so every free path
// credits exactly what its allocation charged; and which device each known memory pool is on
// (a record of 0 bytes), so allocations from a pool are charged there.
#pragma once

#include <cstdint>
#include <mutex>
#include <optional>
#include <unordered_map>

#include "tf/shm.h"

namespace tf::shim {

// Allocations are named by a device pointer, a CUarray or a VMM handle: separate key spaces;
// pools by their CUmemoryPool.
enum class Space : std::uint8_t { pointer, array, handle, pool };

struct Record {
  std::uint64_t bytes = 0;
  shm::Kind kind = shm::Kind::device;
  int device = 0;
};

class Ledger {
 public:
  void remember(Space space, std::uint64_t key, const Record& record) noexcept;
  // Removes and returns the record of `key`; nullopt for an allocation the shim did not charge.
  std::optional<Record> forget(Space space, std::uint64_t key) noexcept;
  // The record of `key`, left in place; nullopt when there is none.
  std::optional<Record> find(Space space, std::uint64_t key) noexcept;

  // pthread_atfork; a child owns none of its parent's allocations.
  void before_fork() noexcept { mutex_.lock(); }
  void after_fork_parent() noexcept { mutex_.unlock(); }
  void after_fork_child() noexcept;

 private:
  struct Key {
    Space space;
    std::uint64_t value;
    bool operator==(const Key& other) const noexcept {
      return space == other.space && value == other.value;
    }
  };
  struct KeyHash {
    std::size_t operator()(const Key& key) const noexcept {
      return std::hash<std::uint64_t>{}(key.value) ^ static_cast<std::size_t>(key.space);
    }
  };

  std::mutex mutex_;
  std::unordered_map<Key, Record, KeyHash> records_;
};

}  // namespace tf::shim
