"""Level-triggered reconcilers of the controller, driven by `ClusterStore.watch`: the key
(kind, namespace, name) is each reconcile's only input; it reads the object and what it
owns, writes only what differs, with the resourceVersion it read, and status last."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tensorfusion.operator.reconcilers.runner import Controller, run_reconcilers
from tensorfusion.operator.reconcilers.used_by_taints import run_used_by_taints

if TYPE_CHECKING:
    from tensorfusion.controller.control_plane import LeaderLoop
    from tensorfusion.controller.flags import ControllerFlags


def leader_loops(flags: ControllerFlags) -> tuple[LeaderLoop, ...]:
    """The reconcilers the controller's leader runs under `flags`, each in a loop of its own:
    the fleet's always, the used-by taints only with progressive migration."""
    migration = (run_used_by_taints,) if flags.nvidia_operator_progressive_migration else ()
    return (run_reconcilers, *migration)


__all__ = ["Controller", "leader_loops", "run_reconcilers", "run_used_by_taints"]
