"""Scheduler profiles from a `KubeSchedulerConfiguration`: which plugins run at which
extension point, with which args and score weights.

The guide's ConfigMap (only `pluginConfig`) is read as is; the `plugins` section follows
kube-scheduler's enable/disable rules (multiPoint first, then each extension point, `*`
disabling the defaults). Unknown plugins and bad args are configuration errors that name
the plugin and the field."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from tensorfusion.api.base import ApiModel
from tensorfusion.api.field_errors import issues_from
from tensorfusion.api.scheduler_config import (
    SCHEDULER_NAME,
    KubeSchedulerConfiguration,
    KubeSchedulerProfile,
    PluginConfig,
)
from tensorfusion.api.yaml_loader import load_documents
from tensorfusion.errors import ConfigError
from tensorfusion.scheduler.framework import (
    BindPlugin,
    FilterPlugin,
    PermitPlugin,
    Plugin,
    PreEnqueuePlugin,
    PreFilterPlugin,
    ReservePlugin,
    ScorePlugin,
)
from tensorfusion.scheduler.plugins.default_binder import Binder, DefaultBinder
from tensorfusion.scheduler.plugins.gpu_network_topology import GPUNetworkTopologyAware
from tensorfusion.scheduler.plugins.gpu_resources_fit import GPUResourcesFit
from tensorfusion.scheduler.plugins.node_affinity import NodeAffinity
from tensorfusion.scheduler.plugins.node_name import NodeName
from tensorfusion.scheduler.plugins.node_ports import NodePorts
from tensorfusion.scheduler.plugins.node_resources_fit import NodeResourcesFit
from tensorfusion.scheduler.plugins.node_unschedulable import NodeUnschedulable
from tensorfusion.scheduler.plugins.taint_toleration import TaintToleration
from tensorfusion.scheduler.plugins.unsupported_features import UnsupportedFeatures
from tensorfusion.scheduler.waiting_pods import WaitingPods

log = logging.getLogger(__name__)

EXTENSION_POINTS = ("preEnqueue", "preFilter", "filter", "score", "reserve", "permit", "bind")
_STAGE_METHOD = {
    "preEnqueue": "pre_enqueue",
    "preFilter": "pre_filter",
    "filter": "filter",
    "score": "score",
    "reserve": "reserve",
    "permit": "permit",
    "bind": "bind",
}
OTHER_POINTS = ("queueSort", "postFilter", "preScore", "preBind", "postBind")
"""Extension points kube-scheduler has and this scheduler does not run plugins at; only
the (point, plugin) pairs of ACCEPTED_ELSEWHERE may be enabled there."""

ACCEPTED_ELSEWHERE = {
    ("queueSort", "PrioritySort"): "the queue orders pending pods by priority itself",
    ("postBind", "GPUResourcesFit"): "the chosen GPUs (gpu-ids) are written with the binding",
}
"""Upstream configurations name these; what they do is done elsewhere, so they are accepted
and nothing runs at that point."""
_ACCEPTED_NAMES = frozenset(name for _, name in ACCEPTED_ELSEWHERE)

KUBE_PLUGINS_NOT_SUPPORTED = frozenset(
    {
        "InterPodAffinity",
        "PodTopologySpread",
        "VolumeBinding",
        "VolumeRestrictions",
        "VolumeZone",
        "NodeVolumeLimits",
        "EBSLimits",
        "GCEPDLimits",
        "AzureDiskLimits",
        "CinderLimits",
        "ImageLocality",
        "NodeResourcesBalancedAllocation",
        "DefaultPreemption",
        "SchedulingGates",
        "DynamicResources",
    }
)
"""kube-scheduler's own plugins that are not implemented here: disabling them is fine,
enabling them is an error (a pod needing them is reported by UnsupportedFeatures)."""


GPU_WEIGHT = 100
"""Default score weight of the GPU plugins. One point of GPU score (0-100) then outweighs
the whole range of NodeResourcesFit (weight 1): the pool's placement mode decides where a
slice goes, and CPU/memory scoring breaks ties between equally good GPUs (the guide: GPU
resources weigh more than others). A profile may set lower weights to blend instead."""


@dataclass(frozen=True)
class PluginSpec:
    plugin: type[Any]
    weight: int = 0
    """Default score weight (kube-scheduler's where the plugin is one of its own)."""
    takes_args: bool = False

    def build(self, args: ApiModel | None) -> Plugin:
        instance: Plugin = self.plugin(args) if self.takes_args else self.plugin()
        return instance


REGISTRY: dict[str, PluginSpec] = {
    spec.plugin.name: spec
    for spec in (
        PluginSpec(UnsupportedFeatures),
        PluginSpec(NodeName),
        PluginSpec(NodeUnschedulable),
        PluginSpec(NodeAffinity, weight=2),
        PluginSpec(TaintToleration, weight=3),
        PluginSpec(NodePorts),
        PluginSpec(NodeResourcesFit, weight=1, takes_args=True),
        PluginSpec(GPUResourcesFit, weight=GPU_WEIGHT, takes_args=True),
        PluginSpec(GPUNetworkTopologyAware, weight=GPU_WEIGHT, takes_args=True),
        PluginSpec(DefaultBinder),
    )
}
"""Every plugin, in the order they run at each extension point."""


@dataclass
class Profile:
    scheduler_name: str
    plugins: dict[str, Plugin] = field(default_factory=dict)
    pre_filter: list[PreFilterPlugin] = field(default_factory=list)
    filter: list[FilterPlugin] = field(default_factory=list)
    score: list[tuple[ScorePlugin, int]] = field(default_factory=list)
    reserve: list[ReservePlugin] = field(default_factory=list)
    bind: list[BindPlugin] = field(default_factory=list)
    pre_enqueue: list[PreEnqueuePlugin] = field(default_factory=list)
    permit: list[PermitPlugin] = field(default_factory=list)
    waiting: WaitingPods = field(default_factory=WaitingPods)
    """Pods that passed Reserve and wait at Permit (kube's waitingPods)."""


def load_scheduler_config(path: str | Path) -> KubeSchedulerConfiguration:
    """Read and validate a KubeSchedulerConfiguration file."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(str(path), f"cannot read: {exc}") from None
    return parse_scheduler_config(text, source=str(path))


def parse_scheduler_config(text: str, source: str = "<config>") -> KubeSchedulerConfiguration:
    documents, problem = load_documents(text)
    if problem is not None:
        raise ConfigError(source, str(problem))
    if len(documents) != 1 or not isinstance(documents[0].data, dict):
        raise ConfigError(source, "must hold exactly one KubeSchedulerConfiguration document")
    try:
        return KubeSchedulerConfiguration.model_validate(documents[0].data)
    except ValidationError as exc:
        issue = issues_from(exc)[0]
        raise ConfigError(issue.path, issue.message) from None


def default_config() -> KubeSchedulerConfiguration:
    """Our profile with the args of the guide's R8 defaults."""
    return KubeSchedulerConfiguration.model_validate(
        {
            "apiVersion": "kubescheduler.config.k8s.io/v1",
            "kind": "KubeSchedulerConfiguration",
            "profiles": [{"schedulerName": SCHEDULER_NAME}],
        }
    )


def build_profiles(
    config: KubeSchedulerConfiguration,
    binder: Binder | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> dict[str, Profile]:
    """One Profile per configured profile, keyed by scheduler name; `clock` times the waits
    at Permit."""
    for index, profile in enumerate(config.profiles):
        percentage = profile.percentage_of_nodes_to_score or config.percentage_of_nodes_to_score
        if percentage not in (None, 0, 100):
            log.warning(
                "profiles[%d]: percentageOfNodesToScore %d is not applied: every node is "
                "filtered and scored, since packing GPUs needs the whole pool in view",
                index,
                percentage,
            )
    return {
        profile.scheduler_name: _build_profile(profile, f"profiles[{index}]", binder, clock)
        for index, profile in enumerate(config.profiles)
    }


def _build_profile(
    spec: KubeSchedulerProfile,
    path: str,
    binder: Binder | None,
    clock: Callable[[], float],
) -> Profile:
    args = _plugin_args(spec.plugin_config, path)
    enabled, weights = _enabled_plugins(spec.plugins, f"{path}.plugins")
    profile = Profile(spec.scheduler_name, waiting=WaitingPods(clock))
    for name, spec_entry in REGISTRY.items():
        points = enabled.get(name, set())
        if not points:
            continue
        typed, where = args.get(name, (None, ""))
        try:
            plugin = spec_entry.build(typed)
        except ConfigError as exc:  # a check across args that only the plugin makes
            raise ConfigError(f"{where}.args.{exc.field}", exc.message) from None
        if isinstance(plugin, DefaultBinder):
            plugin.binder = binder
        profile.plugins[name] = plugin
        if "preEnqueue" in points:
            profile.pre_enqueue.append(plugin)  # type: ignore[arg-type]
        if "preFilter" in points:
            profile.pre_filter.append(plugin)  # type: ignore[arg-type]
        if "filter" in points:
            profile.filter.append(plugin)  # type: ignore[arg-type]
        if "score" in points:
            profile.score.append((plugin, weights.get(name) or spec_entry.weight or 1))  # type: ignore[arg-type]
        if "reserve" in points:
            profile.reserve.append(plugin)  # type: ignore[arg-type]
        if "permit" in points:
            profile.permit.append(plugin)  # type: ignore[arg-type]
        if "bind" in points:
            profile.bind.append(plugin)  # type: ignore[arg-type]
    return profile


def _plugin_args(entries: list[PluginConfig], path: str) -> dict[str, tuple[ApiModel | None, str]]:
    """Each configured plugin's typed args and where they were written."""
    args: dict[str, tuple[ApiModel | None, str]] = {}
    for index, entry in enumerate(entries):
        where = f"{path}.pluginConfig[{index}]"
        if entry.name not in REGISTRY:
            if entry.name in KUBE_PLUGINS_NOT_SUPPORTED:
                continue  # args of a plugin that is not run change nothing
            raise ConfigError(f"{where}.name", _unknown(entry.name))
        typed = entry.typed_args()
        if typed is None and entry.args:
            raise ConfigError(f"{where}.args", f"plugin {entry.name} takes no args")
        args[entry.name] = (typed, where)
    return args


def _points_of(name: str) -> frozenset[str]:
    """The extension points a plugin implements."""
    plugin = REGISTRY[name].plugin
    return frozenset(p for p in EXTENSION_POINTS if hasattr(plugin, _STAGE_METHOD[p]))


def _enabled_plugins(
    plugins: Mapping[str, Any], path: str
) -> tuple[dict[str, set[str]], dict[str, int]]:
    """Plugin name -> the extension points it runs at, and explicit score weights."""
    enabled = {name: set(_points_of(name)) for name in REGISTRY}
    weights: dict[str, int] = {}
    for point in ("multiPoint", *EXTENSION_POINTS, *OTHER_POINTS):
        section = plugins.get(point)
        if section is None:
            continue
        where = f"{path}.{point}"
        if not isinstance(section, Mapping):
            raise ConfigError(where, "must be a mapping with enabled and/or disabled lists")
        targets = set(EXTENSION_POINTS) if point == "multiPoint" else {point}
        for index, name in _names(section, "disabled", where):
            if name == "*":
                for points in enabled.values():
                    points.difference_update(targets)
            elif name in REGISTRY:
                enabled[name] -= targets
            elif name not in KUBE_PLUGINS_NOT_SUPPORTED and name not in _ACCEPTED_NAMES:
                raise ConfigError(f"{where}.disabled[{index}].name", _unknown(name))
        for index, entry in enumerate(_entries(section, "enabled", where)):
            name = entry["name"]
            at = f"{where}.enabled[{index}]"
            if point in OTHER_POINTS:
                if (point, name) not in ACCEPTED_ELSEWHERE:
                    raise ConfigError(f"{at}.name", f"{point} plugins are not supported ({name})")
                continue
            if name in KUBE_PLUGINS_NOT_SUPPORTED:
                raise ConfigError(f"{at}.name", f"plugin {name} is not supported by this scheduler")
            if name not in REGISTRY:
                raise ConfigError(f"{at}.name", _unknown(name))
            stages = _points_of(name) & targets
            if not stages:
                raise ConfigError(f"{at}.name", f"plugin {name} has no {point} stage")
            enabled[name] |= stages
            weight = entry.get("weight")
            if weight is not None:
                if not isinstance(weight, int) or isinstance(weight, bool) or weight < 0:
                    raise ConfigError(
                        f"{at}.weight", f"must be a non-negative integer, got {weight!r}"
                    )
                if weight and "score" in stages:
                    weights[name] = weight
    return enabled, weights


def _entries(section: Mapping[str, Any], key: str, where: str) -> list[dict[str, Any]]:
    items = section.get(key) or []
    if not isinstance(items, list):
        raise ConfigError(f"{where}.{key}", "must be a list of {name, weight} entries")
    for index, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get("name"), str) or not item["name"]:
            raise ConfigError(f"{where}.{key}[{index}].name", "required (a plugin name)")
    return items


def _names(section: Mapping[str, Any], key: str, where: str) -> list[tuple[int, str]]:
    return [(index, item["name"]) for index, item in enumerate(_entries(section, key, where))]


def _unknown(name: str) -> str:
    known = ", ".join(REGISTRY)
    return f"unknown plugin {name!r} (known: {known})"
