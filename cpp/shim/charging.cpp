#include "charging.h"

namespace tf::shim {

int current_device() noexcept {
  const cuCtxGetDevice_fn get = plain().cuCtxGetDevice;
  CUdevice device = -1;
  return (get != nullptr && get(&device) == CUDA_SUCCESS) ? device : -1;
}

}  // namespace tf::shim
