"""Checking manifests: one result per YAML document, OK or the problems with full field
paths. Knows our kinds, Pods and their controllers, the scheduler config, Helm values files
and bare dynamic-config files."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ValidationError

from tensorfusion.api.annotations import (
    ENABLED_LABEL,
    ENABLED_REPLICAS,
    PREFIX,
    read_workload_request,
    unknown_annotation_keys,
)
from tensorfusion.api.base import API_VERSION, ApiModel, ObjectMeta
from tensorfusion.api.crd import openapi_schema
from tensorfusion.api.dynamic_config import DynamicConfig
from tensorfusion.api.field_errors import FieldIssue, issues_from, type_name
from tensorfusion.api.helm_values import VALUES_SECTIONS, HelmValues
from tensorfusion.api.kinds import KINDS_BY_NAME
from tensorfusion.api.not_acted import not_acted_fields
from tensorfusion.api.null_pruning import prune_nulls
from tensorfusion.api.pod import Controller, CronJob, Job, Pod, PodTemplateSpec
from tensorfusion.api.scheduler_config import SCHEDULER_API_VERSION, KubeSchedulerConfiguration
from tensorfusion.api.yaml_loader import load_documents

_WORKLOAD_MODELS: dict[tuple[str, str], type[ApiModel]] = {
    ("v1", "Pod"): Pod,
    **{
        ("apps/v1", kind): Controller
        for kind in ("Deployment", "StatefulSet", "ReplicaSet", "DaemonSet")
    },
    ("batch/v1", "Job"): Job,
    ("batch/v1", "CronJob"): CronJob,
}
_DYNAMIC_CONFIG_KEYS = frozenset(
    field.alias or name for name, field in DynamicConfig.model_fields.items()
)
# Documentation sites mark highlighted lines with this comment; copied with the value it
# turns e.g. `300` into the string "300  // [!code highlight]".
_DOC_MARKER = "// [!code"


@dataclass
class DocumentResult:
    source: str
    line: int
    label: str
    issues: list[FieldIssue] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not any(not issue.warning for issue in self.issues)

    @property
    def errors(self) -> list[FieldIssue]:
        return [issue for issue in self.issues if not issue.warning]

    @property
    def warnings(self) -> list[FieldIssue]:
        return [issue for issue in self.issues if issue.warning]


DeeperChecks = Mapping[str, Callable[[dict[str, Any]], list[FieldIssue]]]
"""Checks by document label that need more than the models (the scheduler's plugin
registry, which `api` cannot import), run on documents the models accept."""


def validate_text(
    text: str, source: str = "<input>", deeper: DeeperChecks | None = None
) -> list[DocumentResult]:
    documents, problem = load_documents(text)
    results = []
    for doc in documents:
        label, issues = check_document(doc.data)
        check = (deeper or {}).get(label)
        if check is not None and isinstance(doc.data, dict) and all(i.warning for i in issues):
            issues = issues + check(doc.data)
        results.append(DocumentResult(source, doc.line, label, issues))
    if problem is not None:
        results.append(
            DocumentResult(source, problem.line, "YAML", [FieldIssue("", problem.message)])
        )
    return results


def check_document(data: object) -> tuple[str, list[FieldIssue]]:
    """(label, issues) for one parsed document."""
    if not isinstance(data, dict):
        got = type_name(data)
        return "document", [FieldIssue("", f"must be a mapping (an object), got {got}")]
    api_version, kind = data.get("apiVersion"), data.get("kind")
    if api_version is None and kind is None:
        return _check_config_file(data)
    label = f"{kind}/{_name_of(data)}"
    if not isinstance(kind, str) or not isinstance(api_version, str):
        return label, [
            FieldIssue(
                "kind" if not isinstance(kind, str) else "apiVersion",
                "required, and must be a string",
            )
        ]
    if kind in KINDS_BY_NAME:
        return label, _check_custom_resource(kind, data)
    if (api_version, kind) in _WORKLOAD_MODELS:
        return label, _check_workload(_WORKLOAD_MODELS[api_version, kind], data)
    if kind == "KubeSchedulerConfiguration":
        return "KubeSchedulerConfiguration", _check_model(KubeSchedulerConfiguration, data)
    if api_version == API_VERSION:
        known = ", ".join(sorted(KINDS_BY_NAME))
        return label, [
            FieldIssue("kind", f"unknown kind {kind!r} in {API_VERSION} (known: {known})")
        ]
    return label, [
        FieldIssue(
            "kind",
            f"{api_version} {kind} is not something tensor-fusion reads (it reads {API_VERSION} "
            f"kinds, Pods and their controllers, {SCHEDULER_API_VERSION} "
            "KubeSchedulerConfiguration, Helm values and dynamic config files)",
        )
    ]


def _name_of(data: Mapping[str, Any]) -> str:
    metadata = data.get("metadata")
    name = metadata.get("name") if isinstance(metadata, dict) else None
    return name if isinstance(name, str) else "<unnamed>"


def _check_config_file(data: dict[str, Any]) -> tuple[str, list[FieldIssue]]:
    keys = set(data)
    if keys & VALUES_SECTIONS:
        return "Helm values", _check_model(HelmValues, data)
    if keys & _DYNAMIC_CONFIG_KEYS:
        return "dynamic config", _check_model(DynamicConfig, data)
    return "document", [
        FieldIssue(
            "",
            "not a Kubernetes object (no apiVersion/kind), nor a Helm values file (sections: "
            f"{', '.join(sorted(VALUES_SECTIONS))}), nor a dynamic config file",
        )
    ]


@functools.cache
def _schema_of(kind: str) -> dict[str, Any]:
    return openapi_schema(KINDS_BY_NAME[kind])


def _check_custom_resource(kind: str, data: dict[str, Any]) -> list[FieldIssue]:
    pruned, dropped = prune_nulls(data, _schema_of(kind))
    nulls = [
        FieldIssue(
            path, "null: the API server drops null fields, so it reads as absent", warning=True
        )
        for path in dropped
    ]
    not_acted = [
        FieldIssue(path, remark, warning=True) for path, remark in not_acted_fields(kind, pruned)
    ]
    return nulls + _check_model(KINDS_BY_NAME[kind].model, pruned) + not_acted


def _check_model(model: type[BaseModel], data: dict[str, Any]) -> list[FieldIssue]:
    try:
        obj = model.model_validate(data)
    except ValidationError as exc:
        return [_explain_doc_marker(issue) for issue in issues_from(exc)]
    if not isinstance(obj, ApiModel):
        return []
    unknown = [
        FieldIssue(path, _unknown_field_message(path), warning=True)
        for path in obj.unknown_fields()
    ]
    return unknown + [FieldIssue(path, remark, warning=True) for path, remark in obj.advice()]


def _unknown_field_message(path: str) -> str:
    parent, _, name = path.rpartition(".")
    if name in ("labels", "annotations", "name", "namespace"):
        where = f"{parent}.metadata.{name}" if parent else f"metadata.{name}"
        return f"unknown field: {name} goes in {where}, where it takes effect"
    return "unknown field (kept, but tensor-fusion does not use it)"


def _check_workload(model: type[ApiModel], data: dict[str, Any]) -> list[FieldIssue]:
    issues = _check_model(model, data)
    if any(not issue.warning for issue in issues):
        return issues
    obj = model.model_validate(data)
    for path, meta, containers, replicas in _pod_templates(obj):
        issues.extend(_check_pod_contract(path, meta, containers, replicas))
    return issues


def _pod_templates(
    obj: ApiModel,
) -> Iterator[tuple[str, ObjectMeta, list[str] | None, int | None]]:
    """(metadata path, metadata, container names, replicas) of each pod the object makes."""
    if isinstance(obj, Pod):
        yield "metadata", obj.metadata, [c.name for c in obj.spec.containers], None
        return
    if isinstance(obj, Controller | Job):
        spec, path = obj.spec, "spec.template"
    elif isinstance(obj, CronJob):
        spec, path = obj.spec.job_template.spec, "spec.jobTemplate.spec.template"
    else:
        return
    template: PodTemplateSpec = spec.template
    names = [c.name for c in template.spec.containers] if template.spec else None
    yield f"{path}.metadata", template.metadata, names, spec.replicas


def _check_pod_contract(
    path: str, meta: ObjectMeta, containers: list[str] | None, replicas: int | None
) -> list[FieldIssue]:
    request, problems = read_workload_request(meta.labels, meta.annotations, containers)
    issues = []
    if containers is None:
        issues.append(
            FieldIssue(
                path.removesuffix("metadata") + "spec",
                "missing: the API server needs the pod's containers",
                warning=True,
            )
        )
    issues += [
        FieldIssue(
            f"{path}.labels[{problem.key!r}]"
            if problem.key == ENABLED_LABEL
            else f"{path}.annotations[{problem.key!r}]",
            problem.message,
        )
        for problem in problems
    ]
    for key, hint in unknown_annotation_keys(meta.annotations):
        issues.append(
            FieldIssue(
                f"{path}.annotations[{key!r}]",
                f"unknown TensorFusion annotation ({hint})",
                warning=True,
            )
        )
    uses_ours = any(key.startswith(PREFIX) for key in meta.annotations)
    if (
        request is not None
        and not request.enabled
        and uses_ours
        and ENABLED_LABEL not in meta.labels
    ):
        issues.append(
            FieldIssue(
                f"{path}.labels",
                f'has no {ENABLED_LABEL}: "true" label, '
                "so the TensorFusion annotations are ignored",
                warning=True,
            )
        )
    if (
        request is not None
        and request.enabled_replicas is not None
        and replicas is not None
        and request.enabled_replicas > replicas
    ):
        issues.append(
            FieldIssue(
                f"{path}.annotations[{ENABLED_REPLICAS!r}]",
                f"{request.enabled_replicas} is more than the {replicas} replicas: "
                "all of them move",
                warning=True,
            )
        )
    return issues


def _explain_doc_marker(issue: FieldIssue) -> FieldIssue:
    if _DOC_MARKER in issue.message:
        return FieldIssue(
            issue.path,
            issue.message + " -- the value carries a documentation marker "
            "'// [!code ...]'; remove it",
        )
    return issue
