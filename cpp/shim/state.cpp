#include "state.h"

#include <pthread.h>

#include <atomic>
#include <mutex>

#include "real.h"

namespace tf::shim {
namespace {

// Never destroyed: threads may still call hooks while the process exits. Published once built,
// so every call after the first is one load (call_once alone costs four TLS lookups a call).
std::atomic<State*> g_state{nullptr};
std::once_flag g_once;
thread_local bool t_initialising = false;

void before_fork() noexcept {
  State& shim = *g_state.load(std::memory_order_relaxed);
  for (Budget& budget : shim.budgets) {
    budget.before_fork();
  }
  shim.ledger.before_fork();
  for (Pacer& pacer : shim.pacers) {
    pacer.before_fork();
  }
}

void after_fork_parent() noexcept {
  State& shim = *g_state.load(std::memory_order_relaxed);
  for (Pacer& pacer : shim.pacers) {
    pacer.after_fork_parent();
  }
  shim.ledger.after_fork_parent();
  for (Budget& budget : shim.budgets) {
    budget.after_fork_parent();
  }
}

void after_fork_child() noexcept {
  State& shim = *g_state.load(std::memory_order_relaxed);
  for (Pacer& pacer : shim.pacers) {
    pacer.after_fork_child();
  }
  shim.ledger.after_fork_child();
  for (Budget& budget : shim.budgets) {
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
    budget.set_env_tiers(config.host_limit, config.disk_limit);
    Paging& paging = built->paging[static_cast<std::size_t>(device)];
    paging.configure(device, budget, built->config.spill_dir);
    built->paging_on = built->paging_on || paging.enabled();
    Pacer& pacer = built->pacers[static_cast<std::size_t>(device)];
    pacer.configure(config.tflops_share, budget);
    built->launches_watched = built->launches_watched || pacer.watched();
  }
  g_state.store(built, std::memory_order_release);
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
  State* ready = g_state.load(std::memory_order_acquire);
  if (ready == nullptr) {
    std::call_once(g_once, initialise);
    ready = g_state.load(std::memory_order_acquire);
  }
  return *ready;
}

bool initialising_here() noexcept { return t_initialising; }

}  // namespace tf::shim
