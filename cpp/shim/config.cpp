#include "config.h"

#include <cmath>
#include <cstdlib>
#include <string>

#include "log.h"
#include "quantity.h"

namespace tf::shim {
namespace {

const char* env(const std::string& name) {
  const char* value = std::getenv(name.c_str());
  return (value != nullptr && value[0] != '\0') ? value : nullptr;
}

// The VRAM limit in `name`, or `fallback` when it is unset or malformed (malformed: one line).
std::optional<std::uint64_t> vram_limit(const std::string& name,
                                        std::optional<std::uint64_t> fallback) {
  const char* text = env(name);
  if (text == nullptr) {
    return fallback;
  }
  if (const std::optional<std::uint64_t> bytes = parse_bytes(text)) {
    return bytes;
  }
  warn(name + "=\"" + text + "\" is not a byte count (e.g. 8589934592 or 8Gi); " +
       (fallback ? "using TF_VRAM_LIMIT instead" : "no VRAM limit from the environment"));
  return fallback;
}

// A paged tier's share of the limit: `name`'s bytes, else the unsuffixed value; malformed: one
// line and nothing paged there.
std::uint64_t tier_limit(const std::string& name, std::uint64_t fallback) {
  const char* text = env(name);
  if (text == nullptr) {
    return fallback;
  }
  if (const std::optional<std::uint64_t> bytes = parse_bytes(text)) {
    return *bytes;
  }
  warn(name + "=\"" + text + "\" is not a byte count (e.g. 8Gi); nothing is paged there");
  return 0;
}

// A device's TFLOPS settings: from its suffixed variables, else the unsuffixed ones.
struct Tflops {
  std::optional<double> limit;
  std::optional<double> peak;
  bool malformed = false;  // a malformed value turns pacing off rather than guessing
};

// Overrides `value` with the positive, finite number in `name` if set; malformed: one line.
void read_tflops(const std::string& name, std::optional<double>& value, bool& malformed) {
  const char* text = env(name);
  if (text == nullptr) {
    return;
  }
  char* end = nullptr;
  const double parsed = std::strtod(text, &end);
  if (*end != '\0' || !std::isfinite(parsed) || parsed <= 0.0) {
    warn(name + "=\"" + text + "\" is not a positive number of TFLOPS; launches are not paced");
    malformed = true;
    return;
  }
  value = parsed;
}

Tflops tflops(const std::string& suffix, Tflops inherited) {
  read_tflops("TF_TFLOPS_LIMIT" + suffix, inherited.limit, inherited.malformed);
  read_tflops("TF_GPU_PEAK_TFLOPS" + suffix, inherited.peak, inherited.malformed);
  return inherited;
}

std::optional<double> paced_share(const Tflops& settings) {
  if (settings.malformed || !settings.limit || !settings.peak ||
      *settings.limit >= *settings.peak) {
    return std::nullopt;
  }
  return *settings.limit / *settings.peak;
}

std::string text_or(const std::string& name, const std::string& fallback) {
  const char* text = env(name);
  return text != nullptr ? std::string(text) : fallback;
}

}  // namespace

Config read_config() {
  Config config;
  config.worker = text_or("TF_WORKER_NAME", "");
  config.real_libcuda = text_or("TF_REAL_LIBCUDA", "libcuda.so.1");
  config.real_libnvml = text_or("TF_REAL_LIBNVML", "libnvidia-ml.so.1");
  config.spill_dir = text_or("TF_VRAM_SPILL_DIR", "");
  const std::uint64_t every_host = tier_limit("TF_VRAM_HOST_LIMIT", 0);
  const std::uint64_t every_disk = tier_limit("TF_VRAM_DISK_LIMIT", 0);
  const std::optional<std::uint64_t> every_vram = vram_limit("TF_VRAM_LIMIT", std::nullopt);
  const std::string device0_shm = text_or("TF_SHM_PATH", "");
  const Tflops every_tflops = tflops("", Tflops{});
  for (int device = 0; device < kMaxDevices; ++device) {
    const std::string suffix = "_" + std::to_string(device);
    DeviceConfig& out = config.devices[static_cast<std::size_t>(device)];
    out.vram_limit = vram_limit("TF_VRAM_LIMIT" + suffix, every_vram);
    out.host_limit = tier_limit("TF_VRAM_HOST_LIMIT" + suffix, every_host);
    out.disk_limit = tier_limit("TF_VRAM_DISK_LIMIT" + suffix, every_disk);
    // A region is one worker on one GPU, so the unsuffixed path names device 0's.
    out.shm_path = text_or("TF_SHM_PATH" + suffix, device == 0 ? device0_shm : "");
    out.tflops_share = paced_share(tflops(suffix, every_tflops));
  }
  return config;
}

}  // namespace tf::shim
