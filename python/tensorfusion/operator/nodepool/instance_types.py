"""The GPU instance types a pool may provision, and what each brings: its GPUs (model, count,
per-GPU TFLOPS and VRAM from the scheduler's model table), its host memory and local disk
(which bound VRAM expansion), and its on-demand price.

Prices are AWS us-east-1 Linux on-demand dollars per hour from the public on-demand price
list; a pool's cost is an estimate from them, not a bill, and overstates nodes on spot
capacity, which costs less."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal

from tensorfusion.api.pool import GPUPoolSpec
from tensorfusion.errors import ConfigError
from tensorfusion.scheduler.gpu_models import GB, GIB, GPUModel, lookup_model

INSTANCE_TYPE_KEY = "node.kubernetes.io/instance-type"
"""The well-known node label (and Karpenter requirement key) naming a node's instance type."""


@dataclass(frozen=True)
class NodeShape:
    """One node of an instance type, as capacity planning counts it."""

    instance_type: str
    gpu_model: str
    gpus: int
    tflops_milli_per_gpu: int
    vram_per_gpu: int
    """Bytes."""
    cost_per_hour: Decimal
    """The on-demand price in dollars per hour: the cost estimate capacity planning and the
    pool's budget use, whatever capacity type the node runs on (spot costs less)."""
    ram_bytes: int
    disk_bytes: int
    """The host's memory and local disk: what its GPUs' VRAM may expand into."""


def _shape(
    instance_type: str,
    model: GPUModel,
    gpus: int,
    cost: str,
    host: tuple[int, int] | None = None,
) -> NodeShape:
    """`host` is (memory GiB, local disk GB); None for the model's own typical server."""
    if host is None:
        assert model.host.instance_type == instance_type, instance_type
        ram_bytes, disk_bytes = model.host.memory_bytes, model.host.disk_bytes
    else:
        ram_bytes, disk_bytes = host[0] * GIB, host[1] * GB
    return NodeShape(
        instance_type=instance_type,
        gpu_model=model.name,
        gpus=gpus,
        tflops_milli_per_gpu=model.tflops.milli_value(),
        vram_per_gpu=model.vram_bytes,
        cost_per_hour=Decimal(cost),
        ram_bytes=ram_bytes,
        disk_bytes=disk_bytes,
    )


_L4, _A10G = lookup_model("L4"), lookup_model("A10G")
_A100, _H100 = lookup_model("A100-40"), lookup_model("H100")
CATALOG: Mapping[str, NodeShape] = {
    shape.instance_type: shape
    for shape in (
        _shape("g6.xlarge", _L4, 1, "0.8048", (16, 250)),
        _shape("g6.2xlarge", _L4, 1, "0.9776", (32, 450)),
        _shape("g6.4xlarge", _L4, 1, "1.3232", (64, 600)),
        _shape("g6.12xlarge", _L4, 4, "4.6016", (192, 3760)),
        _shape("g6.48xlarge", _L4, 8, "13.3504"),
        _shape("g5.xlarge", _A10G, 1, "1.006", (16, 250)),
        _shape("g5.12xlarge", _A10G, 4, "5.672", (192, 3800)),
        _shape("g5.48xlarge", _A10G, 8, "16.288"),
        _shape("p4d.24xlarge", _A100, 8, "32.7726"),
        _shape("p5.48xlarge", _H100, 8, "98.32"),
    )
}
"""By instance type; prices from the public on-demand price list (us-east-1, Linux)."""


def interchangeable(shape: NodeShape, shapes: Sequence[NodeShape]) -> list[str]:
    """`shape`'s instance type, then the other types of `shapes` (in their order) with the
    same GPUs, model and count: a node of any of them brings what the capacity plan counted
    on (more GPUs could pass maxResources)."""
    return [shape.instance_type] + [
        s.instance_type
        for s in shapes
        if s != shape and s.gpu_model == shape.gpu_model and s.gpus == shape.gpus
    ]


def shapes_for(spec: GPUPoolSpec) -> list[NodeShape]:
    """The shapes the pool may provision, in the order its `nodeProvisioner.gpuRequirements`
    name their instance types; ConfigError naming the field when it names none, or names
    one this catalog does not know."""
    provisioner = spec.node_manager_config.node_provisioner
    shapes: list[NodeShape] = []
    for index, requirement in enumerate(provisioner.gpu_requirements if provisioner else ()):
        if requirement.key != INSTANCE_TYPE_KEY or requirement.operator != "In":
            continue
        for value in requirement.values:
            shape = CATALOG.get(value)
            if shape is None:
                raise ConfigError(
                    f"nodeProvisioner.gpuRequirements[{index}].values",
                    f"unknown instance type {value!r} (known: {', '.join(CATALOG)})",
                )
            if shape not in shapes:
                shapes.append(shape)
    if not shapes:
        raise ConfigError(
            "nodeProvisioner.gpuRequirements",
            f"names no instance type: add a requirement {INSTANCE_TYPE_KEY} In [...]",
        )
    return shapes
