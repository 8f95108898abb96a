"""Profiles from a KubeSchedulerConfiguration: the guide's R8 block as is, kube-scheduler's
enable/disable rules, and configuration errors that name the plugin and the field."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tensorfusion.api.scheduler_config import (
    SCHEDULER_NAME,
    GPUResourcesFitArgs,
    KubeSchedulerConfiguration,
    NodeResourcesFitArgs,
)
from tensorfusion.errors import ConfigError
from tensorfusion.scheduler.plugins.gpu_resources_fit import GPUResourcesFit
from tensorfusion.scheduler.plugins.node_resources_fit import NodeResourcesFit
from tensorfusion.scheduler.profile import (
    GPU_WEIGHT,
    Profile,
    build_profiles,
    load_scheduler_config,
    parse_scheduler_config,
)

R8 = Path(__file__).parents[2] / "fixtures" / "guide" / "r08-scheduler-config.yaml"


def _config(**profile: Any) -> KubeSchedulerConfiguration:
    return KubeSchedulerConfiguration.model_validate(
        {
            "apiVersion": "kubescheduler.config.k8s.io/v1",
            "kind": "KubeSchedulerConfiguration",
            "profiles": [{"schedulerName": SCHEDULER_NAME, **profile}],
        }
    )


def _profile(**profile: Any) -> Profile:
    return build_profiles(_config(**profile))[SCHEDULER_NAME]


def _names(plugins: list[Any]) -> list[str]:
    return [plugin.name for plugin in plugins]


def test_the_guide_r8_block_is_read_verbatim() -> None:
    profile = build_profiles(load_scheduler_config(R8))[SCHEDULER_NAME]
    gpu_fit = profile.plugins["GPUResourcesFit"]
    assert isinstance(gpu_fit, GPUResourcesFit)
    assert gpu_fit.args == GPUResourcesFitArgs(
        maxWorkerPerNode=256, vramWeight=0.7, tflopsWeight=0.3
    )
    node_fit = profile.plugins["NodeResourcesFit"]
    assert isinstance(node_fit, NodeResourcesFit)
    assert isinstance(node_fit.args, NodeResourcesFitArgs)
    strategy = node_fit.args.scoring_strategy
    assert strategy.type == "RequestedToCapacityRatio"
    assert [(r.name, r.weight) for r in strategy.resources] == [
        ("cpu", 1),
        ("memory", 1),
        ("nvidia.com/gpu", 5),
    ]


def test_default_plugin_order_and_weights() -> None:
    profile = _profile()
    assert _names(profile.filter) == [
        "NodeName",
        "NodeUnschedulable",
        "NodeAffinity",
        "TaintToleration",
        "NodePorts",
        "NodeResourcesFit",
        "GPUResourcesFit",
        "GPUNetworkTopologyAware",
    ]
    assert _names(profile.pre_filter)[0] == "UnsupportedFeatures"
    weights = {plugin.name: weight for plugin, weight in profile.score}
    assert weights == {
        "NodeAffinity": 2,
        "TaintToleration": 3,
        "NodeResourcesFit": 1,
        "GPUResourcesFit": GPU_WEIGHT,
        "GPUNetworkTopologyAware": GPU_WEIGHT,
    }
    assert _names(profile.reserve) == ["GPUResourcesFit"]
    assert _names(profile.bind) == ["DefaultBinder"]


def test_score_weights_and_disabling_follow_kube_rules() -> None:
    profile = _profile(
        plugins={
            "score": {
                "enabled": [{"name": "GPUResourcesFit", "weight": 7}],
                "disabled": [{"name": "TaintToleration"}],
            },
            "multiPoint": {"disabled": [{"name": "NodePorts"}]},
        }
    )
    weights = {plugin.name: weight for plugin, weight in profile.score}
    assert weights["GPUResourcesFit"] == 7
    assert "TaintToleration" not in weights
    assert "TaintToleration" in _names(profile.filter)  # disabled for scoring only
    assert "NodePorts" not in _names(profile.filter)
    assert "NodePorts" not in _names(profile.pre_filter)


def test_star_disables_the_defaults_of_a_point_and_enabled_ones_come_back() -> None:
    profile = _profile(
        plugins={"score": {"disabled": [{"name": "*"}], "enabled": [{"name": "GPUResourcesFit"}]}}
    )
    assert [plugin.name for plugin, _ in profile.score] == ["GPUResourcesFit"]


def test_disabling_kube_plugins_we_do_not_run_is_accepted() -> None:
    profile = _profile(
        plugins={
            "multiPoint": {
                "disabled": [{"name": "InterPodAffinity"}, {"name": "PodTopologySpread"}]
            },
            "queueSort": {"enabled": [{"name": "PrioritySort"}]},
        },
        pluginConfig=[{"name": "InterPodAffinity", "args": {"hardPodAffinityWeight": 1}}],
    )
    assert "GPUResourcesFit" in profile.plugins


@pytest.mark.parametrize(
    ("profile", "field", "message"),
    [
        (
            {"pluginConfig": [{"name": "GPUResourceFit", "args": {}}]},
            "profiles[0].pluginConfig[0].name",
            "unknown plugin 'GPUResourceFit'",
        ),
        (
            {"pluginConfig": [{"name": "NodeName", "args": {"x": 1}}]},
            "profiles[0].pluginConfig[0].args",
            "takes no args",
        ),
        (
            {"plugins": {"score": {"enabled": [{"name": "Nope"}]}}},
            "profiles[0].plugins.score.enabled[0].name",
            "unknown plugin 'Nope'",
        ),
        (
            {"plugins": {"filter": {"enabled": [{"name": "InterPodAffinity"}]}}},
            "profiles[0].plugins.filter.enabled[0].name",
            "not supported by this scheduler",
        ),
        (
            {"plugins": {"bind": {"enabled": [{"name": "NodeName"}]}}},
            "profiles[0].plugins.bind.enabled[0].name",
            "has no bind stage",
        ),
        (
            {"plugins": {"score": {"enabled": [{"name": "GPUResourcesFit", "weight": -1}]}}},
            "profiles[0].plugins.score.enabled[0].weight",
            "non-negative integer",
        ),
        (
            {"plugins": {"score": {"disabled": [{"name": "Mystery"}]}}},
            "profiles[0].plugins.score.disabled[0].name",
            "unknown plugin 'Mystery'",
        ),
        (
            {"plugins": {"score": ["GPUResourcesFit"]}},
            "profiles[0].plugins.score",
            "must be a mapping",
        ),
        (
            {"plugins": {"preBind": {"enabled": [{"name": "GPUResourcesFit"}]}}},
            "profiles[0].plugins.preBind.enabled[0].name",
            "preBind plugins are not supported",
        ),
        (
            {"plugins": {"postBind": {"enabled": [{"name": "NodeResourcesFit"}]}}},
            "profiles[0].plugins.postBind.enabled[0].name",
            "postBind plugins are not supported",
        ),
        (
            {"plugins": {"preEnqueue": {"enabled": [{"name": "GangPlugin"}]}}},
            "profiles[0].plugins.preEnqueue.enabled[0].name",
            "unknown plugin 'GangPlugin'",
        ),
        (
            {"plugins": {"preEnqueue": {"enabled": [{"name": "NodeName"}]}}},
            "profiles[0].plugins.preEnqueue.enabled[0].name",
            "plugin NodeName has no preEnqueue stage",
        ),
        (
            {"plugins": {"permit": {"enabled": [{"name": "Coscheduling"}]}}},
            "profiles[0].plugins.permit.enabled[0].name",
            "unknown plugin 'Coscheduling'",
        ),
        (
            {"plugins": {"permit": {"enabled": [{"name": "TaintToleration"}]}}},
            "profiles[0].plugins.permit.enabled[0].name",
            "plugin TaintToleration has no permit stage",
        ),
        (
            {"plugins": {"permit": {"disabled": [{"name": "Coscheduling"}]}}},
            "profiles[0].plugins.permit.disabled[0].name",
            "unknown plugin 'Coscheduling'",
        ),
        (
            {"plugins": {"preEnqueue": [{"name": "GPUResourcesFit"}]}},
            "profiles[0].plugins.preEnqueue",
            "must be a mapping",
        ),
        (
            {"plugins": {"queueSort": {"enabled": [{"name": "GPUResourcesFit"}]}}},
            "profiles[0].plugins.queueSort.enabled[0].name",
            "queueSort plugins are not supported",
        ),
        (
            {
                "pluginConfig": [
                    {"name": "NodeResourcesFit", "args": {"ignoredResourceGroups": ["a/b"]}}
                ]
            },
            "profiles[0].pluginConfig[0].args.ignoredResourceGroups[0]",
            "cannot contain one",
        ),
        (
            {"plugins": {"score": {"enabled": [{"weight": 3}]}}},
            "profiles[0].plugins.score.enabled[0].name",
            "required",
        ),
    ],
)
def test_configuration_errors_name_plugin_and_field(
    profile: dict[str, Any], field: str, message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        _profile(**profile)
    assert caught.value.field == field
    assert message in caught.value.message


@pytest.mark.parametrize(
    ("old", "new", "field"),
    [
        ("vramWeight: 0.7", "vramWeight: 7", "profiles[0].pluginConfig[0].args.vramWeight"),
        (
            "maxWorkerPerNode: 256",
            "maxWorkerPerNode: 0",
            "profiles[0].pluginConfig[0].args.maxWorkerPerNode",
        ),
        (
            "totalIntranetBandWidthGBps: 100",
            "totalIntranetBandWidthGBps: -5",
            "profiles[0].pluginConfig[1].args.totalIntranetBandWidthGBps",
        ),
        (
            "type: RequestedToCapacityRatio",
            "type: Fastest",
            "profiles[0].pluginConfig[2].args.scoringStrategy.type",
        ),
    ],
)
def test_bad_args_in_the_guide_block_name_the_field(old: str, new: str, field: str) -> None:
    text = R8.read_text()
    assert old in text
    with pytest.raises(ConfigError) as caught:
        parse_scheduler_config(text.replace(old, new))
    assert caught.value.field == field


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a: [1\n", "malformed YAML"),
        ("", "exactly one KubeSchedulerConfiguration"),
        ("- 1\n", "exactly one KubeSchedulerConfiguration"),
    ],
)
def test_unreadable_config_files(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_scheduler_config(text)


def test_a_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_scheduler_config(tmp_path / "absent.yaml")


def test_several_profiles_are_built_by_scheduler_name() -> None:
    config = yaml.safe_load(R8.read_text())
    config["profiles"].append({"schedulerName": "spread-scheduler"})
    profiles = build_profiles(KubeSchedulerConfiguration.model_validate(config))
    assert set(profiles) == {SCHEDULER_NAME, "spread-scheduler"}


def test_percentage_of_nodes_to_score_is_said_to_be_ignored(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level("WARNING"):
        _profile(percentageOfNodesToScore=30)
    assert "percentageOfNodesToScore 30 is not applied" in caplog.text


UPSTREAM_CONFIG = """\
apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
clientConnection: {kubeconfig: "", qps: 1000, burst: 2000}
profiles:
- schedulerName: tensor-fusion-scheduler
  plugins:
    preEnqueue: {enabled: [{name: GPUResourcesFit}]}
    preFilter: {enabled: [{name: GPUResourcesFit}]}
    filter: {enabled: [{name: GPUResourcesFit}, {name: GPUNetworkTopologyAware}]}
    score: {enabled: [{name: GPUResourcesFit, weight: 5}]}
    reserve: {enabled: [{name: GPUResourcesFit}]}
    permit: {enabled: [{name: GPUResourcesFit}]}
    postBind: {enabled: [{name: GPUResourcesFit}]}
  pluginConfig:
  - name: GPUResourcesFit
    args: {maxWorkerPerNode: 256, vramWeight: 0.7, tflopsWeight: 0.3}
  - name: GPUNetworkTopologyAware
    args: {totalIntranetBandWidthGBps: 100}
  - name: NodeResourcesFit
    args:
      ignoredResourceGroups: [tensor-fusion.ai]
      scoringStrategy:
        type: RequestedToCapacityRatio
        resources: [{name: cpu, weight: 1}, {name: memory, weight: 1}]
        requestedToCapacityRatio:
          shape: [{utilization: 0, score: 0}, {utilization: 100, score: 10}]
