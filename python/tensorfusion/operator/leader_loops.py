"""The loops the controller's leader runs: the fleet's reconcilers always, the used-by taints
only with progressive migration."""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

from tensorfusion.operator.reconcilers.runner import run_reconcilers
from tensorfusion.operator.reconcilers.used_by_taints import run_used_by_taints

if TYPE_CHECKING:
    from tensorfusion.controller.control_plane import LeaderLoop
    from tensorfusion.controller.flags import ControllerFlags


def leader_loops(flags: ControllerFlags) -> tuple[LeaderLoop, ...]:
    """The reconcilers the controller's leader runs under `flags`, each in a loop of its own:
    the fleet's always, the used-by taints only with progressive migration."""
    migration = (run_used_by_taints,) if flags.nvidia_operator_progressive_migration else ()
    return (partial(run_reconcilers, node_pools=flags.node_pools), *migration)
