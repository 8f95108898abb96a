"""The fleet cache of `up --fleet`: a file read once is read back from the state dir while its
content and the package version are the same, and read again (and checked) otherwise."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

import tensorfusion
from tensorfusion.agent.discovery import fleet_objects
from tensorfusion.embedded import fleet_cache
from tensorfusion.embedded.fleet_cache import CACHE_FILE, read_fleet
from tensorfusion.errors import FleetError

EXAMPLE_FLEET = Path(__file__).resolve().parents[3] / "examples" / "fleets" / "h100.yaml"


@pytest.fixture
def fleet(tmp_path: Path) -> Path:
    path = tmp_path / "fleet.yaml"
    shutil.copy(EXAMPLE_FLEET, path)
    return path


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Counts the times the fleet file is parsed and checked."""
    seen: list[Path] = []

    def counted(path: Path, text: str | None = None) -> list[Any]:
        seen.append(path)
        return fleet_objects(path, text)

    monkeypatch.setattr(fleet_cache, "fleet_objects", counted)
    return seen


def test_the_same_file_is_read_once(fleet: Path, tmp_path: Path, reads: list[Path]) -> None:
    first = read_fleet(fleet, tmp_path)
    again = read_fleet(fleet, tmp_path)
    assert first == again == fleet_objects(fleet)
    assert reads == [fleet]


def test_a_changed_file_is_read_again(fleet: Path, tmp_path: Path, reads: list[Path]) -> None:
    read_fleet(fleet, tmp_path)
    fleet.write_text(fleet.read_text().replace("node-00001", "node-00009"))
    changed = read_fleet(fleet, tmp_path)
    assert reads == [fleet, fleet]
    assert changed == fleet_objects(fleet)
    assert changed != fleet_objects(EXAMPLE_FLEET)


def test_another_version_reads_the_file_again(
    fleet: Path, tmp_path: Path, reads: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    read_fleet(fleet, tmp_path)
    monkeypatch.setattr(fleet_cache, "__version__", "99.0.0")
    read_fleet(fleet, tmp_path)
    assert reads == [fleet, fleet]


@pytest.mark.parametrize("content", ["{not json", '{"key": 1}', '["a list"]', ""])
def test_an_unreadable_cache_is_replaced(
    fleet: Path, tmp_path: Path, reads: list[Path], content: str
) -> None:
    (tmp_path / CACHE_FILE).write_text(content)
    assert read_fleet(fleet, tmp_path) == fleet_objects(fleet)
    assert read_fleet(fleet, tmp_path) == fleet_objects(fleet)
    assert reads == [fleet]  # the second read came from the rewritten cache


def test_a_bad_fleet_is_refused_and_not_kept(fleet: Path, tmp_path: Path) -> None:
    fleet.write_text(fleet.read_text().replace("kind: GPUNode", "kind: GPUNode\nspec: 7", 1))
    with pytest.raises(FleetError):
        read_fleet(fleet, tmp_path)
    assert not (tmp_path / CACHE_FILE).exists()


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(FleetError, match=r"missing\.yaml"):
        read_fleet(tmp_path / "missing.yaml", tmp_path)


def test_objects_json_would_change_are_not_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # YAML allows integer keys; JSON would give them back as strings.
    objects = [{"kind": "Node", "metadata": {"name": "n", "labels": {1: "one"}}}]
    monkeypatch.setattr(fleet_cache, "fleet_objects", lambda path, text=None: objects)
    path = tmp_path / "fleet.yaml"
    path.write_text("anything")
    assert read_fleet(path, tmp_path) is objects
    assert not (tmp_path / CACHE_FILE).exists()


def test_the_cache_holds_the_key_and_the_objects(fleet: Path, tmp_path: Path) -> None:
    objects = read_fleet(fleet, tmp_path)
    entry = json.loads((tmp_path / CACHE_FILE).read_text())
    assert entry["objects"] == objects
    assert entry["key"].startswith(f"{tensorfusion.__version__}:")
    assert list(tmp_path.glob(f".{CACHE_FILE}.*")) == []  # no partial file left behind
