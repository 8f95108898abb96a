#!/usr/bin/env bash
# The one check to run on a machine with a real NVIDIA GPU (and PyTorch; nvcc when present):
# builds and installs the package with its shim, then prints one table of what the shim
# holds a real workload to: VRAM limits (CUDA C++ and PyTorch, and the three memory queries
# agreeing), TFLOPS limit accuracy (one process at 10..90%, two at 30/70), the overhead
# of the shim when no limit binds, and VRAM tiering (a training run paged to host memory
# reaching the unlimited run's loss, page-in bandwidth from host memory and from disk).
# Finishes in a few minutes.
set -euo pipefail
cd "$(dirname "$0")/../.."

command -v nvidia-smi >/dev/null || { echo "no nvidia-smi: this check needs an NVIDIA GPU" >&2; exit 2; }
# The machine may have no network: use the build tools already installed when there are any.
python3 -m pip install --quiet --no-build-isolation . >/dev/null 2>&1 \
  || python3 -m pip install --quiet . >/dev/null
python3 -m pip install --quiet nvidia-ml-py >/dev/null 2>&1 || true
exec python3 bench/gpu/gpu_check.py "$@"
