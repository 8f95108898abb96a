// Identity of a simulated device, the same through the driver API and NVML.
#pragma once

#include <array>
#include <string>

namespace mockcuda {

std::array<unsigned char, 16> device_uuid(int device);
std::string device_uuid_string(int device);  // NVML's "GPU-xxxxxxxx-xxxx-..." form

}  // namespace mockcuda
