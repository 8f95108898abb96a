"""`tensor-fusion simulate --fleet FLEET.yaml POD.yaml`: JSON on stdout, exit 0 when the pod
fits, 1 when it does not, 2 on bad input (with the file and field named)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tensorfusion.cli import main

GUIDE = Path(__file__).parents[1] / "fixtures" / "guide"
R9 = GUIDE / "r09-simulate-pod.yaml"


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("fleet") / "fleet.yaml"
    assert (
        main(
            [
                "fleet",
                "generate",
                "--nodes",
                "20",
                "--gpus-per-node",
                "8",
                "--model",
                "H100",
                "--fill",
                "0.6",
                "--seed",
                "3",
                "-o",
                str(path),
            ]
        )
        == 0
    )
    return path


def test_the_guide_pod_on_a_generated_fleet(
    fleet: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        main(
            [
                "simulate",
                "--fleet",
                str(fleet),
                "--scheduler-config",
                str(GUIDE / "r08-scheduler-config.yaml"),
                str(R9),
            ]
        )
        == 0
    )
    result = json.loads(capsys.readouterr().out)
    assert result["schedulable"] is True
    assert result["pod"] == "default/test-pod"
    assert result["node"].startswith("node-")
    assert result["gpus"][0].startswith(result["node"] + "-gpu-")
    assert [stage["plugin"] for stage in result["filterStages"]][-2:] == [
        "GPUResourcesFit",
        "GPUNetworkTopologyAware",
    ]
    assert len(result["topNodes"]) == 5


def test_an_unschedulable_pod_exits_1_with_a_diagnosis(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fleet = tmp_path / "empty-fleet.yaml"
    assert (
        main(
            [
                "fleet",
                "generate",
                "--nodes",
                "20",
                "--gpus-per-node",
                "8",
                "--model",
                "H100",
                "-o",
                str(fleet),
            ]
        )
        == 0
    )
    pod = tmp_path / "pod.yaml"
    pod.write_text(
        R9.read_text()
        .replace('vram-request: "16Gi"', 'vram-request: "81Gi"')
        .replace('vram-limit: "16Gi"', 'vram-limit: "81Gi"')
        .replace('tflops-request: "100"', 'tflops-request: "1"')
        .replace('tflops-limit: "100"', 'tflops-limit: "1"')
    )
    assert main(["simulate", "--fleet", str(fleet), str(pod)]) == 1
    result = json.loads(capsys.readouterr().out)
    assert result["schedulable"] is False
    assert result["diagnosis"]["reasons"] == [
        {"plugin": "GPUResourcesFit", "nodes": 20, "reason": "insufficient VRAM on every GPU"}
    ]


@pytest.mark.parametrize(
    ("pod_text", "message"),
    [
        ("kind: Deployment\nmetadata: {}\nspec: {}\n", "kind: must be Pod"),
        ("a: [1\n", "malformed YAML"),
        ("kind: Pod\n---\nkind: Pod\n", "exactly one Pod"),
        (
            "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  schedulerName: other\n"
            "  containers: [{name: c}]\n",
            "spec.schedulerName: no profile named 'other'",
        ),
    ],
)
def test_a_bad_pod_file_exits_2(
    fleet: Path, tmp_path: Path, pod_text: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    pod = tmp_path / "pod.yaml"
    pod.write_text(pod_text)
    assert main(["simulate", "--fleet", str(fleet), str(pod)]) == 2
    assert message in capsys.readouterr().err


def test_a_bad_fleet_exits_2_naming_the_object(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fleet = tmp_path / "fleet.yaml"
    fleet.write_text(
        "apiVersion: tensor-fusion.ai/v1\nkind: GPU\nmetadata:\n  name: g0\n"
        "  labels: {tensor-fusion.ai/owner: missing}\n"
        "status: {capacity: {tflops: '-1', vram: 80Gi}}\n"
    )
    assert main(["simulate", "--fleet", str(fleet), str(R9)]) == 2
    assert "GPU/g0" in capsys.readouterr().err


def test_a_bad_scheduler_config_exits_2_naming_plugin_and_field(
    fleet: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(
        (GUIDE / "r08-scheduler-config.yaml")
        .read_text()
        .replace("vramWeight: 0.7", "vramWeight: 7")
    )
    assert (
        main(["simulate", "--fleet", str(fleet), "--scheduler-config", str(config), str(R9)]) == 2
    )
    err = capsys.readouterr().err
    assert "profiles[0].pluginConfig[0].args.vramWeight" in err


def test_a_missing_file_exits_2(fleet: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", "--fleet", str(fleet), "/nonexistent/pod.yaml"]) == 2
    assert "/nonexistent/pod.yaml" in capsys.readouterr().err
