"""Bad inputs to `tensor-fusion validate`, run through the real command (its entry point; the
alias bomb also as its own process).

Each case writes one YAML file and checks what a user sees: the exit code, an INVALID line
for the object, an error line with the full field path and the gist of the problem, and
never a Python traceback."""

from __future__ import annotations

import contextlib
import io
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

from tensorfusion.cli import main

TIMEOUT_S = 60


@dataclass(frozen=True)
class Run:
    code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def run_validate(*paths: Path | str, timeout: float = TIMEOUT_S, process: bool = False) -> Run:
    """`tensor-fusion validate PATH...`: the command's entry point (`tensorfusion.cli.main`)
    in this process, which spares each case the interpreter's start; with `process`,
    `python -m tensorfusion.cli validate` as a user runs it, within `timeout`. An exception
    escaping the command fails the case as a traceback would."""
    argv = ["validate", *map(str, paths)]
    if process:
        done = subprocess.run(
            [sys.executable, "-m", "tensorfusion.cli", *argv],
            capture_output=True,
            text=True,
            check=False,
            timeout=timeout,
        )
        code, stdout, stderr = done.returncode, done.stdout, done.stderr
    else:
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(argv)
        stdout, stderr = out.getvalue(), err.getvalue()
    assert "Traceback" not in stdout
    assert "Traceback" not in stderr
    return Run(code, stdout, stderr)


def _block(text: str, indent: int) -> str:
    return textwrap.indent(textwrap.dedent(text).strip("\n"), " " * indent)


def obj(kind: str, spec: str, api_version: str = "tensor-fusion.ai/v1", name: str = "x") -> str:
    """A top-level object of `kind` with the given `spec` body."""
    return (
        f"apiVersion: {api_version}\nkind: {kind}\nmetadata:\n  name: {name}\n"
        f"spec:\n{_block(spec, 2)}\n"
    )


def one_pool(spec_template: str) -> str:
    """A cluster spec (`gpuPools`) whose only pool has this specTemplate."""
    return f"gpuPools:\n  - name: shared\n    specTemplate:\n{_block(spec_template, 6)}"


def pool_in_cluster(spec_template: str) -> str:
    """A TensorFusionCluster whose only pool has this specTemplate."""
    return obj("TensorFusionCluster", one_pool(spec_template))


def oversell(field: str, value: str) -> str:
    """A specTemplate that sets one oversubscription field."""
    return f"capacityConfig:\n  oversubscription:\n    {field}: {value}"


def oversubscription(field: str, value: str) -> str:
    return pool_in_cluster(oversell(field, value))


def provisioner(body: str, mode: str = "AutoSelect") -> str:
    """A GPUPool with a nodeProvisioner."""
    return obj(
        "GPUPool",
        f"nodeManagerConfig:\n  provisioningMode: {mode}\n  nodeProvisioner:\n{_block(body, 4)}",
    )


def rolling_update(body: str) -> str:
    return obj(
        "GPUPool",
        f"nodeManagerConfig:\n  nodePoolRollingUpdatePolicy:\n{_block(body, 4)}",
    )


def profile(spec: str) -> str:
    return obj("WorkloadProfile", spec)


def pod(
    annotations: str, labels: str = 'tensor-fusion.ai/enabled: "true"', containers: int = 1
) -> str:
    """A Pod with TensorFusion label(s), annotations and `containers` containers."""
    names = ["main", "sidecar", "third"][:containers]
    body = "\n".join(f"    - name: {name}\n      image: busybox" for name in names)
    return (
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n"
        f"  labels:\n{_block(labels, 4)}\n  annotations:\n{_block(annotations, 4)}\n"
        f"spec:\n  containers:\n{body}\n"
    )


def deployment(annotations: str, labels: str = 'tensor-fusion.ai/enabled: "true"') -> str:
    """A Deployment whose pod template carries the label(s) and annotations."""
    return (
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: d\nspec:\n  replicas: 2\n"
        "  template:\n    metadata:\n"
        f"      labels:\n{_block(labels, 8)}\n      annotations:\n{_block(annotations, 8)}\n"
        "    spec:\n      containers:\n        - name: main\n          image: busybox\n"
    )


def scheduler(plugin_config: str, api_version: str = "kubescheduler.config.k8s.io/v1") -> str:
    """A KubeSchedulerConfiguration with one profile and this pluginConfig list."""
    return (
        f"apiVersion: {api_version}\nkind: KubeSchedulerConfiguration\nprofiles:\n"
        "  - schedulerName: tensor-fusion-scheduler\n"
        f"    pluginConfig:\n{_block(plugin_config, 6)}\n"
    )


def scoring(strategy: str) -> str:
    return scheduler(
        "- name: NodeResourcesFit\n  args:\n    scoringStrategy:\n" + _block(strategy, 6)
    )


def alert_rule(**overrides: str) -> str:
    """One alert rule (YAML list item) with fields replaced by `overrides`."""
    fields = {
        "name": "GPUHot",
        "query": "'SELECT uuid FROM tf_gpu_usage WHERE temperature > {{ .Threshold }}'",
        "threshold": "90",
        "evaluationInterval": "30s",
        "consecutiveCount": "3",
        "severity": "P1",
        "summary": "'GPU {{ .uuid }} is hot'",
    }
    fields.update(overrides)
    first, *rest = fields.items()
    lines = [f"- {first[0]}: {first[1]}", *(f"  {key}: {value}" for key, value in rest)]
    return "\n".join(lines)


def dynamic_config(*rules: str, **top: str) -> str:
    """A bare dynamic-config file."""
    head = "".join(f"{key}: {value}\n" for key, value in top.items())
    return head + "alertRules:\n" + _block("\n".join(rules), 2) + "\n"


