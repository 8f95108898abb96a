// The shim's process-wide state, built once on the first hooked call.
#pragma once

#include <array>

#include "budget.h"
#include "config.h"
#include "ledger.h"
#include "pacer.h"
#include "paging.h"
#include "real.h"

namespace tf::shim {

struct State {
  Config config;
  std::array<Budget, kMaxDevices> budgets;
  Ledger ledger;
  std::array<Pacer, kMaxDevices> pacers;
  bool launches_watched = false;  // any pacer watched: launches need their device looked up
  std::array<Paging, kMaxDevices> paging;
  bool paging_on = false;  // any device pages: allocations, launches and copies consult it

  // The budget of `device` if its allocations are charged, else null.
  Budget* enforced(int device) noexcept;
  // The pacer of `device` if its launches are counted or paced, else null.
  Pacer* watched(int device) noexcept;
};

// Reads the config, resolves the real libraries and joins the regions on first use.
State& state();

// Whether the calling thread is inside state()'s initialisation (its dlopen of the driver may
// call dlsym, which must then pass through rather than wait for the initialisation).
bool initialising_here() noexcept;

// The real function behind `hook`, initialising first if needed.
inline void* real_of(Hook hook) {
  state();
  return real_fn(hook);
}

}  // namespace tf::shim

// The real counterpart of hook `name`, typed with the hook's own C signature (null if absent).
#define TF_REAL(name) \
  (reinterpret_cast<decltype(&::name)>(::tf::shim::real_of(::tf::shim::Hook::name)))
