"""The CRDs in the chart are exactly what the models generate, are structural, and accept
and reject the same manifests as our own validation."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from tensorfusion.api.crd import crd_files, write_crds
from tensorfusion.api.kinds import KINDS, KINDS_BY_NAME
from tensorfusion.api.validate import validate_text
from tensorfusion.cli import main

ROOT = Path(__file__).parent.parent.parent
CRD_DIR = ROOT / "charts" / "tensor-fusion" / "crds"
GUIDE = ROOT / "tests" / "fixtures" / "guide"
FILES = crd_files()


def _schema(kind: str) -> dict[str, Any]:
    name = f"tensor-fusion.ai_{KINDS_BY_NAME[kind].plural}.yaml"
    document = yaml.safe_load(FILES[name])
    schema: dict[str, Any] = document["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


def _nodes(node: Any, path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    if isinstance(node, dict):
        yield path, node
        for key, value in node.get("properties", {}).items():
            yield from _nodes(value, f"{path}.{key}")
        for key in ("items", "additionalProperties"):
            if isinstance(node.get(key), dict):
                yield from _nodes(node[key], f"{path}[{key}]")


def test_committed_crds_match_the_models() -> None:
    committed = {path.name: path.read_text() for path in CRD_DIR.glob("*.yaml")}
    assert committed == FILES, "run `tensor-fusion crds` and commit the result"


def test_crds_check_command_reports_drift(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # In this process: a fresh interpreter per run costs seconds.
    write_crds(tmp_path)
    command = ["crds", "--output-dir", str(tmp_path), "--check"]
    code, out = main(command), capsys.readouterr().out
    assert code == 0, out
    edited = tmp_path / "tensor-fusion.ai_gpupools.yaml"
    edited.write_text(edited.read_text().replace("minimum: 100", "minimum: 1"))
    assert main(command) == 1
    assert "tensor-fusion.ai_gpupools.yaml: out of date" in capsys.readouterr().out


def test_one_crd_per_kind_with_scope_and_names() -> None:
    assert len(FILES) == len(KINDS) == 12
    for info in KINDS:
        document = yaml.safe_load(FILES[f"tensor-fusion.ai_{info.plural}.yaml"])
        assert document["metadata"]["name"] == f"{info.plural}.tensor-fusion.ai"
        assert document["spec"]["scope"] == info.scope
        assert document["spec"]["names"]["kind"] == info.kind


@pytest.mark.parametrize("kind", sorted(KINDS_BY_NAME))
def test_schema_is_structural(kind: str) -> None:
    text = yaml.safe_dump(_schema(kind))
    assert "$ref" not in text
    assert "type: 'null'" not in text
    assert "type: null" not in text
    for path, node in _nodes(_schema(kind)):
        typed = "type" in node or node.get("x-kubernetes-int-or-string")
        assert typed or node.get("x-kubernetes-preserve-unknown-fields"), path
        assert not ("properties" in node and "additionalProperties" in node), path


def test_bounds_and_enums_reach_the_schema() -> None:
    over = _schema("GPUPool")["properties"]["spec"]["properties"]["capacityConfig"]["properties"][
        "oversubscription"
    ]["properties"]
    assert over["tflopsOversellRatio"]["minimum"] == 100
    assert over["vramExpandToHostMem"]["maximum"] == 100
    mode = _schema("GPUPool")["properties"]["spec"]["properties"]["nodeManagerConfig"][
        "properties"
    ]["provisioningMode"]
    assert mode["enum"] == ["Provisioned", "AutoSelect", "Karpenter"]
    node_class = _schema("GPUNodeClass")["properties"]["spec"]["properties"]["osImageType"]
    assert node_class["enum"] == ["Private", "Public", "System"]


def test_advisory_checks_stay_out_of_the_schema() -> None:
    # Upstream's CRDs accept these values, so ours must too; `validate` only warns.
    claim = _schema("GPUNodeClaim")["properties"]["spec"]["properties"]["capacityType"]
    assert claim == {"default": "OnDemand", "type": "string"}
    rolling = _schema("GPUPool")["properties"]["spec"]["properties"]["nodeManagerConfig"][
        "properties"
    ]["nodePoolRollingUpdatePolicy"]["properties"]["batchPercentage"]
    assert (rolling["minimum"], rolling["maximum"]) == (0, 100)


def _guide_objects() -> Iterator[tuple[str, dict[str, Any]]]:
    for path in sorted(GUIDE.glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            if isinstance(document, dict) and document.get("kind") in KINDS_BY_NAME:
                yield path.stem, document


@pytest.mark.parametrize(("name", "obj"), list(_guide_objects()), ids=lambda v: str(v)[:30])
def test_crd_schema_accepts_the_guide(name: str, obj: dict[str, Any]) -> None:
    jsonschema.Draft4Validator(_schema(obj["kind"])).validate(obj)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("tflopsOversellRatio", 50),
        ("tflopsOversellRatio", "300"),
        ("vramExpandToHostMem", 101),
        ("vramExpandToHostDisk", -1),
    ],
)
def test_crd_schema_and_validate_reject_the_same_values(field: str, value: object) -> None:
    obj = next(o for name, o in _guide_objects() if name == "r14-oversubscription")
    bad = copy.deepcopy(obj)
    bad["spec"]["gpuPools"][0]["specTemplate"]["capacityConfig"]["oversubscription"][field] = value
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft4Validator(_schema("TensorFusionCluster")).validate(bad)
    (result,) = validate_text(yaml.safe_dump(bad))
    assert not result.ok
    assert result.errors[0].path.endswith(f"oversubscription.{field}")
