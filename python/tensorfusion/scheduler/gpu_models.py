"""Published figures of common NVIDIA GPUs, and the server each typically comes in.

TFLOPS are dense BF16 tensor-core figures from NVIDIA's datasheets (FP16 for the T4, which
has no BF16; FP16 with FP32 accumulate for the RTX 4090); datasheets also quote twice as
much "with sparsity", which no ordinary workload gets. VRAM is in GiB: the "80GB" of a
datasheet is what nvidia-smi reports as about 80 GiB, not 80e9 bytes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from tensorfusion.api.quantity import Quantity
from tensorfusion.errors import ConfigError

FormFactor = Literal["SXM", "PCIe"]
GIB = 1024**3
GB = 1000**3


@dataclass(frozen=True)
class HostShape:
    """A typical server (cloud instance) with eight of the GPU."""

    instance_type: str
    cpu_cores: int
    """Kubernetes CPUs (vCPUs)."""
    memory_bytes: int
    disk_bytes: int
    """Local NVMe, where VRAM may spill to."""


@dataclass(frozen=True)
class GPUModel:
    name: str
    product: str
    """The name NVML reports (and GPU feature discovery puts in `nvidia.com/gpu.product`)."""
    aliases: tuple[str, ...]
    tflops: Quantity
    vram_bytes: int
    form_factor: FormFactor
    """SXM boards are wired to each other with NVLink; PCIe cards here are not."""
    host: HostShape

    @property
    def nvlink(self) -> bool:
        return self.form_factor == "SXM"

    @property
    def names(self) -> tuple[str, ...]:
        return (self.name, self.product, *self.aliases)


MODELS: tuple[GPUModel, ...] = (
    GPUModel(
        name="A100-40",
        product="NVIDIA A100-SXM4-40GB",
        aliases=("A100-40GB", "A100-SXM4-40GB", "A100 40GB"),
        tflops=Quantity.parse("312"),
        vram_bytes=40 * GIB,
        form_factor="SXM",
        host=HostShape("p4d.24xlarge", 96, 1152 * GIB, 8 * 1000 * GB),
    ),
    GPUModel(
        name="A100-80",
        product="NVIDIA A100-SXM4-80GB",
        aliases=("A100-80GB", "A100-SXM4-80GB", "A100 80GB"),
        tflops=Quantity.parse("312"),
        vram_bytes=80 * GIB,
        form_factor="SXM",
        host=HostShape("p4de.24xlarge", 96, 1152 * GIB, 8 * 1000 * GB),
    ),
    GPUModel(
        name="H100",
        product="NVIDIA H100 80GB HBM3",
        aliases=("H100-SXM", "H100-SXM5", "H100-80GB", "H100 SXM"),
        tflops=Quantity.parse("989"),
        vram_bytes=80 * GIB,
        form_factor="SXM",
        host=HostShape("p5.48xlarge", 192, 2048 * GIB, 8 * 3840 * GB),
    ),
    GPUModel(
        name="H100-PCIe",
        product="NVIDIA H100 PCIe",
        aliases=("H100 PCIe", "H100-PCIe-80GB"),
        tflops=Quantity.parse("756"),
        vram_bytes=80 * GIB,
        form_factor="PCIe",
        host=HostShape("gpu-8x-h100-pcie", 128, 1024 * GIB, 4 * 3840 * GB),
    ),
    GPUModel(
        name="H200",
        product="NVIDIA H200",
        aliases=("H200-SXM", "H200-141GB", "H200 SXM"),
        tflops=Quantity.parse("989"),
        vram_bytes=141 * GIB,
        form_factor="SXM",
        host=HostShape("p5en.48xlarge", 192, 2048 * GIB, 8 * 3840 * GB),
    ),
    GPUModel(
        name="A10G",
        product="NVIDIA A10G",
        aliases=("A10G-24GB",),
        # AWS's variant of the A10 (g5 instances), with a lower dense FP16 tensor-core figure.
        tflops=Quantity.parse("70"),
        vram_bytes=24 * GIB,
        form_factor="PCIe",
        host=HostShape("g5.48xlarge", 192, 768 * GIB, 7600 * GB),
    ),
    GPUModel(
        name="L4",
        product="NVIDIA L4",
        aliases=("L4-24GB",),
        tflops=Quantity.parse("121"),
        vram_bytes=24 * GIB,
        form_factor="PCIe",
        host=HostShape("g6.48xlarge", 192, 768 * GIB, 8 * 7520 * GB),
    ),
    GPUModel(
        name="L40S",
        product="NVIDIA L40S",
        aliases=("L40S-48GB",),
        tflops=Quantity.parse("362"),
        vram_bytes=48 * GIB,
        form_factor="PCIe",
        host=HostShape("g6e.48xlarge", 192, 1536 * GIB, 7600 * GB),
    ),
    GPUModel(
        name="RTX4090",
        product="NVIDIA GeForce RTX 4090",
        aliases=("RTX 4090", "RTX-4090", "GeForce RTX 4090", "4090"),
        tflops=Quantity.parse("165"),
        vram_bytes=24 * GIB,
        form_factor="PCIe",
        host=HostShape("gpu-8x-rtx4090", 128, 512 * GIB, 2 * 3840 * GB),
    ),
    GPUModel(
        name="T4",
        product="Tesla T4",
        aliases=("NVIDIA T4", "T4-16GB"),
        tflops=Quantity.parse("65"),
        vram_bytes=16 * GIB,
        form_factor="PCIe",
        host=HostShape("g4dn.metal", 96, 384 * GIB, 2 * 900 * GB),
    ),
)
_BY_NAME = {name.lower(): model for model in MODELS for name in model.names}


def lookup_model(name: str) -> GPUModel:
    """The model with this name, product name or alias, in any letter case."""
    model = _BY_NAME.get(name.strip().lower())
    if model is None:
        known = ", ".join(model.name for model in MODELS)
        raise ConfigError("model", f"unknown GPU model {name!r} (known: {known})")
    return model
