// Which device a call concerns: the calling thread's current one, or an NVML handle's.
#pragma once

#include "cuda_abi.h"

namespace tf::shim {

// The device of the calling thread's current context, or -1 (nothing is charged to -1).
int current_device() noexcept;
// current_device() for a launch, which must not cost a driver call each time: with a single
// visible device every context is on it.
int launch_device() noexcept;
// The CUDA ordinal of an NVML handle, matched by UUID: NVML numbers every GPU of the machine,
// the driver only the visible ones (CUDA_VISIBLE_DEVICES), so their indices differ. -1 for a
// GPU this process cannot use, and while the driver is not initialised here (the shim never
// initialises it: a process may read NVML first precisely so that it can still fork).
int nvml_ordinal(nvmlDevice_t device) noexcept;

}  // namespace tf::shim
