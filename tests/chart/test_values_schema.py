"""The chart's values.schema.json is what the Helm-values model generates, and it accepts and
refuses the same values files as `tensor-fusion validate` (checked here with the jsonschema
package on values merged as Helm merges them; tests/chart/test_install.py runs the real helm)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from tensorfusion.api.helm_values import CONTROLLER_FLAGS, HelmValues
from tensorfusion.api.validate import validate_text
from tensorfusion.api.values_schema import values_schema, values_schema_text, write_values_schema
from tensorfusion.cli import main
from tensorfusion.controller.flags import parse_flags
from tensorfusion.errors import ConfigError

ROOT = Path(__file__).parents[2]
CHART = ROOT / "charts" / "tensor-fusion"
GUIDE = ROOT / "tests" / "fixtures" / "guide"
VALUES_FILES = sorted(
    path for path in GUIDE.glob("r0*.yaml") if "apiVersion" not in path.read_text()
)
VALIDATOR = jsonschema.Draft202012Validator(values_schema())


def _defaults() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((CHART / "values.yaml").read_text())
    return loaded


def _merged(base: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
    """`given` over `base`, as Helm coalesces a values file over the chart's: maps merge,
    anything else (lists included) replaces, and null removes the key."""
    out = copy.deepcopy(base)
    for key, value in given.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merged(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _schema_errors(values: dict[str, Any]) -> list[str]:
    return [
        f"{'.'.join(map(str, error.absolute_path))}: {error.message}"
        for error in VALIDATOR.iter_errors(values)
    ]


def test_committed_schema_matches_the_model() -> None:
    committed = (CHART / "values.schema.json").read_text(encoding="utf-8")
    assert committed == values_schema_text(), "run `tensor-fusion crds` and commit the result"


def _crds(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """`tensor-fusion crds ARGS` in this process: a fresh interpreter costs seconds a run."""
    code = main(["crds", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_crds_check_reports_a_stale_schema(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    crds, schema = tmp_path / "crds", tmp_path / "values.schema.json"
    paths = ("--output-dir", str(crds), "--values-schema", str(schema))
    code, out, err = _crds(capsys, *paths)
    assert code == 0, err
    assert str(schema) in out.splitlines()
    code, out, _ = _crds(capsys, *paths, "--check")
    assert code == 0, out
    schema.write_text(schema.read_text().replace('"additionalProperties": false', "{}", 1))
    code, out, _ = _crds(capsys, *paths, "--check")
    assert code == 1
    assert out.strip() == f"{schema}: out of date (run `tensor-fusion crds`)"
    schema.unlink()
    code, out, _ = _crds(capsys, *paths, "--check")
    assert code == 1
    assert str(schema) in out


def test_write_makes_the_directory(tmp_path: Path) -> None:
    path = write_values_schema(tmp_path / "chart" / "values.schema.json")
    assert json.loads(path.read_text())["$schema"].endswith("2020-12/schema")


def test_the_schema_is_valid_json_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(values_schema())


def test_the_charts_values_are_modelled_key_by_key() -> None:
    defaults = _defaults()
    assert _schema_errors(defaults) == []
    model = HelmValues.model_validate(defaults)
    # dynamicConfig is the controller's own file format, checked by its own model.
    assert [p for p in model.unknown_fields() if not p.startswith("dynamicConfig.")] == []
    result = validate_text((CHART / "values.yaml").read_text())[0]
    assert result.ok, [str(issue) for issue in result.errors]


@pytest.mark.parametrize("path", VALUES_FILES, ids=lambda p: p.stem)
def test_guide_values_pass_both(path: Path) -> None:
    given = yaml.safe_load(path.read_text())
    assert _schema_errors(_merged(_defaults(), given)) == []
    assert all(result.ok for result in validate_text(path.read_text()))


BAD = [
    ("controller:\n  replicaCout: 2\n", "controller", "replicaCout"),
    ("controller:\n  replicaCount: two\n", "controller.replicaCount", "'two' is not of type"),
    ("controller:\n  replicaCount: 0\n", "controller.replicaCount", "less than the minimum"),
    ("controller:\n  logLevel: verbose\n", "controller.logLevel", "'verbose' is not one of"),
    (
        "controller:\n  admissionWebhooks:\n    failurePolicy: Never\n",
        "controller.admissionWebhooks.failurePolicy",
        "'Never' is not one of",
    ),
    ("controller:\n  image:\n    tagg: v1\n", "controller.image", "tagg"),
    ("greptime:\n  port: '4000'\n", "greptime.port", "'4000' is not of type"),
    ("greptime:\n  persistence:\n    enable: true\n", "greptime.persistence", "enable"),
    ("alert:\n  enabled: 'yes'\n", "alert.enabled", "'yes' is not of type 'boolean'"),
    ("agent:\n  interval: 0\n", "agent.interval", "less than or equal to the minimum"),
    (
        "cluster:\n  pool:\n    defaultIsolationMode: strict\n",
        "cluster.pool.defaultIsolationMode",
        "'strict' is not one of",
    ),
    ("serviceAccount:\n  create: 1\n", "serviceAccount.create", "not of type 'boolean'"),
    ("initialGpuNodeLabelSelector: 'a=b,c=d'\n", "initialGpuNodeLabelSelector", "match"),
]


@pytest.mark.parametrize(
    ("text", "where", "says"), BAD, ids=[f"{b[1]}-{i}" for i, b in enumerate(BAD)]
)
def test_bad_values_fail_both_naming_the_field(text: str, where: str, says: str) -> None:
    errors = _schema_errors(_merged(_defaults(), yaml.safe_load(text)))
    assert any(e.startswith(f"{where}:") and says in e for e in errors), errors
    (result,) = validate_text(text)
    assert not result.ok
    leaf = where.rsplit(".", maxsplit=1)[-1]
    assert any(leaf in str(issue) for issue in result.errors), result.errors


def test_an_unknown_key_is_refused_with_a_suggestion() -> None:
    (result,) = validate_text("controller:\n  replicaCout: 2\n")
    (issue,) = result.errors
    assert issue.path == "controller.replicaCout"
    assert "did you mean 'replicaCount'?" in issue.message


def test_the_top_level_stays_open_but_is_reported() -> None:
    text = "global: {imageRegistry: r.example}\ncontroller:\n  replicaCount: 2\n"
    assert _schema_errors(_merged(_defaults(), yaml.safe_load(text))) == []
    (result,) = validate_text(text)
    assert result.ok
    assert [issue.path for issue in result.warnings] == ["global"]


@pytest.mark.parametrize("flag", sorted(CONTROLLER_FLAGS))
def test_the_flag_table_is_the_controllers(flag: str) -> None:
    argv = [f"-{flag}=1"] if CONTROLLER_FLAGS[flag] else [f"-{flag}"]
    # Known, though its value may be refused (a port, an address) or need a partner flag.
    refused = None
    try:
        parse_flags(argv, namespace=lambda: "ns")
    except ConfigError as exc:
        refused = exc.message
    assert refused is None or "no such flag" not in refused, refused


def test_a_flag_the_chart_sets_is_refused_in_the_command() -> None:
    (result,) = validate_text("controller:\n  command: [/manager, -webhook-port=9443]\n")
    (issue,) = result.errors
    assert issue.path == "controller.command[1]"
    assert "set by the chart" in issue.message
