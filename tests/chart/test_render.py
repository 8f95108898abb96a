"""The chart through the real helm v4 (`lint --strict` and `template`) with the default values
and the guide's values files, every object valid against the Kubernetes schemas and our CRDs,
and what the Deployment and DaemonSet give the processes accepted by those processes' own
parsers (the controller's flags, the agent's arguments, the GREPTIME_* variables)."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
import yaml

from tensorfusion.alert.builtin_rules import default_dynamic_config
from tensorfusion.api.dynamic_config import DynamicConfig
from tensorfusion.api.scheduler_config import KubeSchedulerConfiguration
from tensorfusion.cli import _parser as cli_parser
from tensorfusion.controller.flags import ControllerFlags, parse_flags
from tensorfusion.metrics.greptime_env import greptime_from_env
from tests.chart.render import CHART, GUIDE, NAMESPACE, HelmFailed, Rendered, lint, render
from tests.chart.schemas import problems

CASES = {
    "default": ((), ()),
    "r01-production": ((GUIDE / "r01-values-production.yaml",), ()),
    "r03-existing-alertmanager": ((GUIDE / "r03-existing-alertmanager.yaml",), ()),
    "r03-chart-alertmanager": ((GUIDE / "r03-chart-alertmanager.yaml",), ()),
    "r02-greptime-cloud": ((GUIDE / "r02-greptime.yaml",), ()),
    "external-greptime": (
        (),
        ("greptime.installStandalone=false", "greptime.host=db.example.com", "greptime.port=4000"),
    ),
    "migration-cert-manager": (
        (),
        (
            "controller.nvidiaOperatorProgressiveMigration=true",
            "controller.admissionWebhooks.certManager.enabled=true",
        ),
    ),
}
CONTROLLER = "tensor-fusion-sys-controller"


@pytest.fixture(scope="module")
def rendered(helm: Path) -> dict[str, Rendered]:
    return {name: render(helm, *case) for name, case in CASES.items()}


def _container(workload: dict[str, Any]) -> dict[str, Any]:
    (container,) = workload["spec"]["template"]["spec"]["containers"]
    return dict(container)


def _secret_env(out: Rendered, name: str) -> dict[str, str]:
    secret = out.one("Secret", name)
    return {
        **secret.get("stringData", {}),
        **{key: base64.b64decode(value).decode() for key, value in secret.get("data", {}).items()},
    }


def controller_flags(out: Rendered) -> ControllerFlags:
    container = _container(out.one("Deployment", CONTROLLER))
    assert container["command"] == ["tensor-fusion", "controller"]
    return parse_flags(container["args"], namespace=lambda: "unused")


@pytest.mark.parametrize("case", CASES)
def test_lint_passes_and_every_object_is_valid(
    helm: Path, rendered: dict[str, Rendered], case: str
) -> None:
    lint(helm, *CASES[case])
    # cert-manager's kinds have no schema here; test_webhook checks what they hold.
    checked = [o for o in rendered[case].objects if not o["apiVersion"].startswith("cert-manager")]
    found = [problem for obj in checked for problem in problems(obj)]
    assert found == []


def test_the_schema_check_catches_a_bad_object(rendered: dict[str, Rendered]) -> None:
    deployment = rendered["default"].one("Deployment", CONTROLLER)
    deployment["spec"]["replicas"] = "two"
    assert len(problems(deployment)) == 1  # kubernetes-validate stops at the first
    config = rendered["default"].one("ConfigMap", "tensor-fusion-sys-config")
    assert problems({**config, "data": {"config/scheduler-config.yaml": ""}}) != []


def test_default_values_wire_the_chart_greptime_and_alertmanager(
    rendered: dict[str, Rendered],
) -> None:
    out = rendered["default"]
    flags = controller_flags(out)
    assert flags.alert_manager_addr == "tensor-fusion-sys-alertmanager.tensor-fusion-sys.svc:9093"
    assert flags.enable_alert
    assert flags.leader_elect
    assert flags.metrics_bind_address == ("0.0.0.0", 9000)
    assert flags.not_implemented == ("--enable-auto-scale", "--enable-auto-expander")
    assert flags.namespace == NAMESPACE
    assert flags.webhook_port == 9443
    assert flags.webhook_image == _container(out.one("Deployment", CONTROLLER))["image"]
    service_ports = {p["name"]: p["port"] for p in out.one("Service", CONTROLLER)["spec"]["ports"]}
    assert service_ports == {"api": 8080, "webhook": 9443, "metrics": 9000}
    greptime = greptime_from_env(_secret_env(out, "tensor-fusion-sys-greptime"))
    assert greptime is not None
    assert (greptime.host, greptime.port) == (
        "tensor-fusion-sys-greptimedb.tensor-fusion-sys.svc",
        4000,
    )
    db_ports = {
        p["port"] for p in out.one("Service", "tensor-fusion-sys-greptimedb")["spec"]["ports"]
    }
    assert 4000 in db_ports
    assert out.of_kind("PodDisruptionBudget") == []
    alertmanager = out.one("StatefulSet", "tensor-fusion-sys-alertmanager")
    assert alertmanager["spec"]["replicas"] == 1
    assert "volumeClaimTemplates" not in alertmanager["spec"]


def test_mounted_files_are_what_the_controller_loads(rendered: dict[str, Rendered]) -> None:
    out = rendered["default"]
    deployment = out.one("Deployment", CONTROLLER)
    flags = controller_flags(out)
    mounts = {m["name"]: m["mountPath"] for m in _container(deployment)["volumeMounts"]}
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    config = volumes["scheduler-config"]["configMap"]
    assert config["name"] == "tensor-fusion-sys-config"
    (item,) = config["items"]
    assert flags.scheduler_config == Path(mounts["scheduler-config"]) / item["path"]
    text = out.one("ConfigMap", "tensor-fusion-sys-config")["data"][item["key"]]
    KubeSchedulerConfiguration.model_validate(yaml.safe_load(text))
    dynamic = out.one("ConfigMap", volumes["dynamic-config"]["configMap"]["name"])["data"]
    assert flags.dynamic_config == Path(mounts["dynamic-config"]) / "dynamic-config.yaml"
    loaded = DynamicConfig.model_validate(yaml.safe_load(dynamic["dynamic-config.yaml"]))
    # The chart's defaults are the built-in rules the controller uses without a file.
    assert loaded.alert_rules == default_dynamic_config().alert_rules
    assert volumes["webhook-certs"]["secret"]["secretName"] == "tensor-fusion-webhook-secret"
    assert flags.webhook_cert_dir == Path(mounts["webhook-certs"])


def test_controller_is_hardened_and_probed(
    rendered: dict[str, Rendered],
) -> None:
    deployment = rendered["default"].one("Deployment", CONTROLLER)
    pod = deployment["spec"]["template"]["spec"]
    container = _container(deployment)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": 8081}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": 8081}
    assert controller_flags(rendered["default"]).health_probe_bind_address == ("0.0.0.0", 8081)
    anti = pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    assert anti[0]["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"


def test_agent_daemonset_runs_the_agent_unprivileged_on_gpu_nodes(
    rendered: dict[str, Rendered],
) -> None:
    out = rendered["default"]
    daemonset = out.one("DaemonSet", "tensor-fusion-sys-agent")
    pod = daemonset["spec"]["template"]["spec"]
    container = _container(daemonset)
    assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert pod["hostPID"] is False
    assert container["securityContext"]["privileged"] is False
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["NVIDIA_VISIBLE_DEVICES"] == "all"
    assert "NODE_NAME" in env
    args = cli_parser().parse_args([container["command"][1], *container["args"]])
    host_paths = {v["name"]: v["hostPath"]["path"] for v in pod["volumes"] if "hostPath" in v}
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert (
        args.regions_root == mounts["regions"] == host_paths["regions"] == "/run/tensor-fusion/shm"
    )
    assert Path(args.kubelet_checkpoint).parent == Path(mounts["device-plugins"])
    assert host_paths["device-plugins"] == "/var/lib/kubelet/device-plugins"
    assert {"name": "http", "containerPort": 8000} in container["ports"]


def test_r01_production_values_render_the_guide_profile(rendered: dict[str, Rendered]) -> None:
    out = rendered["r01-production"]
    deployment = out.one("Deployment", CONTROLLER)
    assert deployment["spec"]["replicas"] == 2
    assert _container(deployment)["resources"] == {
        "requests": {"memory": "1Gi", "cpu": "1000m"},
        "limits": {"memory": "4Gi", "cpu": "4000m"},
    }
    assert out.one("PodDisruptionBudget", CONTROLLER)["spec"]["minAvailable"] == 1
    agent = _container(out.one("DaemonSet", "tensor-fusion-sys-agent"))
    assert agent["resources"]["requests"] == {"cpu": "500m", "memory": "256Mi"}
    alertmanager = out.one("StatefulSet", "tensor-fusion-sys-alertmanager")
    assert alertmanager["spec"]["replicas"] == 3
    (claim,) = alertmanager["spec"]["volumeClaimTemplates"]
    assert claim["spec"]["resources"]["requests"]["storage"] == "5Gi"
    peers = [a for a in _container(alertmanager)["args"] if a.startswith("--cluster.peer=")]
    assert len(peers) == 3


@pytest.mark.parametrize("case", ["r01-production", "r02-greptime-cloud"])
def test_cloud_greptime_is_wired(rendered: dict[str, Rendered], case: str) -> None:
    out = rendered[case]
    greptime = greptime_from_env(_secret_env(out, "tensor-fusion-sys-greptime"))
    assert greptime is not None
    assert greptime.host == "<db-instance>.us-west-2.aws.greptime.cloud"
    assert (greptime.port, greptime.user, greptime.password, greptime.db, greptime.is_cloud) == (
        5001,
        "username",
        "your-own-password",
        "db-id-public",
        True,
    )
    assert [o for o in out.objects if "greptimedb" in o["metadata"]["name"]] == []


def test_external_greptime(rendered: dict[str, Rendered]) -> None:
    greptime = greptime_from_env(
        _secret_env(rendered["external-greptime"], "tensor-fusion-sys-greptime")
    )
    assert greptime is not None
    assert (greptime.host, greptime.port, greptime.is_cloud) == ("db.example.com", 4000, False)


def test_existing_alertmanager_is_used_as_given(rendered: dict[str, Rendered]) -> None:
    out = rendered["r03-existing-alertmanager"]
    flags = controller_flags(out)
    assert flags.alert_manager_addr == "<your-own-alert-manager>.svc.cluster.local:9093"
    assert [o for o in out.objects if "alertmanager" in o["metadata"]["name"]] == []


def test_chart_alertmanager_gets_the_config_as_given(rendered: dict[str, Rendered]) -> None:
    secret = rendered["r03-chart-alertmanager"].one("Secret", "tensor-fusion-sys-alertmanager")
    config = yaml.safe_load(secret["stringData"]["alertmanager.yml"])
    given = yaml.safe_load((GUIDE / "r03-chart-alertmanager.yaml").read_text(encoding="utf-8"))
    assert config["receivers"] == given["alert"]["alertManagerConfig"]["receivers"]
    # An empty route in the values file keeps the chart's default receiver (Helm merges maps).
    assert config["route"]["receiver"] == "default-receiver"


def test_scheduler_configmap_name_does_not_follow_the_release(helm: Path) -> None:
    out = render(helm, release="other", namespace="ops")
    config = out.one("ConfigMap", "tensor-fusion-sys-config")
    assert config["metadata"]["namespace"] == "ops"
    assert out.one("Deployment", "other-tensor-fusion-controller")


def test_default_cluster_and_template_are_kept_on_uninstall(rendered: dict[str, Rendered]) -> None:
    out = rendered["default"]
    cluster = out.one("TensorFusionCluster", "tensor-fusion")
    template = out.one("SchedulingConfigTemplate", "default")
    for obj in (cluster, template):
        assert obj["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    (pool,) = cluster["spec"]["gpuPools"]
    assert pool["name"] == "shared"
    assert pool["specTemplate"]["capacityConfig"]["oversubscription"]["tflopsOversellRatio"] == 2000
    assert pool["specTemplate"]["schedulingConfigTemplate"] == "default"


def test_dashboard_configmap_carries_the_grafana_label(rendered: dict[str, Rendered]) -> None:
    dashboard = rendered["default"].one("ConfigMap", "tensor-fusion-sys-dashboard")
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    expected = (CHART / "dashboards" / "tensor-fusion.json").read_text(encoding="utf-8")
    assert dashboard["data"]["tensor-fusion.json"].strip() == expected.strip()


BAD_VALUES = {
    "controller.admissionWebhooks.failurePolicy=Sometimes": "admissionWebhooks.failurePolicy",
    "controller.command={/manager,-webhook-port=9000}": "-webhook-port=9000 is set by the chart",
    "controller.replicaCount=0": "controller.replicaCount",
    "greptime.isCloud=true": "greptime.installStandalone",
    "initialGpuNodeLabelSelector==true": "initialGpuNodeLabelSelector",
}


@pytest.mark.parametrize("setting", BAD_VALUES)
def test_bad_values_fail_naming_the_field(helm: Path, setting: str) -> None:
    with pytest.raises(HelmFailed, match=BAD_VALUES[setting]):
        render(helm, sets=[setting])


def test_enable_alert_without_an_alertmanager_fails(helm: Path) -> None:
    with pytest.raises(HelmFailed, match="-enable-alert needs -alert-manager-addr"):
        render(helm, sets=["alert.enabled=false"])
    out = render(helm, sets=["alert.enabled=false", "controller.command={/manager,-leader-elect}"])
    assert controller_flags(out).alert_manager_addr is None
