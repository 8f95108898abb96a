"""Progressive migration (`-nvidia-operator-progressive-migration`): a pod that keeps
`nvidia.com/gpu` (not converted) gets the NVIDIA device plugin's GPUs, which the plugin hands
out without knowing of TensorFusion's workers. So it must not run on a node that has any: such
a node carries the used-by label (see `operator.reconcilers.used_by_taints`), and the pod gets
a required node affinity on its absence.

Terms of a required node affinity are ORed and the expressions of one term ANDed, so the
expression goes into every term: a pod that names several kinds of node keeps all of them,
each without TensorFusion workers."""

from __future__ import annotations

import copy
from collections.abc import Mapping, MutableMapping
from typing import Any, Final

from tensorfusion.webhook.conversion import USED_BY_TAINT
from tensorfusion.webhook.shim_injection import list_at

WITHOUT_WORKERS: Final = {"key": USED_BY_TAINT, "operator": "DoesNotExist"}
"""The node selector requirement of a node running no TensorFusion worker."""
_MATCH = ("matchExpressions", "matchFields")


def _mapping_at(parent: MutableMapping[str, Any], key: str) -> dict[str, Any]:
    """The mapping under `key`, made (also in place of an explicit null) when there is none."""
    value = parent.get(key)
    if not isinstance(value, dict):
        value = parent[key] = {}
    return value


def kept_off_workers(pod: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of `pod` that the scheduler places only on nodes without TensorFusion workers."""
    kept = copy.deepcopy(dict(pod))
    affinity = _mapping_at(_mapping_at(_mapping_at(kept, "spec"), "affinity"), "nodeAffinity")
    required = _mapping_at(affinity, "requiredDuringSchedulingIgnoredDuringExecution")
    terms = list_at(required, "nodeSelectorTerms")
    if not terms:
        terms.append({"matchExpressions": [dict(WITHOUT_WORKERS)]})
    for term in terms:
        # A term without requirements matches no node: given one, it would match.
        if isinstance(term, dict) and any(term.get(part) for part in _MATCH):
            expressions = list_at(term, "matchExpressions")
            if WITHOUT_WORKERS not in expressions:
                expressions.append(dict(WITHOUT_WORKERS))
    return kept
