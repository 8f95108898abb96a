"""What one pod takes from each GPU it is given, in the units of the allocator's arrays:
milli-TFLOPS and bytes. A compute-percent request becomes TFLOPS only once the GPU is known."""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from tensorfusion.api.annotations import WorkloadRequest
from tensorfusion.scheduler.gpu_fit import GpuFitRequest

PPM = 1_000_000
"""Percentages are carried as parts per million of the GPU's TFLOPS, so that the native
kernel and Python agree to the milli-TFLOPS without floating point."""


@dataclass(frozen=True, slots=True)
class GpuDemand:
    """Per-GPU amounts of one request. TFLOPS fields are ignored where the percent fields
    are set (>= 0)."""

    tflops_request: int
    tflops_limit: int
    vram_request: int
    vram_limit: int
    percent_request_ppm: int = -1
    percent_limit_ppm: int = -1
    gpu_count: int = 1

    def fit_request(self, **placement: Any) -> GpuFitRequest:
        """The fit kernel's request for this demand; `placement` gives the rest (pool,
        model, mode, weights)."""
        return GpuFitRequest(
            tflops_request=self.tflops_request,
            tflops_limit=self.tflops_limit,
            vram_request=self.vram_request,
            vram_limit=self.vram_limit,
            percent_request_ppm=self.percent_request_ppm,
            percent_limit_ppm=self.percent_limit_ppm,
            gpu_count=self.gpu_count,
            **placement,
        )

    def tflops_on(self, capacity_milli: int) -> tuple[int, int]:
        """The (request, limit) in milli-TFLOPS on a GPU of the given capacity."""
        if self.percent_request_ppm < 0:
            return self.tflops_request, self.tflops_limit
        return (
            percent_of(capacity_milli, self.percent_request_ppm),
            percent_of(capacity_milli, self.percent_limit_ppm),
        )


def percent_of(capacity_milli: int, ppm: int) -> int:
    """ceil(capacity x ppm / 1e6): a share never rounds down to less than was asked."""
    return -(-capacity_milli * ppm // PPM)


def _ppm(percent: Fraction) -> int:
    return math.ceil(percent * (PPM // 100))


def demand_of(request: WorkloadRequest) -> GpuDemand:
    """The per-GPU demand of a parsed request. Unset TFLOPS or VRAM mean none reserved."""
    percent_mode = request.tflops_limit is None and request.compute_percent_limit is not None
    return GpuDemand(
        tflops_request=request.tflops_request.milli_value() if request.tflops_request else 0,
        tflops_limit=request.tflops_limit.milli_value() if request.tflops_limit else 0,
        vram_request=request.vram_request or 0,
        vram_limit=request.vram_limit or 0,
        percent_request_ppm=(
            _ppm(request.compute_percent_request)
            if percent_mode and request.compute_percent_request is not None
            else -1
        ),
        percent_limit_ppm=(
            _ppm(request.compute_percent_limit)
            if percent_mode and request.compute_percent_limit is not None
            else -1
        ),
        gpu_count=request.gpu_count,
    )
