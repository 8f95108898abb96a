// The synchronisation calls: after the workload has waited for its work, the launches it
// waited for are measured and the waiting thread's tally of fast-path launches is reported, so
// the counters hold them now rather than after that thread's next launch (which may never come:
// the last step of a job, a process about to idle). Other threads' tallies are not touched:
// each reports its own.
#include "devices.h"
#include "real.h"
#include "state.h"

namespace {

using tf::shim::kMissingReal;

template <typename Wait>
CUresult collected_after(Wait wait) {
  const CUresult result = wait();
  tf::shim::State& shim = tf::shim::state();
  if (result == CUDA_SUCCESS && shim.launches_watched) {
    if (tf::shim::Pacer* pacer = shim.watched(tf::shim::launch_device())) {
      pacer->collect();
    }
  }
  return result;
}

}  // namespace

extern "C" {

CUresult cuCtxSynchronize(void) {
  const auto real = TF_REAL(cuCtxSynchronize);
  return real == nullptr ? kMissingReal : collected_after([&] { return real(); });
}

CUresult cuStreamSynchronize(CUstream hStream) {
  const auto real = TF_REAL(cuStreamSynchronize);
  return real == nullptr ? kMissingReal : collected_after([&] { return real(hStream); });
}

CUresult cuStreamSynchronize_ptsz(CUstream hStream) {
  const auto real = TF_REAL(cuStreamSynchronize_ptsz);
  return real == nullptr ? kMissingReal : collected_after([&] { return real(hStream); });
}

CUresult cuEventSynchronize(CUevent hEvent) {
  const auto real = TF_REAL(cuEventSynchronize);
  return real == nullptr ? kMissingReal : collected_after([&] { return real(hEvent); });
}

}  // extern "C"
