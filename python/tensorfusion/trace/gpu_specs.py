"""The GPU models a trace names, by code: the codes of Alibaba's openb trace and every model
the project knows (gpu_models.MODELS, by name, product or alias)."""

from __future__ import annotations

from dataclasses import dataclass

from tensorfusion.api.quantity import Quantity
from tensorfusion.errors import ConfigError
from tensorfusion.scheduler.gpu_models import GIB, MODELS, lookup_model


@dataclass(frozen=True)
class GpuSpec:
    """What a fleet needs of a GPU model: its name, the product NVML reports, and capacity."""

    name: str
    product: str
    tflops: Quantity
    vram_bytes: int


def _spec(name: str, product: str, tflops: str, vram_gib: int) -> GpuSpec:
    return GpuSpec(name, product, Quantity.parse(tflops), vram_gib * GIB)


# Dense FP16 tensor-core figures from NVIDIA's datasheets (the P100 has no tensor cores: its
# FP16 rate). G1-G3 are codes the trace's authors did not disclose; they stand in as cards
# of the V100's class. Packing is by each pod's share of a GPU, so the figures only scale
# the absolute amounts.
TRACE_MODELS: tuple[GpuSpec, ...] = (
    _spec("P100", "Tesla P100-PCIE-16GB", "18.7", 16),
    _spec("V100M16", "Tesla V100-SXM2-16GB", "125", 16),
    _spec("V100M32", "Tesla V100-SXM2-32GB", "125", 32),
    _spec("A10", "NVIDIA A10", "125", 24),
    _spec("G1", "G1", "125", 32),
    _spec("G2", "G2", "125", 32),
    _spec("G3", "G3", "125", 32),
)
_BY_CODE = {spec.name.lower(): spec for spec in TRACE_MODELS}


def lookup_spec(code: str) -> GpuSpec:
    """The model a trace names: one of its own codes, else a model the project knows."""
    found = _BY_CODE.get(code.strip().lower())
    if found is not None:
        return found
    try:
        model = lookup_model(code)
    except ConfigError:
        known = ", ".join([*(spec.name for spec in TRACE_MODELS), *(m.name for m in MODELS)])
        raise ConfigError("model", f"unknown GPU model {code!r} (known: {known})") from None
    return GpuSpec(model.name, model.product, model.tflops, model.vram_bytes)
