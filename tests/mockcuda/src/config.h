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
};

// Reads the environment; on a bad value returns false and names the variable in `error`.
bool load_config(Config& config, std::string& error);

// Parses "16Gi", "512Mi", "1G" or a plain byte count; false when malformed or zero.
bool parse_bytes(const char* text, uint64_t& bytes);

}  // namespace mockcuda
