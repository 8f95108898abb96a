"""The `LD_PRELOAD` shim (`libtfshim.so`, built from cpp/shim) and the environment it reads.

The shim reads its environment once, on the first CUDA or NVML call it intercepts. A malformed
value costs one line on stderr naming the variable and what is done instead; the workload
always runs. Per-device settings take a `_<ordinal>` suffix (CUDA device ordinal):
`TF_VRAM_LIMIT_1` overrides `TF_VRAM_LIMIT` for device 1.

What the workload sees of a limited device:

- Memory: `cuMemGetInfo`, `cuDeviceTotalMem` and NVML's memory info report a device whose total
  is the VRAM limit and whose used memory is the worker's (all of its processes on that GPU).
- Utilization: on a device whose launches are paced to a share `s` of its busy time
  (TF_TFLOPS_LIMIT / TF_GPU_PEAK_TFLOPS, or the region's), `nvmlDeviceGetUtilizationRates`
  reports both of its percentages divided by `s`, rounded and capped at 100: utilization in
  units of the worker's slice, so a worker using all of its slice reads 100% as a process
  owning the whole GPU would at full use. NVML cannot tell whose kernels kept the device busy,
  so on a GPU shared with other workloads the figure is an upper bound of the worker's own
  use. A device that is not paced reports NVML's figures unchanged.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

from tensorfusion.errors import TensorFusionError

SHIM_FILENAME = "libtfshim.so"


@dataclass(frozen=True)
class ShimVariable:
    name: str
    unit: str
    default: str
    per_device: bool
    meaning: str


SHIM_ENV: tuple[ShimVariable, ...] = (
    ShimVariable(
        "TF_VRAM_LIMIT",
        "bytes: an integer or a Kubernetes quantity (8Gi, 1.5G, 2e9)",
        "none (VRAM not limited)",
        True,
        "VRAM the process may allocate per device, when no region is joined; memory queries "
        "report it as the device's total",
    ),
    ShimVariable(
        "TF_SHM_PATH",
        "path",
        "none",
        True,
        "the worker's shared region for a device (unsuffixed: device 0); its limit is shared "
        "by all of the worker's processes and replaces TF_VRAM_LIMIT. If it cannot be joined, "
        "TF_VRAM_LIMIT is enforced within the process",
    ),
    ShimVariable(
        "TF_VRAM_HOST_LIMIT",
        "bytes: an integer or a Kubernetes quantity",
        "0 (nothing paged to host memory)",
        True,
        "the part of TF_VRAM_LIMIT that may be paged out to pinned host memory, when no region "
        "is joined (a joined region's host limit replaces it). With this or TF_VRAM_DISK_LIMIT "
        "above 0 the process may allocate up to TF_VRAM_LIMIT while at most TF_VRAM_LIMIT minus "
        "both stays in VRAM; the rest is paged back before a kernel or copy uses it",
    ),
    ShimVariable(
        "TF_VRAM_DISK_LIMIT",
        "bytes: an integer or a Kubernetes quantity",
        "0 (nothing paged to disk)",
        True,
        "the part of TF_VRAM_LIMIT that may be paged out to a file in TF_VRAM_SPILL_DIR, when "
        "no region is joined (a joined region's disk limit replaces it)",
    ),
    ShimVariable(
        "TF_VRAM_SPILL_DIR",
        "path of a directory on local disk",
        "none (no disk tier)",
        False,
        "where the disk tier's file is made (tf-spill-<pid>-<device>-*, unlinked as soon as it "
        "is open, so it never outlives the process)",
    ),
    ShimVariable(
        "TF_TFLOPS_LIMIT",
        "TFLOPS: a positive number",
        "none (launches not paced)",
        True,
        "kernel launches are paced so the process's share of GPU busy time tracks "
        "TF_TFLOPS_LIMIT / TF_GPU_PEAK_TFLOPS; at or above the peak nothing is paced. A joined "
        "region's TFLOPS limit and peak replace both, and changes to them apply while running",
    ),
    ShimVariable(
        "TF_GPU_PEAK_TFLOPS",
        "TFLOPS: a positive number",
        "none (launches not paced)",
        True,
        "the GPU's peak, the denominator of the paced share; a malformed TF_TFLOPS_LIMIT or "
        "TF_GPU_PEAK_TFLOPS turns pacing off for the devices it applies to",
    ),
    ShimVariable(
        "TF_WORKER_NAME",
        "name",
        "none (not checked)",
        False,
        "a region naming another worker is not joined",
    ),
    ShimVariable(
        "TF_REAL_LIBCUDA", "library name or path", "libcuda.so.1", False, "the real driver"
    ),
    ShimVariable(
        "TF_REAL_LIBNVML", "library name or path", "libnvidia-ml.so.1", False, "the real NVML"
    ),
)


def shim_path() -> Path:
    """The installed libtfshim.so, for `LD_PRELOAD`: the build installs it beside the extension
    module, which an editable install keeps apart from these sources."""
    native = importlib.util.find_spec("tensorfusion._native")
    where = Path(native.origin).parent if native and native.origin else Path(__file__).parent
    path = where.resolve() / SHIM_FILENAME
    if not path.is_file():
        raise TensorFusionError(
            f"{SHIM_FILENAME}: not found at {path}; the package was installed without its native "
            "part (reinstall with `pip install .` from the source tree to build it)"
        )
    return path
