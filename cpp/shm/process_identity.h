// Telling a live process from a dead one, or from a newer process that reused its pid: the
// start time (field 22 of /proc/<pid>/stat, clock ticks since boot) never repeats for a pid.
#pragma once

#include <cstdint>
#include <optional>

namespace tf::shm::detail {

// The start-time token of `pid`, or nullopt if its stat file cannot be read.
std::optional<std::uint64_t> start_token(std::int64_t pid) noexcept;

// True only when the process is certainly gone: no /proc entry, a zombie, or a different start
// time. An unreadable entry (hidepid, permissions) counts as alive, so nothing is reaped on a
// guess.
bool is_gone(std::int64_t pid, std::uint64_t token) noexcept;

}  // namespace tf::shm::detail
