// Every kernel launch path: paged in (paging.h), then gated by the device's pacer. With nothing
// paged or watched the hook adds two flag checks to the real call: no lookup, lock or system
// call.
#include <cstdint>

#include "charging.h"

namespace {

using tf::shim::kMissingReal;

// Names what a launch runs for its cost estimate. A kernel's cost grows with its grid, so each
// grid size of a function is a site of its own (`blocks`; 0 for a graph): one function
// launched at several sizes would otherwise be estimated, and charged, at the size its lowest
// measurements came from.
std::uint64_t site_of(const void* code, std::uint64_t blocks) {
  // The multiplier spreads the sizes of one function over the estimator's table.
  return reinterpret_cast<std::uintptr_t>(code) ^ (blocks * 0x9E3779B97F4A7C15ULL);
}

std::uint64_t block_count(unsigned int gx, unsigned int gy, unsigned int gz) {
  return std::uint64_t{gx} * gy * gz;
}

// Set while this thread is inside a gated launch: a driver whose entry points call each other
// through exported symbols (a _ptsz or cooperative variant calling cuLaunchKernel) comes back
// into a hook, and one launch must be paced and counted once.
TF_SHIM_TLS thread_local bool t_launching = false;

template <typename Launch>
CUresult gated(const void* code, std::uint64_t blocks, CUstream stream, bool per_thread,
               Launch launch) {
  tf::shim::State& shim = tf::shim::state();
  if (!shim.launches_watched || t_launching) {
    return launch();
  }
  tf::shim::Pacer* pacer = shim.watched(tf::shim::launch_device());
  if (pacer == nullptr) {
    return launch();
  }
  t_launching = true;
  const CUresult result = pacer->run(site_of(code, blocks), stream, per_thread, launch);
  t_launching = false;
  return result;
}

CUresult kernel(decltype(&cuLaunchKernel) real, bool per_thread, CUfunction f, unsigned int gx,
                unsigned int gy, unsigned int gz, unsigned int bx, unsigned int by,
                unsigned int bz, unsigned int shared, CUstream stream, void** params,
                void** extra) {
  if (real == nullptr) {
    return kMissingReal;
  }
  const tf::shim::PagedUse paged = tf::shim::page_for_launch(f, params, extra, stream);
  if (paged.result() != CUDA_SUCCESS) {
    return paged.result();
  }
  return gated(f, block_count(gx, gy, gz), stream, per_thread, [&] {
    return real(f, gx, gy, gz, bx, by, bz, shared, stream, params, extra);
  });
}

CUresult kernel_ex(decltype(&cuLaunchKernelEx) real, bool per_thread,
                   const CUlaunchConfig* config, CUfunction f, void** params, void** extra) {
  if (real == nullptr) {
    return kMissingReal;
  }
  if (config == nullptr) {
    return real(config, f, params, extra);  // the driver reports the error
  }
  const tf::shim::PagedUse paged = tf::shim::page_for_launch(f, params, extra, config->hStream);
  if (paged.result() != CUDA_SUCCESS) {
    return paged.result();
  }
  const std::uint64_t size = block_count(config->gridDimX, config->gridDimY, config->gridDimZ);
  return gated(f, size, config->hStream, per_thread,
               [&] { return real(config, f, params, extra); });
}

CUresult cooperative(decltype(&cuLaunchCooperativeKernel) real, bool per_thread, CUfunction f,
                     unsigned int gx, unsigned int gy, unsigned int gz, unsigned int bx,
                     unsigned int by, unsigned int bz, unsigned int shared, CUstream stream,
                     void** params) {
  if (real == nullptr) {
    return kMissingReal;
  }
  const tf::shim::PagedUse paged = tf::shim::page_for_launch(f, params, nullptr, stream);
  if (paged.result() != CUDA_SUCCESS) {
    return paged.result();
  }
  return gated(f, block_count(gx, gy, gz), stream, per_thread,
               [&] { return real(f, gx, gy, gz, bx, by, bz, shared, stream, params); });
}

CUresult graph(decltype(&cuGraphLaunch) real, bool per_thread, CUgraphExec exec,
               CUstream stream) {
  if (real == nullptr) {
    return kMissingReal;
  }
  const tf::shim::PagedUse paged = tf::shim::page_for_graph(stream);
  if (paged.result() != CUDA_SUCCESS) {
    return paged.result();
  }
  return gated(exec, 0, stream, per_thread, [&] { return real(exec, stream); });
}

}  // namespace

