// NVML's utilization as a share of the worker's slice rather than of the whole device.
//
// NVML reports the percent of the last sample period in which a kernel was running (gpu) and
// device memory was being read or written (memory). A worker paced to a share s of the
// device's busy time has a slice of s: each figure is divided by s and capped at 100, so a
// worker using all of its slice reads 100% (as a process owning a whole GPU would at full
// use), and one using half of it reads 50%. NVML cannot tell whose kernels kept the device
// busy, so other workloads on the same GPU count too: on a shared GPU the figure is an upper
// bound of the worker's own use. A device whose launches are not paced reads as NVML says.
#include <algorithm>
#include <cmath>
#include <optional>

#include "charging.h"

namespace {

unsigned int of_slice(unsigned int percent, double share) {
  const double scaled = std::round(static_cast<double>(percent) / share);
  return static_cast<unsigned int>(std::min(scaled, 100.0));
}

}  // namespace

extern "C" nvmlReturn_t nvmlDeviceGetUtilizationRates(nvmlDevice_t device,
                                                      nvmlUtilization_t* utilization) {
  const auto real = TF_REAL(nvmlDeviceGetUtilizationRates);
  if (real == nullptr) {
    return NVML_ERROR_FUNCTION_NOT_FOUND;
  }
  const nvmlReturn_t result = real(device, utilization);
  if (result != NVML_SUCCESS) {
    return result;
  }
  const tf::shim::Pacer* pacer = tf::shim::state().watched(tf::shim::nvml_ordinal(device));
  if (const std::optional<double> share = pacer ? pacer->paced_share() : std::nullopt) {
    utilization->gpu = of_slice(utilization->gpu, *share);
    utilization->memory = of_slice(utilization->memory, *share);
  }
  return result;
}