@dataclass(frozen=True)
class Bad:
    """One bad input: the YAML, the path of the field at fault, and the gist of the error.

    `path` is empty for problems with the document as a whole (no field to name)."""

    yaml: str
    path: str
    message: str
    label: str = ""
    """The object's label on its INVALID line (e.g. 'YAML'), when worth checking."""
    ends: bool = False
    """The message must end the error line (nothing, such as a Python repr, after it)."""


def case(
    case_id: str,
    yaml: str,
    path: str,
    message: str,
    *,
    label: str = "",
    ends: bool = False,
    bug: str = "",
) -> object:
    """One table row; `bug` marks a known product bug (a strict xfail) and says what it is."""
    marks = [pytest.mark.xfail(reason=bug, strict=True)] if bug else []
    return pytest.param(Bad(yaml, path, message, label, ends), id=case_id, marks=marks)


CASES = [
    # --- quantities --------------------------------------------------------------------------
    case(
        "quantity-16GB",
        obj("GPUPool", "capacityConfig:\n  maxResources:\n    vram: 16GB"),
        "spec.capacityConfig.maxResources.vram",
        "'16GB' is not a Kubernetes quantity",
    ),
    case(
        "quantity-1.5.5",
        profile('resources:\n  requests:\n    tflops: "1.5.5"'),
        "spec.resources.requests.tflops",
        "'1.5.5' is not a Kubernetes quantity",
    ),
    case(
        "quantity-negative-vram",
        profile("resources:\n  limits:\n    vram: -1Gi"),
        "spec.resources.limits.vram",
        "must not be negative",
    ),
    case(
        "quantity-float-like-comma",
        profile('resources:\n  requests:\n    tflops: "1,5"'),
        "spec.resources.requests.tflops",
        "'1,5' is not a Kubernetes quantity",
    ),
    case(
        "quantity-float-exponent-fraction",
        profile('resources:\n  requests:\n    tflops: "1e2.5"'),
        "spec.resources.requests.tflops",
        "is not a Kubernetes quantity",
    ),
    case(
        "quantity-finer-than-nano",
        profile('resources:\n  requests:\n    tflops: "1e-12"'),
        "spec.resources.requests.tflops",
        "finer than 1n",
    ),
    case(
        "quantity-nan",
        profile("resources:\n  requests:\n    tflops: .nan"),
        "spec.resources.requests.tflops",
        "not a finite number",
    ),
    case(
        "quantity-boolean",
        obj("GPUPool", "capacityConfig:\n  maxResources:\n    tflops: true"),
        "spec.capacityConfig.maxResources.tflops",
        "(bool) is not a Kubernetes quantity",
    ),
    case(
        "quantity-yes-is-boolean",
        profile("resources:\n  limits:\n    vram: yes"),
        "spec.resources.limits.vram",
        "(bool) is not a Kubernetes quantity",
    ),
    # --- ranges ------------------------------------------------------------------------------
    case(
        "oversell-ratio-50",
        oversubscription("tflopsOversellRatio", "50"),
        "spec.gpuPools[0].specTemplate.capacityConfig.oversubscription.tflopsOversellRatio",
        "must be >= 100",
    ),
    case(
        "oversell-ratio-100001",
        oversubscription("tflopsOversellRatio", "100001"),
        "spec.gpuPools[0].specTemplate.capacityConfig.oversubscription.tflopsOversellRatio",
        "must be <= 100000",
    ),
    case(
        "expand-to-host-mem-minus-1",
        oversubscription("vramExpandToHostMem", "-1"),
        "spec.gpuPools[0].specTemplate.capacityConfig.oversubscription.vramExpandToHostMem",
        "must be >= 0",
    ),
    case(
        "expand-to-host-mem-101",
        oversubscription("vramExpandToHostMem", "101"),
        "spec.gpuPools[0].specTemplate.capacityConfig.oversubscription.vramExpandToHostMem",
        "must be <= 100",
    ),
    case(
        "expand-to-host-disk-150",
        oversubscription("vramExpandToHostDisk", "150"),
        "spec.gpuPools[0].specTemplate.capacityConfig.oversubscription.vramExpandToHostDisk",
        "must be <= 100",
    ),
    case(
        "batch-percentage-101",
        rolling_update("batchPercentage: 101"),
        "spec.nodeManagerConfig.nodePoolRollingUpdatePolicy.batchPercentage",
        "must be <= 100",
    ),
    case(
        "alert-threshold-percent-101",
        obj("GPUResourceQuota", "total:\n  alertThresholdPercent: 101"),
        "spec.total.alertThresholdPercent",
        "must be <= 100",
    ),
    case("gpu-count-0", profile("gpuCount: 0"), "spec.gpuCount", "must be >= 1"),
    case("gpu-count-129", profile("gpuCount: 129"), "spec.gpuCount", "must be <= 128"),
    case(
        "gpu-indices-mismatch",
        profile("gpuCount: 2\ngpuIndices: [0]"),
        "spec.gpuIndices",
        "lists 1 GPUs but gpuCount is 2",
    ),
    # --- enums -------------------------------------------------------------------------------
    case(
        "provisioning-mode",
        obj("GPUPool", "nodeManagerConfig:\n  provisioningMode: Manual"),
        "spec.nodeManagerConfig.provisioningMode",
        "must be one of 'Provisioned', 'AutoSelect' or 'Karpenter', got 'Manual'",
    ),
    case(
        "placement-mode",
        obj("SchedulingConfigTemplate", "placement:\n  mode: Spread"),
        "spec.placement.mode",
        "got 'Spread'",
    ),
    case(
        "profile-qos",
        profile("qos: urgent"),
        "spec.qos",
        "must be one of 'low', 'medium', 'high' or 'critical', got 'urgent'",
    ),
    case(
        "auth-type",
        obj("TensorFusionCluster", "computingVendor:\n  type: aws\n  authType: password"),
        "spec.computingVendor.authType",
        "got 'password'",
    ),
    case(
        "vendor-type",
        obj("TensorFusionCluster", "computingVendor:\n  type: digitalocean"),
        "spec.computingVendor.type",
        "got 'digitalocean'",
    ),
    case(
        "metrics-format",
        "metricsFormat: prometheus\n",
        "metricsFormat",
        "got 'prometheus'",
        label="dynamic config",
    ),
    case(
        "taint-effect",
        provisioner("gpuTaints:\n  - key: gpu\n    effect: NoRun"),
        "spec.nodeManagerConfig.nodeProvisioner.gpuTaints[0].effect",
        "got 'NoRun'",
    ),
    case(
        "requirement-operator",
        provisioner("gpuRequirements:\n  - key: gpu\n    operator: Equals\n    values: [a]"),
        "spec.nodeManagerConfig.nodeProvisioner.gpuRequirements[0].operator",
        "got 'Equals'",
    ),
    case(
        "scoring-strategy-type",
        scoring("type: Balanced"),
        "profiles[0].pluginConfig[0].args.scoringStrategy.type",
        "got 'Balanced'",
        label="KubeSchedulerConfiguration",
    ),
    # --- what the document is ----------------------------------------------------------------
    case(
        "unknown-kind-in-our-group",
        "apiVersion: tensor-fusion.ai/v1\nkind: GPUCluster\nmetadata:\n  name: x\n",
        "kind",
        "unknown kind 'GPUCluster' in tensor-fusion.ai/v1",
    ),
    case(
        "unrelated-kind",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\ndata: {}\n",
        "kind",
        "v1 ConfigMap is not something tensor-fusion reads",
    ),
    case(
        "kind-without-api-version",
        "kind: GPUPool\nmetadata:\n  name: x\n",
        "apiVersion",
        "required",
    ),
    case(
        "document-is-a-list",
        "- apiVersion: tensor-fusion.ai/v1\n  kind: GPUPool\n",
        "",
        "must be a mapping (an object), got list",
    ),
    case(
        "document-is-a-scalar",
        "hello\n",
        "",
        "must be a mapping (an object), got string",
    ),
    case(
        "mapping-of-nothing-known",
        "foo: 1\nbar: [2]\n",
        "",
        "not a Kubernetes object (no apiVersion/kind), nor a Helm values file",
    ),
    case(
        "kind-not-a-string",
        "apiVersion: v1\nkind: 5\nmetadata:\n  name: x\n",
        "kind",
        "required, and must be a string",
    ),
    case(
        "metadata-is-a-list",
        "apiVersion: tensor-fusion.ai/v1\nkind: GPUPool\nmetadata: [x]\n",
        "metadata",
        "must be a mapping, got list",
    ),
    case(
        "name-is-an-integer",
        "apiVersion: tensor-fusion.ai/v1\nkind: GPUPool\nmetadata:\n  name: 5\n",
        "metadata.name",
        "must be a string (quote it), got integer 5",
    ),
    case(
        "missing-metadata-name",
        "apiVersion: tensor-fusion.ai/v1\nkind: GPUPool\nmetadata:\n  labels: {a: b}\n",
        "metadata.name",
        "required",
    ),
    case(
        "missing-metadata",
        "apiVersion: tensor-fusion.ai/v1\nkind: GPUPool\nspec: {}\n",
        "metadata",
        "required",
    ),
    case(
        "uppercase-object-name",
        obj("GPUPool", "{}", name="MyPool"),
        "metadata.name",
        "must consist of lower case alphanumeric characters",
    ),
    # --- malformed YAML ----------------------------------------------------------------------
    case(
        "yaml-bad-indentation",
        "apiVersion: tensor-fusion.ai/v1\nkind: GPUPool\nmetadata:\n  name: x\n   bad: 1\n",
        "",
        "malformed YAML",
        label="YAML",
    ),
    case(
        "yaml-unclosed-bracket",
        "apiVersion: tensor-fusion.ai/v1\nkind: GPUPool\nmetadata: {name: [x\n",
        "",
        "malformed YAML",
        label="YAML",
    ),
    case(
        "yaml-duplicate-key",
        "apiVersion: tensor-fusion.ai/v1\nkind: GPUPool\nmetadata:\n  name: x\n  name: y\n",
        "",
        "duplicate key 'name' (first at line 4)",
        label="YAML",
    ),
    case(
        "yaml-tab-indentation",
        "controller:\n\treplicaCount: 1\n",
        "",
        "malformed YAML",
        label="YAML",
    ),
    case(
        "yaml-unknown-tag",
        "controller: !custom {replicaCount: 1}\n",
        "",
        "'!custom'",
        label="YAML",
    ),
    case(
        "yaml-python-tag",
        "controller: !!python/object/apply:os.system [true]\n",
        "",
        "python/object/apply:os.system",
        label="YAML",
    ),
    case(
        "yaml-list-as-key-flow",
        "controller: {[a]: 1}\n",
        "",
        "key",
        label="YAML",
    ),
    case(
        "yaml-list-as-key-block",
        "? [a, b]\n: 1\n",
        "",
        "key",
        label="YAML",
    ),
    case(
        "yaml-control-character",
        'controller:\n  command: ["\x07"]\n',
        "",
        "unacceptable character",
        label="YAML",
    ),
    case(
        "yaml-nul-byte",
        "controller:\n  replicaCount: 1\x00\n",
        "",
        "unacceptable character",
        label="YAML",
    ),
    case(
        "yaml-nested-too-deep",
        "controller: " + "[" * 5000 + "]" * 5000 + "\n",
        "",
        "nest",
        label="YAML",
    ),
    # --- limits below requests ---------------------------------------------------------------
    case(
        "profile-tflops-limit-below-request",
        profile("resources:\n  requests: {tflops: '100'}\n  limits: {tflops: '50'}"),
        "spec.resources.limits.tflops",
        "must be >= requests.tflops",
    ),
    case(
        "profile-vram-limit-below-request",
        profile("resources:\n  requests: {vram: 16Gi}\n  limits: {vram: 8Gi}"),
        "spec.resources.limits.vram",
        "must be >= requests.vram",
    ),
    case(
        "annotation-tflops-limit-below-request",
        pod('tensor-fusion.ai/tflops-request: "100"\ntensor-fusion.ai/tflops-limit: "50"'),
        "metadata.annotations['tensor-fusion.ai/tflops-limit']",
        "must be >= tflops-request",
    ),
    case(
        "annotation-vram-limit-below-request",
        deployment("tensor-fusion.ai/vram-request: 16Gi\ntensor-fusion.ai/vram-limit: 8Gi"),
        "spec.template.metadata.annotations['tensor-fusion.ai/vram-limit']",
        "must be >= vram-request",
    ),
    case(
        "annotation-vram-limit-below-request-in-units",
        deployment("tensor-fusion.ai/vram-request: 16Gi\ntensor-fusion.ai/vram-limit: 8Gi"),
        "spec.template.metadata.annotations['tensor-fusion.ai/vram-limit']",
        "(8Gi < 16Gi)",
    ),
    # --- wrong types -------------------------------------------------------------------------
    case(
        "string-ratio",
        oversubscription("tflopsOversellRatio", '"300"'),
        "spec.gpuPools[0].specTemplate.capacityConfig.oversubscription.tflopsOversellRatio",
        "must be an integer, got string '300'",
    ),
    case(
        "list-for-mapping",
        obj("GPUPool", "capacityConfig: [200]"),
        "spec.capacityConfig",
        "must be a mapping, got list",
    ),
    case(
        "unquoted-integer-annotation",
        pod("tensor-fusion.ai/gpu-count: 2"),
        "metadata.annotations['tensor-fusion.ai/gpu-count']",
        "must be a string (quote it), got integer 2",
    ),
    case(
        "enabled-label-unquoted-true",
        pod('tensor-fusion.ai/tflops-limit: "10"', labels="tensor-fusion.ai/enabled: true"),
        "metadata.labels['tensor-fusion.ai/enabled']",
        "must be a string (quote it), got boolean",
    ),
    case(
        "annotation-null-value",
        pod("tensor-fusion.ai/vram-limit:"),
        "metadata.annotations['tensor-fusion.ai/vram-limit']",
        "must be a string (quote it), got null",
        ends=True,
    ),
    case(
        "is-default-yes-string",
        obj("TensorFusionCluster", 'gpuPools:\n  - name: shared\n    isDefault: "yes"'),
        "spec.gpuPools[0].isDefault",
        "must be a boolean",
    ),
    case(
        "documentation-marker",
        oversubscription("tflopsOversellRatio", "300  // [!code highlight]"),
        "spec.gpuPools[0].specTemplate.capacityConfig.oversubscription.tflopsOversellRatio",
        "documentation marker",
    ),
    # --- pod annotations ---------------------------------------------------------------------
    case(
        "pod-vram-limit-bad-quantity",
        pod("tensor-fusion.ai/vram-limit: 16GB"),
        "metadata.annotations['tensor-fusion.ai/vram-limit']",
        "'16GB' is not a Kubernetes quantity",
    ),
    case(
        "deployment-vram-limit-bad-quantity",
        deployment("tensor-fusion.ai/vram-limit: 1.5.5Gi"),
        "spec.template.metadata.annotations['tensor-fusion.ai/vram-limit']",
        "is not a Kubernetes quantity",
    ),
    case(
        "pod-vram-fractional-bytes",
        pod('tensor-fusion.ai/vram-request: "1.5"'),
        "metadata.annotations['tensor-fusion.ai/vram-request']",
        "whole number of bytes",
    ),
    case(
        "pod-tflops-limit-zero",
        pod('tensor-fusion.ai/tflops-limit: "0"'),
        "metadata.annotations['tensor-fusion.ai/tflops-limit']",
        "must be greater than 0",
    ),
    case(
        "pod-tflops-request-negative",
        pod('tensor-fusion.ai/tflops-request: "-5"'),
        "metadata.annotations['tensor-fusion.ai/tflops-request']",
        "must not be negative (got '-5')",
    ),
    case(
        "pod-compute-percent-as-fraction",
        pod('tensor-fusion.ai/compute-percent-request: "1/2"'),
        "metadata.annotations['tensor-fusion.ai/compute-percent-request']",
        "must be a number of percent in (0, 100], got '1/2'",
    ),
    case(
        "pod-gpu-count-0",
        pod('tensor-fusion.ai/gpu-count: "0"'),
        "metadata.annotations['tensor-fusion.ai/gpu-count']",
        "must be 1..128, got 0",
    ),
    case(
        "deployment-gpu-count-129",
        deployment('tensor-fusion.ai/gpu-count: "129"'),
        "spec.template.metadata.annotations['tensor-fusion.ai/gpu-count']",
        "must be 1..128, got 129",
    ),
    case(
        "pod-gpu-count-two",
        pod("tensor-fusion.ai/gpu-count: two"),
        "metadata.annotations['tensor-fusion.ai/gpu-count']",
        "must be a whole number, got 'two'",
    ),
    case(
        "deployment-qos-urgent",
        deployment("tensor-fusion.ai/qos: urgent"),
        "spec.template.metadata.annotations['tensor-fusion.ai/qos']",
        "must be one of low, medium, high, critical, got 'urgent'",
    ),
    case(
        "pod-is-local-gpu-yes",
        pod('tensor-fusion.ai/is-local-gpu: "yes"'),
        "metadata.annotations['tensor-fusion.ai/is-local-gpu']",
        'must be "true" or "false", got \'yes\'',
    ),
    case(
        "pod-enabled-label-True",
        pod('tensor-fusion.ai/tflops-limit: "10"', labels='tensor-fusion.ai/enabled: "True"'),
        "metadata.labels['tensor-fusion.ai/enabled']",
        'label must be "true" or "false", got \'True\'',
    ),
    case(
        "deployment-compute-percent-150",
        deployment('tensor-fusion.ai/compute-percent-limit: "150"'),
        "spec.template.metadata.annotations['tensor-fusion.ai/compute-percent-limit']",
        "must be a number of percent in (0, 100], got '150'",
    ),
    case(
        "pod-several-containers-without-inject",
        pod('tensor-fusion.ai/tflops-limit: "10"', containers=2),
        "metadata.annotations['tensor-fusion.ai/inject-container']",
        "required when the pod has several containers (main, sidecar)",
    ),
    case(
        "pod-inject-missing-container",
        pod("tensor-fusion.ai/inject-container: trainer", containers=2),
        "metadata.annotations['tensor-fusion.ai/inject-container']",
        "names container 'trainer', which the pod does not have",
    ),
    case(
        "pod-inject-container-empty-item",
        pod("tensor-fusion.ai/inject-container: main,,sidecar", containers=2),
        "metadata.annotations['tensor-fusion.ai/inject-container']",
        "must be a comma-separated list without empty items",
    ),
    case(
        "deployment-pool-uppercase",
        deployment("tensor-fusion.ai/gpupool: Demo-Shared"),
        "spec.template.metadata.annotations['tensor-fusion.ai/gpupool']",
        "'Demo-Shared' must consist of lower case alphanumeric characters",
    ),
    case(
        "cronjob-gpu-count-two",
        "apiVersion: batch/v1\nkind: CronJob\nmetadata:\n  name: c\nspec:\n"
        "  schedule: '0 * * * *'\n  jobTemplate:\n    spec:\n      template:\n"
        "        metadata:\n          labels: {tensor-fusion.ai/enabled: 'true'}\n"
        "          annotations: {tensor-fusion.ai/gpu-count: two}\n"
        "        spec:\n          containers: [{name: main, image: busybox}]\n",
        "spec.jobTemplate.spec.template.metadata.annotations['tensor-fusion.ai/gpu-count']",
        "must be a whole number, got 'two'",
    ),
    # --- scheduler config --------------------------------------------------------------------
    case(
        "scheduler-vram-weight-1.5",
        scheduler("- name: GPUResourcesFit\n  args:\n    vramWeight: 1.5"),
        "profiles[0].pluginConfig[0].args.vramWeight",
        "must be <= 1",
    ),
    case(
        "scheduler-max-worker-per-node-0",
        scheduler("- name: GPUResourcesFit\n  args:\n    maxWorkerPerNode: 0"),
        "profiles[0].pluginConfig[0].args.maxWorkerPerNode",
        "must be >= 1",
    ),
    case(
        "scheduler-ratio-without-shape-section",
        scoring("type: RequestedToCapacityRatio"),
        "profiles[0].pluginConfig[0].args.scoringStrategy.requestedToCapacityRatio",
        "required when type is RequestedToCapacityRatio",
    ),
    case(
        "scheduler-ratio-without-shape",
        scoring("type: RequestedToCapacityRatio\nrequestedToCapacityRatio: {}"),
        "profiles[0].pluginConfig[0].args.scoringStrategy.requestedToCapacityRatio.shape",
        "required field is missing",
    ),
    case(
        "scheduler-shape-not-increasing",
        scoring(
            "type: RequestedToCapacityRatio\nrequestedToCapacityRatio:\n  shape:\n"
            "    - {utilization: 50, score: 5}\n    - {utilization: 50, score: 10}"
        ),
        "profiles[0].pluginConfig[0].args.scoringStrategy.requestedToCapacityRatio"
        ".shape[1].utilization",
        "strictly increasing",
    ),
    case(
        "scheduler-shape-score-11",
        scoring(
            "type: RequestedToCapacityRatio\nrequestedToCapacityRatio:\n  shape:\n"
            "    - {utilization: 0, score: 0}\n    - {utilization: 100, score: 11}"
        ),
        "profiles[0].pluginConfig[0].args.scoringStrategy.requestedToCapacityRatio.shape[1].score",
        "must be <= 10",
    ),
    case(
        "scheduler-both-weights-zero",
        scheduler("- name: GPUResourcesFit\n  args: {vramWeight: 0, tflopsWeight: 0}"),
        "profiles[0].pluginConfig[0].args.vramWeight",
        "cannot both be 0",
    ),
    case(
        "scheduler-percentage-of-nodes-101",
        "apiVersion: kubescheduler.config.k8s.io/v1\nkind: KubeSchedulerConfiguration\n"
        "percentageOfNodesToScore: 101\n",
        "percentageOfNodesToScore",
        "must be <= 100",
    ),
    case(
        "scheduler-duplicate-plugin-config",
        scheduler("- name: GPUResourcesFit\n  args: {}\n- name: GPUResourcesFit\n  args: {}"),
        "profiles[0].pluginConfig[1].name",
        "duplicate plugin config 'GPUResourcesFit'",
    ),
    case(
        "scheduler-wrong-api-version",
        scheduler("- name: GPUResourcesFit", api_version="kubescheduler.config.k8s.io/v1beta3"),
        "apiVersion",
        "got 'kubescheduler.config.k8s.io/v1beta3'",
    ),
    # --- dynamic config ----------------------------------------------------------------------
    case(
        "dynamic-interval-15-seconds",
        dynamic_config(alert_rule(evaluationInterval="15 seconds")),
        "alertRules[0].evaluationInterval",
        "'15 seconds' is not a duration",
    ),
    case(
        "dynamic-consecutive-count-0",
        dynamic_config(alert_rule(consecutiveCount="0")),
        "alertRules[0].consecutiveCount",
        "must be >= 1",
    ),
    case(
        "dynamic-interval-zero",
        dynamic_config(alert_rule(evaluationInterval="0s")),
        "alertRules[0].evaluationInterval",
        "",
    ),
    case(
        "dynamic-duplicate-rule-names",
        dynamic_config(alert_rule(), alert_rule()),
        "alertRules[1].name",
        "duplicate rule 'GPUHot'",
    ),
    case(
        "dynamic-unbalanced-braces",
        dynamic_config(alert_rule(description="'GPU {{ .uuid is hot'")),
        "alertRules[0].description",
        "unbalanced '{{' and '}}'",
    ),
    case(
        "dynamic-metrics-ttl-forever",
        dynamic_config(alert_rule(), metricsTTL="forever"),
        "metricsTTL",
        "'forever' is not a duration",
    ),
    case(
        "helm-dynamic-config-nested",
        "dynamicConfig:\n" + _block(dynamic_config(alert_rule(consecutiveCount="0")), 2) + "\n",
        "dynamicConfig.alertRules[0].consecutiveCount",
        "must be >= 1",
        label="Helm values",
    ),
    # --- Helm values -------------------------------------------------------------------------
    case(
        "helm-greptime-cloud-and-standalone",
        "greptime:\n  isCloud: true\n  installStandalone: true\n  host: db.example.com\n",
        "greptime.installStandalone",
        "must be false when isCloud is true",
        label="Helm values",
    ),
    case(
        "helm-greptime-external-without-host",
        "greptime:\n  installStandalone: false\n",
        "greptime.host",
        "required when installStandalone is false",
        label="Helm values",
    ),
    case(
        "helm-greptime-port-70000",
        "greptime:\n  port: 70000\n",
        "greptime.port",
        "must be <= 65535",
        label="Helm values",
    ),
    case(
        "helm-flag-missing-value",
        "controller:\n  command: [/manager, -alert-manager-addr, -enable-alert]\n",
        "controller.command[1]",
        "flag '-alert-manager-addr' needs a value",
        label="Helm values",
    ),
    case(
        "helm-flag-missing-value-at-end",
        "controller:\n  command: [/manager, -enable-alert, -alert-manager-addr]\n",
        "controller.command[2]",
        "flag '-alert-manager-addr' needs a value",
        label="Helm values",
    ),
    case(
        "helm-unknown-flag",
        "controller:\n  command: [/manager, --enable-autoscale]\n",
        "controller.command[1]",
        "unknown flag '--enable-autoscale'",
        label="Helm values",
    ),
    case(
        "helm-route-unknown-receiver",
        "alert:\n  alertManagerConfig:\n    receivers: [{name: slack}]\n"
        "    route: {receiver: pagerduty}\n",
        "alert.alertManagerConfig.route.receiver",
        "names unknown receiver 'pagerduty'",
        label="Helm values",
    ),
    case(
        "helm-requests-above-limits",
        "controller:\n  resources:\n    requests: {cpu: '2', memory: 1Gi}\n"
        "    limits: {cpu: '1', memory: 1Gi}\n",
        "controller.resources.requests['cpu']",
        "must be <= limits['cpu']",
        label="Helm values",
    ),
    case(
        "helm-cluster-oversell-ratio",
        "cluster:\n  pool:\n" + _block(oversell("tflopsOversellRatio", "50"), 4) + "\n",
        "cluster.pool.capacityConfig.oversubscription.tflopsOversellRatio",
        "must be >= 100",
        label="Helm values",
    ),
    case(
        "helm-scheduler-config-nested",
        "schedulerConfig:\n"
        + _block(scheduler("- name: GPUResourcesFit\n  args:\n    vramWeight: 2"), 2)
        + "\n",
        "schedulerConfig.profiles[0].pluginConfig[0].args.vramWeight",
        "must be <= 1",
        label="Helm values",
    ),
    # --- cluster -----------------------------------------------------------------------------
    case(
        "cluster-duplicate-pool-names",
        obj("TensorFusionCluster", "gpuPools:\n  - name: shared\n  - name: shared"),
        "spec.gpuPools[1].name",
        "duplicate pool name 'shared'",
    ),
    case(
        "cluster-two-default-pools",
        obj(
            "TensorFusionCluster",
            "gpuPools:\n  - {name: a, isDefault: true}\n  - {name: b, isDefault: true}",
        ),
        "spec.gpuPools[1].isDefault",
        "only one pool may be the default",
    ),
    case(
        "cluster-pool-name-uppercase",
        obj("TensorFusionCluster", "gpuPools:\n  - name: Shared"),
        "spec.gpuPools[0].name",
        "must consist of lower case alphanumeric characters",
    ),
    case(
        "cluster-and-pool-names-too-long",
        obj("TensorFusionCluster", "gpuPools:\n  - name: " + "p" * 40, name="c" * 30),
        "spec.gpuPools[0].name",
        "would be 71 characters",
    ),
    case(
        "capacity-type-preemptible",
        provisioner(
            "gpuRequirements:\n  - key: karpenter.sh/capacity-type\n    operator: In\n"
            "    values: [spot, preemptible]"
        ),
        "spec.nodeManagerConfig.nodeProvisioner.gpuRequirements[0].values",
        "capacity type 'preemptible' is not one of on-demand, spot, reserved",
    ),
    case(
        "maintenance-cron-minute-61",
        rolling_update('maintenanceWindow:\n  includes: ["61 1 * * *"]'),
        "spec.nodeManagerConfig.nodePoolRollingUpdatePolicy.maintenanceWindow.includes[0]",
        "minute: 61 is outside 0-59",
    ),
    case(
        "maintenance-cron-4-fields",
        rolling_update('maintenanceWindow:\n  includes: ["1 1 * *"]'),
        "spec.nodeManagerConfig.nodePoolRollingUpdatePolicy.maintenanceWindow.includes[0]",
        "must have 5 fields",
    ),
    case(
        "maintenance-cron-open-range",
        rolling_update('maintenanceWindow:\n  includes: ["1- 1 * * *"]'),
        "spec.nodeManagerConfig.nodePoolRollingUpdatePolicy.maintenanceWindow.includes[0]",
        "minute",
    ),
    case(
        "maintenance-cron-step-0",
        rolling_update('maintenanceWindow:\n  includes: ["*/0 1 * * *"]'),
        "spec.nodeManagerConfig.nodePoolRollingUpdatePolicy.maintenanceWindow.includes[0]",
        "minute: step '0' must be a positive integer",
    ),
    case(
        "min-resources-above-max",
        pool_in_cluster(
            "capacityConfig:\n  minResources: {tflops: '200'}\n  maxResources: {tflops: '100'}"
        ),
        "spec.gpuPools[0].specTemplate.capacityConfig.minResources.tflops",
        "must be <= maxResources.tflops",
    ),
    case(
        "gt-operator-not-an-integer",
        provisioner("gpuRequirements:\n  - key: gpu-count\n    operator: Gt\n    values: [two]"),
        "spec.nodeManagerConfig.nodeProvisioner.gpuRequirements[0].values",
        "must be a single integer for operator Gt",
    ),
    case(
        "connection-without-workload-name",
        obj("TensorFusionConnection", "clientPod: client-0"),
        "spec.workloadName",
        "required field is missing",
    ),
    case(
        "connection-client-pod-not-a-string",
        obj("TensorFusionConnection", "workloadName: w\nclientPod: [client-0]"),
        "spec.clientPod",
        "must be a string",
    ),
    case(
        "warm-resources-above-max",
        obj(
            "GPUPool",
            "capacityConfig:\n  warmResources: {vram: 20Gi}\n  maxResources: {vram: 10Gi}",
        ),
        "spec.capacityConfig.warmResources.vram",
        "must be <= maxResources.vram (20Gi > 10Gi)",
    ),
    case(
        "spec-a-string",
        "apiVersion: tensor-fusion.ai/v1\nkind: GPUPool\nmetadata:\n  name: x\nspec: shared\n",
        "spec",
        "must be a mapping, got string 'shared'",
    ),
    case(
        "spec-a-number",
        "apiVersion: tensor-fusion.ai/v1\nkind: GPUNode\nmetadata:\n  name: x\nspec: 1\n",
        "spec",
        "must be a mapping, got integer 1",
    ),
    case(
        "spec-a-list",
        "apiVersion: tensor-fusion.ai/v1\nkind: WorkloadProfile\nmetadata:\n  name: x\nspec: []\n",
        "spec",
        "must be a mapping, got list",
    ),
    case(
        "in-operator-without-values",
        provisioner("gpuRequirements:\n  - key: gpu\n    operator: In"),
        "spec.nodeManagerConfig.nodeProvisioner.gpuRequirements[0].values",
        "must not be empty for operator In",
    ),
]