extern "C" {

CUresult cuLaunchKernel(CUfunction f, unsigned int gridDimX, unsigned int gridDimY,
                        unsigned int gridDimZ, unsigned int blockDimX, unsigned int blockDimY,
                        unsigned int blockDimZ, unsigned int sharedMemBytes, CUstream hStream,
                        void** kernelParams, void** extra) {
  return kernel(TF_REAL(cuLaunchKernel), false, f, gridDimX, gridDimY, gridDimZ, blockDimX,
                blockDimY, blockDimZ, sharedMemBytes, hStream, kernelParams, extra);
}

CUresult cuLaunchKernel_ptsz(CUfunction f, unsigned int gridDimX, unsigned int gridDimY,
                             unsigned int gridDimZ, unsigned int blockDimX, unsigned int blockDimY,
                             unsigned int blockDimZ, unsigned int sharedMemBytes,
                             CUstream hStream, void** kernelParams, void** extra) {
  return kernel(TF_REAL(cuLaunchKernel_ptsz), true, f, gridDimX, gridDimY, gridDimZ, blockDimX,
                blockDimY, blockDimZ, sharedMemBytes, hStream, kernelParams, extra);
}

CUresult cuLaunchKernelEx(const CUlaunchConfig* config, CUfunction f, void** kernelParams,
                          void** extra) {
  return kernel_ex(TF_REAL(cuLaunchKernelEx), false, config, f, kernelParams, extra);
}

CUresult cuLaunchKernelEx_ptsz(const CUlaunchConfig* config, CUfunction f, void** kernelParams,
                               void** extra) {
  return kernel_ex(TF_REAL(cuLaunchKernelEx_ptsz), true, config, f, kernelParams, extra);
}

CUresult cuLaunchCooperativeKernel(CUfunction f, unsigned int gridDimX, unsigned int gridDimY,
                                   unsigned int gridDimZ, unsigned int blockDimX,
                                   unsigned int blockDimY, unsigned int blockDimZ,
                                   unsigned int sharedMemBytes, CUstream hStream,
                                   void** kernelParams) {
  return cooperative(TF_REAL(cuLaunchCooperativeKernel), false, f, gridDimX, gridDimY, gridDimZ,
                     blockDimX, blockDimY, blockDimZ, sharedMemBytes, hStream, kernelParams);
}

CUresult cuLaunchCooperativeKernel_ptsz(CUfunction f, unsigned int gridDimX,
                                        unsigned int gridDimY, unsigned int gridDimZ,
                                        unsigned int blockDimX, unsigned int blockDimY,
                                        unsigned int blockDimZ, unsigned int sharedMemBytes,
                                        CUstream hStream, void** kernelParams) {
  return cooperative(TF_REAL(cuLaunchCooperativeKernel_ptsz), true, f, gridDimX, gridDimY,
                     gridDimZ, blockDimX, blockDimY, blockDimZ, sharedMemBytes, hStream,
                     kernelParams);
}

CUresult cuGraphLaunch(CUgraphExec hGraphExec, CUstream hStream) {
  return graph(TF_REAL(cuGraphLaunch), false, hGraphExec, hStream);
}

CUresult cuGraphLaunch_ptsz(CUgraphExec hGraphExec, CUstream hStream) {
  return graph(TF_REAL(cuGraphLaunch_ptsz), true, hGraphExec, hStream);
}

}  // extern "C"
