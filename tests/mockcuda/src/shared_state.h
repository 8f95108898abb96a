// What all processes using the simulated GPUs share, in one mmap'ed file: the device memory
// each process holds (a slot per process, so a killed process's memory is reclaimed) and each
// device's timeline (when it is busy until, and the recent busy intervals for utilization).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace mockcuda {

int64_t now_ns();                    // CLOCK_MONOTONIC: one clock for every process
void sleep_until_ns(int64_t when);  // returns at once when `when` has passed

struct SharedLayout;

class SharedState {
public:
    // Maps (creating or repairing when needed) the file at `path`; with `charges`, claims a
    // slot for this process's memory (a reader such as NVML needs none). Device n of every
    // call below is the physical device devices[n]. nullptr with a message in `error` when the
    // file cannot be used.
    static std::unique_ptr<SharedState> open(const std::string& path, bool charges,
                                             std::vector<int> devices, std::string& error);
    ~SharedState();  // unmaps; the slot stays claimed until release()

    SharedState(const SharedState&) = delete;
    SharedState& operator=(const SharedState&) = delete;

    // Adds `bytes` to this process's usage (only with a slot) of `device` unless every process together would
    // then exceed `total`; false (and nothing charged) in that case.
    bool charge(int device, uint64_t bytes, uint64_t total);
    void uncharge(int device, uint64_t bytes);
    uint64_t used(int device);  // by all live processes

    // Queues `duration_ns` of work on the device's timeline at `now`: it starts when the
    // device is free (or now) and the returned time is when it completes.
    int64_t enqueue(int device, int64_t now, int64_t duration_ns);
    // Fraction of [now - window, now] during which the device was busy.
    double utilization(int device, int64_t window_ns);

    void release();  // frees this process's slot (at exit)

private:
    SharedState(SharedLayout* layout, int slot, std::vector<int> devices)
        : layout_(layout), slot_(slot), devices_(std::move(devices)) {}
    int physical(int device) const { return devices_[static_cast<size_t>(device)]; }
    SharedLayout* layout_;
    int slot_;
    std::vector<int> devices_;
};

}  // namespace mockcuda