def _invalid_lines(run: Run) -> list[str]:
    return [line for line in run.stdout.splitlines() if ": INVALID (" in line]


@pytest.mark.parametrize("bad", CASES)
def test_bad_input_is_reported(bad: Bad, tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(bad.yaml, encoding="utf-8")
    run = run_validate(path)
    assert run.code == 1, run.output
    (header,) = _invalid_lines(run)
    assert header.startswith(f"{path}:"), run.output
    if bad.label:
        assert f": {bad.label}: INVALID" in header, run.output
    prefix = f"  error: {bad.path}: " if bad.path else "  error: "
    at_path = [
        line.removeprefix(prefix) for line in run.stdout.splitlines() if line.startswith(prefix)
    ]
    assert at_path, run.output
    if bad.ends:
        assert any(message.endswith(bad.message) for message in at_path), run.output
    else:
        assert any(bad.message in message for message in at_path), run.output


# Values upstream's API accepts but that miss a check of ours: the object is valid, and a
# warning names the field and says what the value does here.
WARNED = [
    pytest.param(
        rolling_update("batchPercentage: 0"),
        "spec.nodeManagerConfig.nodePoolRollingUpdatePolicy.batchPercentage",
        "is 0, below 1: no node would ever be updated",
        id="batch-percentage-0",
    ),
    pytest.param(
        obj("GPUNodeClaim", "capacityType: spot"),
        "spec.capacityType",
        "'spot' is none of OnDemand, Reserved, Spot, the values tensor-fusion acts on",
        id="node-claim-capacity-type",
    ),
    pytest.param(
        pool_in_cluster(
            "nodeManagerConfig:\n  provisioningMode: Karpenter\n  nodeProvisioner:\n"
            "    nodeClass: default"
        ),
        "spec.gpuPools[0].specTemplate.nodeManagerConfig.nodeProvisioner.karpenterNodeClassRef",
        "missing: provisioningMode Karpenter provisions no node without it",
        id="karpenter-without-node-class-ref",
    ),
    pytest.param(
        pool_in_cluster(
            "nodeManagerConfig:\n  nodeSelector:\n    nodeSelectorTerms:\n"
            "      - matchExpressions: [{key: gpu, operator: Exists}]\n"
            "  nodeProvisioner:\n    nodeClass: default"
        ),
        "spec.gpuPools[0].specTemplate.nodeManagerConfig.nodeSelector",
        "provisioningMode AutoSelect uses only nodeSelector",
        id="node-selector-and-provisioner",
    ),
    pytest.param(
        obj("TensorFusionCluster", "computingVendor:\n  type: aws\n  authType: accessKey"),
        "spec.computingVendor.params.accessKeyPath",
        "missing: authType accessKey cannot sign in without it",
        id="access-key-without-paths",
    ),
    pytest.param(
        obj("GPUPool", "nodeManagerConfig:\n  nodeSelector:\n    nodeSelectorTerms: []"),
        "spec.nodeManagerConfig.nodeSelector.nodeSelectorTerms",
        "is empty, so the selector matches no node",
        id="node-selector-without-terms",
    ),
    pytest.param(
        obj("ProviderConfig", "vendor: NVIDIA\nimages:\n  middleware: ''"),
        "spec.images.middleware",
        "is empty",
        id="provider-image-empty",
    ),
]


@pytest.mark.parametrize(("text", "path", "message"), WARNED)
def test_value_upstream_accepts_is_warned_not_refused(
    text: str, path: str, message: str, tmp_path: Path
) -> None:
    file = tmp_path / "warned.yaml"
    file.write_text(text, encoding="utf-8")
    run = run_validate(file)
    assert run.code == 0, run.output
    warnings = [line for line in run.stdout.splitlines() if line.startswith(f"  warning: {path}: ")]
    assert any(message in line for line in warnings), run.output


def test_duplicate_key_names_its_line(tmp_path: Path) -> None:
    path = tmp_path / "dup.yaml"
    path.write_text(
        "apiVersion: tensor-fusion.ai/v1\nkind: GPUPool\nmetadata:\n  name: x\n  name: y\n"
    )
    run = run_validate(path)
    assert run.code == 1, run.output
    (header,) = _invalid_lines(run)
    assert header.startswith(f"{path}:5: YAML: INVALID"), run.output


def test_good_and_bad_documents_in_one_file(tmp_path: Path) -> None:
    path = tmp_path / "mixed.yaml"
    good = profile("gpuCount: 2")
    bad = profile("gpuCount: 0")
    path.write_text(good + "---\n" + bad)
    run = run_validate(path)
    assert run.code == 1, run.output
    headers = [line for line in run.stdout.splitlines() if not line.startswith("  ")]
    assert len(headers) == 2, run.output
    assert headers[0] == f"{path}:1: WorkloadProfile/x: OK"
    second = len(good.splitlines()) + 2  # the line after the good document and the '---'
    assert headers[1].startswith(f"{path}:{second}: WorkloadProfile/x: INVALID (1 error)")
    assert "  error: spec.gpuCount: must be >= 1" in run.stdout


def test_nonexistent_file_is_a_usage_error(tmp_path: Path) -> None:
    path = tmp_path / "missing.yaml"
    run = run_validate(path)
    assert run.code == 2, run.output
    assert f"{path}: cannot read: No such file or directory" in run.stderr
    assert "INVALID" not in run.stdout


def test_directory_is_a_usage_error(tmp_path: Path) -> None:
    run = run_validate(tmp_path)
    assert run.code == 2, run.output
    assert f"{tmp_path}: cannot read:" in run.stderr


def test_non_utf8_file_is_a_usage_error(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes("metadata:\n  name: caf\xe9\n".encode("latin-1"))
    run = run_validate(path)
    assert run.code == 2, run.output
    assert f"{path}: cannot read:" in run.stderr


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n", "---\n---\n"])
def test_empty_file_is_reported(text: str, tmp_path: Path) -> None:
    path = tmp_path / "empty.yaml"
    path.write_text(text)
    run = run_validate(path)
    assert run.code != 0, run.output
    assert "no documents found" in run.output


@pytest.mark.parametrize(
    ("plugin_config", "error"),
    [
        (
            "- name: NoSuchPlugin\n  args: {}",
            "profiles[0].pluginConfig[0].name: unknown plugin 'NoSuchPlugin'",
        ),
        (
            "- name: DefaultBinder\n  args: {x: 1}",
            "profiles[0].pluginConfig[0].args",
        ),
    ],
)
def test_plugin_names_are_checked_as_the_scheduler_builds_them(
    tmp_path: Path, plugin_config: str, error: str
) -> None:
    path = tmp_path / "scheduler.yaml"
    path.write_text(scheduler(plugin_config))
    run = run_validate(path)
    assert run.code == 1, run.output
    assert f"  error: {error}" in run.stdout


def test_every_error_in_plugin_args_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "scheduler.yaml"
    path.write_text(
        scheduler("- name: GPUResourcesFit\n  args: {vramWeight: 1.5, maxWorkerPerNode: 0}")
    )
    run = run_validate(path)
    assert run.code == 1, run.output
    assert "  error: profiles[0].pluginConfig[0].args.vramWeight: must be <= 1" in run.stdout
    assert "  error: profiles[0].pluginConfig[0].args.maxWorkerPerNode: must be >= 1" in run.stdout


def test_yaml_merge_key_is_not_an_error(tmp_path: Path) -> None:
    path = tmp_path / "values.yaml"
    path.write_text(
        "defaults: &defaults {replicaCount: 2}\n"
        "controller:\n  <<: *defaults\n  command: [/manager, -leader-elect]\n"
    )
    run = run_validate(path)
    assert run.code == 0, run.output
    assert run.stdout.startswith(f"{path}:1: Helm values: OK"), run.output


def test_alias_bomb_is_answered(tmp_path: Path) -> None:
    # 10**8 leaves from 10 lines: the check must not walk them (the timeout only guards a hang).
    lines = ["a0: &a0 [" + ", ".join(["x"] * 10) + "]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 8)]
    path = tmp_path / "bomb.yaml"
    path.write_text("controller:\n  admissionWebhooks:\n" + _block("\n".join(lines), 4) + "\n")
    run = run_validate(path, timeout=120, process=True)
    assert run.code in (0, 1), run.output
    assert f"{path}:1: Helm values: " in run.stdout, run.output
