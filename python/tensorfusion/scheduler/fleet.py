"""Cluster snapshots ("fleets"): one multi-document YAML of Nodes, GPUNodes, GPUs, GPUPools,
the SchedulingConfigTemplates they name, and Pods, the shape the API server would give.
Loading checks every document against its model and the references between them, and
reports all problems, not just the first."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from tensorfusion.api.base import TopLevelObject
from tensorfusion.api.field_errors import issues_from, type_name
from tensorfusion.api.gpu_links import (
    DEFAULT_POOL_ANNOTATION,
    HOSTNAME_LABEL,
    OWNER_LABEL,
    POOL_LABEL,
    gpu_node_name,
    gpu_nvlink_peers,
    gpu_pool_name,
    is_default_pool,
    text_at,
)
from tensorfusion.api.kube_node import KubeNode
from tensorfusion.api.node import GPU, GPUNode
from tensorfusion.api.pod import Pod
from tensorfusion.api.pool import GPUPool
from tensorfusion.api.scheduling_template import SchedulingConfigTemplate
from tensorfusion.api.yaml_loader import load_documents
from tensorfusion.errors import FleetError

Object = dict[str, Any]
"""A Kubernetes object as parsed from YAML."""

# The C emitter is an order of magnitude faster: a 10,000-node fleet is 300,000 documents.
_DUMPER = yaml.CSafeDumper if yaml.__with_libyaml__ else yaml.SafeDumper

_MODELS: dict[str, type[TopLevelObject]] = {
    "Node": KubeNode,
    "GPUNode": GPUNode,
    "GPU": GPU,
    "GPUPool": GPUPool,
    "Pod": Pod,
    "SchedulingConfigTemplate": SchedulingConfigTemplate,
}
_OWNER_FIELD = f"metadata.labels[{OWNER_LABEL!r}]"
_HOSTNAME_FIELD = f"status.nodeSelector[{HOSTNAME_LABEL!r}]"
_POOL_FIELD = f"metadata.labels[{POOL_LABEL!r}]"
_DEFAULT_FIELD = f"metadata.annotations[{DEFAULT_POOL_ANNOTATION!r}]"


@dataclass
class Fleet:
    """The objects of a cluster, each kind in file order."""

    nodes: list[Object] = field(default_factory=list)
    gpu_nodes: list[Object] = field(default_factory=list)
    gpus: list[Object] = field(default_factory=list)
    pools: list[Object] = field(default_factory=list)
    pods: list[Object] = field(default_factory=list)
    templates: list[Object] = field(default_factory=list)
    """SchedulingConfigTemplates: the placement mode of the pools that name them."""

    def documents(self) -> Iterator[Object]:
        """Every object, each before those that refer to it (the order a reader follows)."""
        kinds = (self.templates, self.pools, self.nodes, self.gpu_nodes, self.gpus, self.pods)
        for objects in kinds:
            yield from objects

    def to_yaml(self) -> str:
        return yaml.dump_all(self.documents(), Dumper=_DUMPER, sort_keys=False)


def fleet_problems(documents: Sequence[object]) -> list[FleetError]:
    """Every problem of a parsed fleet, in document order."""
    return _Checker(documents).problems()


def read_fleet(source: str | Path, text: str | None = None) -> tuple[Fleet, list[FleetError]]:
    """The valid objects of a fleet file (or of `text`, read as coming from `source`) and
    every problem found; a malformed YAML document is the only problem reported then, as
    the references past it cannot be checked."""
    if text is None:
        try:
            text = Path(source).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
            return Fleet(), [FleetError(str(source), "", f"cannot read: {reason}")]
    parsed, malformed = load_documents(text)
    if malformed is not None:
        return Fleet(), [FleetError(f"line {malformed.line}", "", malformed.message)]
    checker = _Checker([document.data for document in parsed])
    return checker.fleet(), checker.problems()


def load_fleet(source: str | Path, text: str | None = None) -> Fleet:
    """The fleet in a file; raises the first FleetError, saying how many more there are."""
    fleet, problems = read_fleet(source, text)
    if problems:
        first, more = problems[0], len(problems) - 1
        if more:
            suffix = f" (and {more} more problem{'s' * (more != 1)})"
            raise FleetError(first.obj, first.field, first.message + suffix)
        raise first
    return fleet


@dataclass
class _Entry:
    """A document of a known kind that has a name; `valid` once its model accepted it."""

    index: int
    data: Object
    label: str
    valid: bool


class _Checker:
    """Checks one fleet in two passes: each document alone, then the references."""

    def __init__(self, documents: Sequence[object]) -> None:
        self._found: list[tuple[int, FleetError]] = []
        # kind -> name (pods: namespace/name) -> the first document of that name
        self._named: dict[str, dict[str, _Entry]] = defaultdict(dict)
        for index, data in enumerate(documents, start=1):
            self._check_document(index, data)
        self._check_pools()
        for entry in self._named["GPUNode"].values():
            self._check_gpu_node(entry)
        for entry in self._named["GPU"].values():
            if entry.valid:
                self._check_gpu(entry)

    def problems(self) -> list[FleetError]:
        return [problem for _, problem in sorted(self._found, key=lambda found: found[0])]

    def fleet(self) -> Fleet:
        def valid(kind: str) -> list[Object]:
            return [entry.data for entry in self._named[kind].values() if entry.valid]

        return Fleet(
            nodes=valid("Node"),
            gpu_nodes=valid("GPUNode"),
            gpus=valid("GPU"),
            pools=valid("GPUPool"),
            pods=valid("Pod"),
            templates=valid("SchedulingConfigTemplate"),
        )

    def _report(self, index: int, obj: str, path: str, message: str) -> None:
        self._found.append((index, FleetError(obj, path, message)))

    def _check_document(self, index: int, data: object) -> None:
        where = f"document {index}"
        if not isinstance(data, dict):
            self._report(index, where, "", f"must be a mapping (an object), got {type_name(data)}")
            return
        kind = data.get("kind")
        if not isinstance(kind, str) or kind not in _MODELS:
            known = ", ".join(_MODELS)
            self._report(index, where, "kind", f"must be one of {known}, got {kind!r}")
            return
        key = _key_of(kind, data)
        label = f"{kind}/{key}" if key is not None else where
        try:
            _MODELS[kind].model_validate(data)
            valid = True
        except ValidationError as exc:
            valid = False
            for issue in issues_from(exc):
                self._report(index, label, issue.path, issue.message)
        if key is None:
            return
        first = self._named[kind].get(key)
        if first is not None:
            self._report(
                index, label, "metadata.name", f"duplicate name (first in document {first.index})"
            )
            return
        self._named[kind][key] = _Entry(index, data, label, valid)

    def _check_pools(self) -> None:
        default: _Entry | None = None
        templates = self._named["SchedulingConfigTemplate"]
        for entry in self._named["GPUPool"].values():
            template = text_at(entry.data, "spec", "schedulingConfigTemplate")
            if template is not None and template not in templates:
                self._report(
                    entry.index,
                    entry.label,
                    "spec.schedulingConfigTemplate",
                    f"there is no SchedulingConfigTemplate named {template!r}",
                )
            if not is_default_pool(entry.data):
                continue
            if default is None:
                default = entry
            else:
                self._report(
                    entry.index,
                    entry.label,
                    _DEFAULT_FIELD,
                    f"{default.label} is the default pool already; only one pool may be",
                )

    def _check_gpu_node(self, entry: _Entry) -> None:
        name = entry.label.partition("/")[2]
        if name not in self._named["Node"]:
            self._report(
                entry.index, entry.label, "metadata.name", f"there is no Node named {name!r}"
            )

    def _check_gpu(self, entry: _Entry) -> None:
        gpu, label = entry.data, entry.label
        node = gpu_node_name(gpu)
        if node is None:
            self._report(
                entry.index,
                label,
                _OWNER_FIELD,
                f"missing: a GPU names its node here (or in {_HOSTNAME_FIELD})",
            )
        elif node not in self._named["Node"]:
            where = (
                _OWNER_FIELD if text_at(gpu, "metadata", "labels", OWNER_LABEL) else _HOSTNAME_FIELD
            )
            self._report(entry.index, label, where, f"there is no Node named {node!r}")
        self._check_pool(entry, node)
        capacity = (gpu.get("status") or {}).get("capacity") or {}
        for dimension in ("tflops", "vram"):
            if capacity.get(dimension) is None:
                self._report(
                    entry.index,
                    label,
                    f"status.capacity.{dimension}",
                    "required: the scheduler places work by each GPU's capacity",
                )
        if node is not None:
            for position, peer in enumerate(gpu_nvlink_peers(gpu)):
                self._check_peer(entry, node, position, peer)

    def _check_pool(self, entry: _Entry, node: str | None) -> None:
        pools = self._named["GPUPool"]
        gpu_node = self._named["GPUNode"].get(node) if node is not None else None
        pool = gpu_pool_name(entry.data, gpu_node.data if gpu_node else None)
        if not pools or pool is None or pool in pools:
            return
        if text_at(entry.data, "metadata", "labels", POOL_LABEL) is not None:
            self._report(entry.index, entry.label, _POOL_FIELD, f"there is no GPUPool {pool!r}")
        else:
            self._report(
                entry.index,
                entry.label,
                "",
                f"its GPUNode/{node} is owned by pool {pool!r}, and there is no GPUPool {pool!r}",
            )

    def _check_peer(self, entry: _Entry, node: str, position: int, peer: str) -> None:
        path = f"status.nvlinkPeers[{position}]"
        if peer == entry.label.partition("/")[2]:
            self._report(entry.index, entry.label, path, "a GPU is not its own NVLink peer")
            return
        other = self._named["GPU"].get(peer)
        # A peer that names no node has that problem reported on itself.
        other_node = gpu_node_name(other.data) if other is not None else None
        if other is None or other_node not in (node, None):
            self._report(
                entry.index, entry.label, path, f"{peer!r} is not a GPU on the same node ({node})"
            )


def _key_of(kind: str, data: Object) -> str | None:
    """The name an object is unique by: `name`, or `namespace/name` for pods."""
    name = text_at(data, "metadata", "name")
    if name is None:
        return None
    if kind != "Pod":
        return name
    return f"{text_at(data, 'metadata', 'namespace') or 'default'}/{name}"