"""
"""Upstream's chart default: GPUResourcesFit at every point it has, PreEnqueue and Permit
(gang scheduling) and PostBind (writing gpu-ids) included."""


def test_upstream_config_with_pre_enqueue_and_permit_builds_a_profile() -> None:
    profile = build_profiles(parse_scheduler_config(UPSTREAM_CONFIG))[SCHEDULER_NAME]
    assert _names(profile.pre_enqueue) == ["GPUResourcesFit"]
    assert _names(profile.permit) == ["GPUResourcesFit"]
    assert {plugin.name: weight for plugin, weight in profile.score}["GPUResourcesFit"] == 5


def test_validate_accepts_upstream_config_and_names_a_bad_pre_enqueue_plugin(
    tmp_path: Path,
) -> None:
    good = tmp_path / "upstream.yaml"
    good.write_text(UPSTREAM_CONFIG)
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        UPSTREAM_CONFIG.replace(
            "preEnqueue: {enabled: [{name: GPUResourcesFit}]}",
            "preEnqueue: {enabled: [{name: GangScheduler}]}",
        )
    )
    assert "GangScheduler" in bad.read_text()
    run = _validate(good)
    assert run.returncode == 0, run.stdout
    assert ": OK" in run.stdout
    run = _validate(bad)
    assert run.returncode == 1
    assert "profiles[0].plugins.preEnqueue.enabled[0].name: unknown plugin 'GangScheduler'" in (
        run.stdout
    )


def _validate(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tensorfusion.cli", "validate", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )


def test_pre_enqueue_and_permit_follow_kube_enable_and_disable_rules() -> None:
    default = _profile()
    assert _names(default.pre_enqueue) == ["GPUResourcesFit"]
    assert _names(default.permit) == ["GPUResourcesFit"]
    off = _profile(plugins={"multiPoint": {"disabled": [{"name": "GPUResourcesFit"}]}})
    assert off.pre_enqueue == []
    assert off.permit == []
    assert "GPUResourcesFit" not in _names(off.filter)
    star = _profile(plugins={"preEnqueue": {"disabled": [{"name": "*"}]}})
    assert star.pre_enqueue == []
    assert _names(star.permit) == ["GPUResourcesFit"]  # other points keep their defaults
    back = _profile(
        plugins={
            "multiPoint": {"disabled": [{"name": "*"}], "enabled": [{"name": "GPUResourcesFit"}]}
        }
    )
    assert _names(back.pre_enqueue) == ["GPUResourcesFit"]
    assert _names(back.permit) == ["GPUResourcesFit"]
    assert _names(back.filter) == ["GPUResourcesFit"]
    only_permit = _profile(plugins={"permit": {"disabled": [{"name": "GPUResourcesFit"}]}})
    assert only_permit.permit == []
    assert _names(only_permit.pre_enqueue) == ["GPUResourcesFit"]
