"""The best node for one pod without the full GPU scan: the node-level Filter and Score plugins
run as usual, then GPUResourcesFit's search visits only the nodes that can still win.

The answer is the full pipeline's whenever it is given: the other plugins' normalised scores
must not depend on which nodes the GPU check lets through, which holds for the normalisers
that read the feasible nodes only through their highest raw score once some feasible node
has the candidates' highest. Anything else (a plugin reading the GPU kernel's per-node
result, a normaliser of another kind, no feasible node, which needs the full diagnosis)
answers None, and the caller runs the full scan; so does a request whose last answer only
needs a few nodes refitted (replicas), which costs less than a search, and one of a
FragmentationAware pool, whose scores the search cannot bound."""

from __future__ import annotations

import numpy as np

from tensorfusion.scheduler.framework import ClusterView, CycleState, ScoreArray
from tensorfusion.scheduler.plugins.gpu_network_topology import GPUNetworkTopologyAware
from tensorfusion.scheduler.plugins.gpu_resources_fit import GPUResourcesFit
from tensorfusion.scheduler.plugins.node_affinity import NodeAffinity
from tensorfusion.scheduler.plugins.node_resources_fit import NodeResourcesFit
from tensorfusion.scheduler.plugins.taint_toleration import TaintToleration
from tensorfusion.scheduler.pod_info import PodInfo
from tensorfusion.scheduler.profile import Profile

UNNORMALIZED = frozenset({NodeResourcesFit.name})
"""Score plugins whose normalisation ignores the feasible nodes."""
NORMALIZED_BY_TOP = frozenset({TaintToleration.name, NodeAffinity.name})
"""Score plugins whose normalisation reads the feasible nodes only through the highest raw
score among them."""
READS_GPU_RESULT = frozenset({GPUNetworkTopologyAware.name})
"""Plugins that need GPUResourcesFit's answer for every node."""


def search_best_node(
    profile: Profile, cluster: ClusterView, state: CycleState, pod: PodInfo
) -> int | None:
    """The node the full Filter and Score stages would choose, or None when the search
    cannot vouch for that (see the module's docstring). PreFilter must have run."""
    active = [plugin for plugin in profile.filter if plugin.name not in state.skipped]
    fit = next((plugin for plugin in active if isinstance(plugin, GPUResourcesFit)), None)
    if fit is None or not fit.searchable(state, cluster):
        return None
    candidates = cluster.nodes.present.copy()
    for plugin in active:
        if plugin.name in READS_GPU_RESULT:
            return None
        if plugin is not fit:
            candidates &= plugin.filter(state, pod, cluster, candidates).passed
    if not candidates.any():
        return None
    bonus = np.zeros(len(candidates), np.int64)
    gpu_weight = 0
    tops: list[tuple[ScoreArray, int]] = []
    for scorer, weight in profile.score:
        if scorer.name in state.skipped:
            continue
        if scorer is fit:
            gpu_weight = weight
            continue
        if scorer.name not in UNNORMALIZED and scorer.name not in NORMALIZED_BY_TOP:
            return None
        raw = scorer.score(state, pod, cluster, candidates)
        bonus += weight * scorer.normalize(raw, candidates)
        if scorer.name in NORMALIZED_BY_TOP:
            tops.append((raw, int(raw[candidates].max())))
    node = fit.search(state, cluster, candidates, bonus, gpu_weight)
    # The normalisation over the feasible nodes is the one over the candidates when some
    # feasible node has the candidates' top raw score: the chosen node, or one the GPU
    # check passes among those with that score (few, as a rule: a soft taint's nodes).
    if node < 0 or any(
        int(raw[node]) != top and not fit.fits_any(state, cluster, candidates & (raw == top))
        for raw, top in tops
    ):
        state.data.pop(GPUResourcesFit.SEARCHED, None)  # the full scan's choice stands
        return None
    return node
