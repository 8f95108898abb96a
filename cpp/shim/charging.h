// The allocation and free paths' shared steps: charge before the real allocator runs, record
// what was charged, credit exactly that on the matching free.
#pragma once

#include <cstdint>
#include <optional>

#include "devices.h"
#include "hooks.h"
#include "ledger.h"
#include "real.h"
#include "state.h"

namespace tf::shim {

// Charges `record` to its device, then runs `allocate(key, record)`, which names the new
// allocation in `key` and may grow `record` (charging the growth itself). Over the limit the
// real allocator never runs; if it fails, the bytes are given back.
template <typename Allocate>
CUresult charged(Space space, Record record, Allocate allocate) {
  State& shim = state();
  std::uint64_t key = 0;
  Budget* budget = shim.enforced(record.device);
  if (budget == nullptr) {
    return allocate(key, record);
  }
  if (!budget->try_charge(record.kind, record.bytes)) {
    return CUDA_ERROR_OUT_OF_MEMORY;
  }
  const std::uint64_t first = record.bytes;
  const CUresult result = allocate(key, record);
  if (result == CUDA_SUCCESS) {
    shim.ledger.remember(space, key, record);
  } else {
    budget->credit(record.kind, first);
  }
  return result;
}

// Runs `release()` with the record of `key` out of the ledger, then `settle(record)` if it
// succeeded, or puts the record back if it failed. Taken out before the real call: once that
// returns, another thread may get the same key.
template <typename Release, typename Settle>
CUresult unrecorded(Space space, std::uint64_t key, Release release, Settle settle) {
  Ledger& ledger = state().ledger;
  const std::optional<Record> record = ledger.forget(space, key);
  const CUresult result = release();
  if (record && result == CUDA_SUCCESS) {
    settle(*record);
  } else if (record) {
    ledger.remember(space, key, *record);
  }
  return result;
}

// Runs `release()` for the allocation `key` and credits what it was charged.
template <typename Release>
CUresult released(Space space, std::uint64_t key, Release release) {
  return unrecorded(space, key, release, [](const Record& record) {
    state().budgets[static_cast<std::size_t>(record.device)].credit(record.kind, record.bytes);
  });
}

// An allocate step for charged(): `call()` and, on success, the key read from `*out`.
template <typename Out, typename Call>
auto storing(Out* out, Call call) {
  return [out, call](std::uint64_t& key, Record&) {
    const CUresult result = call();
    if (result == CUDA_SUCCESS) {
      if constexpr (std::is_pointer_v<Out>) {
        key = reinterpret_cast<std::uintptr_t>(*out);
      } else {
        key = static_cast<std::uint64_t>(*out);
      }
    }
    return result;
  };
}

}  // namespace tf::shim
