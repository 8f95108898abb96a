"""The parts of Pods and of the controllers that stamp them out (Deployment, StatefulSet,
ReplicaSet, DaemonSet, Job, CronJob) that TensorFusion reads. Only those parts are modelled;
the rest of a PodSpec is passed through untouched."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from tensorfusion.api.base import ApiModel, ObjectMeta, TopLevelObject
from tensorfusion.api.common import ResourceRequirements

CONTROLLER_KINDS = ("Deployment", "StatefulSet", "ReplicaSet", "DaemonSet")


class Container(ApiModel):
    report_unknown_fields: ClassVar[bool] = False

    name: str = Field(min_length=1)
    image: str | None = None
    resources: ResourceRequirements = Field(default_factory=ResourceRequirements)


class PodSpec(ApiModel):
    report_unknown_fields: ClassVar[bool] = False

    containers: list[Container] = Field(min_length=1)
    init_containers: list[Container] = Field(default_factory=list, alias="initContainers")
    scheduler_name: str | None = Field(default=None, alias="schedulerName")


class PodTemplateSpec(ApiModel):
    """A pod template has only metadata and spec: anything else is a misplaced field (labels
    written beside metadata instead of inside it is a common slip)."""

    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: PodSpec | None = None
    """Optional here so that the pod contract of a partial manifest can still be checked."""


class Pod(TopLevelObject):
    api_version: Literal["v1"] = Field(alias="apiVersion")
    kind: Literal["Pod"]
    spec: PodSpec


class ControllerSpec(ApiModel):
    report_unknown_fields: ClassVar[bool] = False

    replicas: int | None = Field(default=None, ge=0)
    template: PodTemplateSpec


class Controller(TopLevelObject):
    """Deployment, StatefulSet, ReplicaSet or DaemonSet: a pod template plus replicas."""

    api_version: Literal["apps/v1"] = Field(alias="apiVersion")
    kind: Literal["Deployment", "StatefulSet", "ReplicaSet", "DaemonSet"]
    spec: ControllerSpec


class Job(TopLevelObject):
    api_version: Literal["batch/v1"] = Field(alias="apiVersion")
    kind: Literal["Job"]
    spec: ControllerSpec


class JobTemplate(ApiModel):
    report_unknown_fields: ClassVar[bool] = False

    spec: ControllerSpec


class CronJobSpec(ApiModel):
    report_unknown_fields: ClassVar[bool] = False

    job_template: JobTemplate = Field(alias="jobTemplate")


class CronJob(TopLevelObject):
    api_version: Literal["batch/v1"] = Field(alias="apiVersion")
    kind: Literal["CronJob"]
    spec: CronJobSpec
