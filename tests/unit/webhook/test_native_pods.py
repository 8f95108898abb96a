"""Progressive migration's node affinity for pods that keep nvidia.com/gpu: added to every
term of a required node affinity (terms are ORed), one term made where there is none, terms
that match no node left so, nothing else changed, and a second pass a no-op."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tensorfusion.webhook.conversion import USED_BY_TAINT
from tensorfusion.webhook.native_pods import WITHOUT_WORKERS, kept_off_workers

from .pods import tf_pod

ZONE = {"key": "zone", "operator": "In", "values": ["a"]}
HOSTNAME_FIELD = {"key": "metadata.name", "operator": "In", "values": ["n1"]}


def required_terms(pod: dict[str, Any]) -> Any:
    affinity = pod["spec"]["affinity"]["nodeAffinity"]
    return affinity["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]


def with_affinity(affinity: Any) -> dict[str, Any]:
    pod = tf_pod(enabled=None)
    pod["spec"]["affinity"] = affinity
    return pod


def test_the_requirement_is_that_the_used_by_label_is_absent() -> None:
    # The key of the label that the used-by reconciler puts on nodes with workers.
    assert WITHOUT_WORKERS == {"key": "tensor-fusion.ai/used-by", "operator": "DoesNotExist"}
    assert WITHOUT_WORKERS["key"] == USED_BY_TAINT


@pytest.mark.parametrize(
    "affinity",
    [None, {}, {"nodeAffinity": None}, {"nodeAffinity": {}}, {"nodeAffinity": {"x": 1}}],
)
def test_a_pod_without_required_terms_gets_one(affinity: Any) -> None:
    kept = kept_off_workers(with_affinity(affinity))
    assert required_terms(kept) == [{"matchExpressions": [WITHOUT_WORKERS]}]


def test_a_pod_without_affinity_or_spec_gets_one_term() -> None:
    pod = tf_pod(enabled=None)
    del pod["spec"]
    assert required_terms(kept_off_workers(pod)) == [{"matchExpressions": [WITHOUT_WORKERS]}]


def test_every_ored_term_gets_the_requirement_and_keeps_its_own() -> None:
    terms = [
        {"matchExpressions": [ZONE]},
        {"matchFields": [HOSTNAME_FIELD]},
        {"matchExpressions": None, "matchFields": [HOSTNAME_FIELD]},
    ]
    pod = with_affinity(
        {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": terms}
            }
        }
    )
    kept = kept_off_workers(pod)
    assert required_terms(kept) == [
        {"matchExpressions": [ZONE, WITHOUT_WORKERS]},
        {"matchFields": [HOSTNAME_FIELD], "matchExpressions": [WITHOUT_WORKERS]},
        {"matchExpressions": [WITHOUT_WORKERS], "matchFields": [HOSTNAME_FIELD]},
    ]
    # The pod given is not changed.
    assert required_terms(pod) == terms
    assert terms[0] == {"matchExpressions": [ZONE]}


def test_a_term_that_matches_no_node_is_left_so() -> None:
    terms = [{}, {"matchExpressions": []}, {"matchExpressions": [ZONE]}]
    pod = with_affinity(
        {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": terms}
            }
        }
    )
    assert required_terms(kept_off_workers(pod)) == [
        {},
        {"matchExpressions": []},
        {"matchExpressions": [ZONE, WITHOUT_WORKERS]},
    ]


def test_preferred_terms_and_the_rest_of_the_pod_are_kept() -> None:
    preferred = [{"weight": 1, "preference": {"matchExpressions": [ZONE]}}]
    pod = with_affinity(
        {
            "nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": preferred},
            "podAntiAffinity": {"x": "y"},
        }
    )
    pod["spec"]["nodeSelector"] = {"gpu": "a100"}
    kept = kept_off_workers(pod)
    node_affinity = kept["spec"]["affinity"]["nodeAffinity"]
    assert node_affinity["preferredDuringSchedulingIgnoredDuringExecution"] == preferred
    assert kept["spec"]["affinity"]["podAntiAffinity"] == {"x": "y"}
    expected = copy.deepcopy(pod)
    expected["spec"]["affinity"]["nodeAffinity"][
        "requiredDuringSchedulingIgnoredDuringExecution"
    ] = {"nodeSelectorTerms": [{"matchExpressions": [WITHOUT_WORKERS]}]}
    assert kept == expected


def test_a_second_pass_changes_nothing() -> None:
    pod = with_affinity(
        {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [{"matchExpressions": [ZONE]}, {}]
                }
            }
        }
    )
    once = kept_off_workers(pod)
    assert kept_off_workers(once) == once
