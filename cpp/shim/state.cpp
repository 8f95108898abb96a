#include "state.h"

#include <pthread.h>

#include <mutex>

#include "real.h"

namespace tf::shim {
namespace {

// Never destroyed: threads may still call hooks while the process exits.
State* g_state = nullptr;
std::once_flag g_once;
thread_local bool t_initialising = false;

void before_fork() noexcept {
  for (Budget& budget : g_state->budgets) {
    budget.before_fork();
  }
  g_state->ledger.before_fork();
  for (Pacer& pacer : g_state->pacers) {
    pacer.before_fork();
  }
}

void after_fork_parent() noexcept {
  for (Pacer& pacer : g_state->pacers) {
    pacer.after_fork_parent();
  }
  g_state->ledger.after_fork_parent();
  for (Budget& budget : g_state->budgets) {
    budget.after_fork_parent();
  }
}

void after_fork_child() noexcept {
  for (Pacer& pacer : g_state->pacers) {
    pacer.after_fork_child();
  }
  g_state->ledger.after_fork_child();
  for (Budget& budget : g_state->budgets) {
    budget.after_fork_child();
  }
}

void initialise() {
  t_initialising = true;
  auto* built = new State();
  built->config = read_config();
  resolve_real(built->config);
  for (int device = 0; device < kMaxDevices; ++device) {
    const DeviceConfig& config = built->config.devices[static_cast<std::size_t>(device)];
    Budget& budget = built->budgets[static_cast<std::size_t>(device)];
    budget.configure(device, config.vram_limit, config.shm_path, built->config.worker);
    Pacer& pacer = built->pacers[static_cast<std::size_t>(device)];
    pacer.configure(config.tflops_share, budget);
    built->launches_watched = built->launches_watched || pacer.watched();
  }
  g_state = built;
  pthread_atfork(before_fork, after_fork_parent, after_fork_child);
  t_initialising = false;
}

}  // namespace

Budget* State::enforced(int device) noexcept {
  if (device < 0 || device >= kMaxDevices) {
    return nullptr;
  }
  Budget& budget = budgets[static_cast<std::size_t>(device)];
  return budget.enforcing() ? &budget : nullptr;
}

Pacer* State::watched(int device) noexcept {
  if (device < 0 || device >= kMaxDevices) {
    return nullptr;
  }
  Pacer& pacer = pacers[static_cast<std::size_t>(device)];
  return pacer.watched() ? &pacer : nullptr;
}

State& state() {
  std::call_once(g_once, initialise);
  return *g_state;
}

bool initialising_here() noexcept { return t_initialising; }

}  // namespace tf::shim
