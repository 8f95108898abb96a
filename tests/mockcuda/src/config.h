// The simulated machine, as configured through the MOCKCUDA_* environment variables.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace mockcuda {

constexpr int kMaxDevices = 16;

struct Config {
    int devices = 1;
    uint64_t memory = 16ULL << 30;  // bytes per device
    std::string name = "NVIDIA Mock GPU";
    std::string state_path;
    // The driver's devices: the physical index behind each ordinal (CUDA_VISIBLE_DEVICES).
    // NVML ignores that variable and numbers every device by its physical index.
    std::vector<int> visible;
    double copy_gbps = 25.0;         // host <-> device; device-local copies and memsets 10x
    int64_t copy_latency_ns = 2000;  // added to every copy and memset
    int64_t fail_memcreate_after = -1;  // cuMemCreate calls that succeed; -1: no limit
};

// Reads the environment; on a bad value returns false and names the variable in `error`.
bool load_config(Config& config, std::string& error);

constexpr int kDefaultDriverVersion = 12080;

// MOCKCUDA_DRIVER_VERSION, read once: cuDriverGetVersion and cuGetProcAddress answer before
// cuInit. Unset or malformed: the default (cuInit then fails naming a malformed value).
int driver_version();

// Parses "16Gi", "512Mi", "1G" or a plain byte count; false when malformed or zero.
bool parse_bytes(const char* text, uint64_t& bytes);

}  // namespace mockcuda
