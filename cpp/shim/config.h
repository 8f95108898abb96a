// The shim's settings, read from the environment once at initialisation (the hot path never
// calls getenv). python/tensorfusion/shim.py documents every variable.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>

namespace tf::shim {

// Devices (CUDA ordinals) that can carry their own settings through a "_<ordinal>" suffix.
inline constexpr int kMaxDevices = 32;

struct DeviceConfig {
  std::optional<std::uint64_t> vram_limit;  // TF_VRAM_LIMIT[_<d>], bytes
  // TF_VRAM_HOST_LIMIT[_<d>] / TF_VRAM_DISK_LIMIT[_<d>]: the parts of vram_limit that may be
  // paged out (0 when unset or malformed).
  std::uint64_t host_limit = 0;
  std::uint64_t disk_limit = 0;
  std::string shm_path;                     // TF_SHM_PATH_<d> (device 0: or TF_SHM_PATH)
  // TF_TFLOPS_LIMIT[_<d>] / TF_GPU_PEAK_TFLOPS[_<d>] when below 1: the share of busy time
  // launches are paced to. Unset, malformed or at least the peak: not paced.
  std::optional<double> tflops_share;
};

struct Config {
  std::string worker;        // TF_WORKER_NAME, empty: not checked
  std::string real_libcuda;  // TF_REAL_LIBCUDA
  std::string real_libnvml;  // TF_REAL_LIBNVML
  std::string spill_dir;     // TF_VRAM_SPILL_DIR, empty: no disk tier
  std::array<DeviceConfig, kMaxDevices> devices;
};

// Reads the environment. A malformed value is reported in one stderr line naming the variable
// and what is done instead, and is otherwise ignored.
Config read_config();

}  // namespace tf::shim
