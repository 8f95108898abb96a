// Names the bindings and messages use for the enums of tf/shm.h, plus argument checks.
#include <cmath>
#include <string>
#include <utility>

#include "tf/shm.h"

namespace tf::shm {

const char* kind_name(Kind kind) noexcept {
  switch (kind) {
    case Kind::device:
      return "device";
    case Kind::managed:
      return "managed";
    case Kind::array:
      return "array";
    case Kind::vmm:
      return "vmm";
  }
  return "?";
}

const char* counter_name(Counter counter) noexcept {
  switch (counter) {
    case Counter::launches:
      return "launches";
    case Counter::throttled_launches:
      return "throttled_launches";
    case Counter::busy_ns:
      return "busy_ns";
    case Counter::pages_evicted:
      return "pages_evicted";
    case Counter::pages_resumed:
      return "pages_resumed";
  }
  return "?";
}

const char* gauge_name(Gauge gauge) noexcept {
  switch (gauge) {
    case Gauge::host:
      return "host_bytes";
    case Gauge::disk:
      return "disk_bytes";
  }
  return "?";
}

const char* status_name(Status status) noexcept {
  switch (status) {
    case Status::ok:
      return "ok";
    case Status::over_limit:
      return "over_limit";
    case Status::over_credit:
      return "over_credit";
    case Status::stale:
      return "stale";
    case Status::full:
      return "full";
    case Status::unrecoverable:
      return "unrecoverable";
  }
  return "?";
}

RegionError::RegionError(Cause cause, std::string path, int error_number,
                         const std::string& message)
    : std::runtime_error(message), cause_(cause), path_(std::move(path)), errno_(error_number) {}

namespace {

void check_tflops(const char* field, double value) {
  if (!std::isfinite(value) || value < 0.0) {
    throw RegionError(RegionError::Cause::argument, "", 0,
                      std::string(field) + ": must be a finite number >= 0, got " +
                          std::to_string(value));
  }
}

}  // namespace

bool tiers_fit(std::uint64_t vram, std::uint64_t host, std::uint64_t disk) noexcept {
  return host <= vram && disk <= vram - host;
}

void validate_limits(const Limits& limits) {
  check_tflops("tflops_limit", limits.tflops_limit);
  check_tflops("tflops_request", limits.tflops_request);
  check_tflops("gpu_peak_tflops", limits.gpu_peak_tflops);
  if (limits.tflops_request > limits.tflops_limit) {
    throw RegionError(RegionError::Cause::argument, "", 0,
                      "tflops_request: must not exceed tflops_limit (" +
                          std::to_string(limits.tflops_request) + " > " +
                          std::to_string(limits.tflops_limit) + ")");
  }
  if (limits.gpu_peak_tflops <= 0.0) {
    throw RegionError(RegionError::Cause::argument, "", 0, "gpu_peak_tflops: must be > 0");
  }
  if (!tiers_fit(limits.vram_bytes, limits.host_bytes, limits.disk_bytes)) {
    throw RegionError(RegionError::Cause::argument, "", 0,
                      "host_bytes, disk_bytes: together must not exceed vram_bytes (" +
                          std::to_string(limits.host_bytes) + " + " +
                          std::to_string(limits.disk_bytes) + " > " +
                          std::to_string(limits.vram_bytes) + ")");
  }
}

}  // namespace tf::shm
