// Which device a call concerns: the calling thread's current one, or an NVML handle's.
#pragma once

#include "cuda_abi.h"

namespace tf::shim {

// The device of the calling thread's current context, or -1 (nothing is charged to -1).
int current_device() noexcept;
// current_device() for a launch, which must not cost a driver call each time: with a single
// visible device every context is on it.
int launch_device() noexcept;
// The CUDA ordinal of an NVML handle: its NVML index (both enumerate the visible GPUs), or -1.
int nvml_ordinal(nvmlDevice_t device) noexcept;

}  // namespace tf::shim
