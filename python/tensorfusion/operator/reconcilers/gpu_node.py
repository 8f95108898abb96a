"""GPUNode and GPU status: each GPU's available capacity (virtual capacity by the pool's
oversubscription, minus the limits of the pods whose `gpu-ids` name it), and the node's
totals and phase. The numbers come from the scheduler's own cluster state built over this
node alone, so the capacity rule and the reading of pod annotations are the scheduler's."""

from __future__ import annotations

from tensorfusion.api.gpu_links import OWNER_LABEL, text_at
from tensorfusion.operator.reconcilers.context import Context
from tensorfusion.operator.reconcilers.work_queue import Key, Result
from tensorfusion.scheduler.cluster_state import ClusterState
from tensorfusion.scheduler.fleet import Fleet
from tensorfusion.scheduler.fleet_generator import capacity_status

NOT_COUNTED = "NotCounted"


def reconcile_gpu_node(ctx: Context, key: Key) -> Result:
    gpu_node = ctx.cache.get("GPUNode", key.name)
    if gpu_node is None:
        return Result()
    node = ctx.cache.get("Node", key.name)
    gpus = ctx.cache.children("GPU", key.name)
    pool = ctx.cache.get("GPUPool", text_at(gpu_node, "metadata", "labels", OWNER_LABEL) or "")
    state, report = ClusterState.build(
        Fleet(
            nodes=[node] if node is not None else [],
            gpu_nodes=[gpu_node],
            gpus=gpus,
            pools=[pool] if pool is not None else [],
            pods=ctx.cache.children("Pod", key.name),
        )
    )
    arrays = state.gpus.arrays()
    totals = [0, 0, 0, 0, 0, 0]
    counted = 0
    for gpu in gpus:
        index = state.gpus.index_of.get(gpu["metadata"]["name"])
        if index is None:
            continue  # not taken in: the reason is in state.problems, a condition below
        counted += 1
        amounts = (
            int(arrays.tflops_capacity[index]),
            int(arrays.vram_capacity[index]),
            int(arrays.tflops_virtual[index]),
            int(arrays.vram_virtual[index]),
            int(arrays.tflops_virtual[index] - arrays.tflops_limited[index]),
            int(arrays.vram_virtual[index] - arrays.vram_limited[index]),
        )
        totals = [total + amount for total, amount in zip(totals, amounts, strict=True)]
        available = capacity_status(amounts[0:2], amounts[2:4], amounts[4:6])
        ctx.write_status(
            gpu,
            {
                "available": {
                    "tflops": available["availableTFlops"],
                    "vram": available["availableVRAM"],
                }
            },
        )
    phase = "Running" if node is not None and gpus and counted == len(gpus) else "Pending"
    conditions = [
        {"type": "Ready", "status": "False", "reason": NOT_COUNTED, "message": problem}
        for problem in [*state.problems, *report.problems()]
    ]
    ctx.write_status(
        gpu_node,
        {
            **capacity_status(
                (totals[0], totals[1]), (totals[2], totals[3]), (totals[4], totals[5])
            ),
            "phase": phase,
            "totalGPUs": len(gpus),
            "managedGPUs": counted,
            "conditions": conditions,
        },
    )
    return Result()
