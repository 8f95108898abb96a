"""The chart rendered by the real `helm template`, as parsed objects, and the guide's values
files it is rendered with."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import yaml

REPO: Final = Path(__file__).resolve().parents[2]
CHART: Final = REPO / "charts" / "tensor-fusion"
GUIDE: Final = REPO / "tests" / "fixtures" / "guide"
RELEASE: Final = "tensor-fusion-sys"
NAMESPACE: Final = "tensor-fusion-sys"


class HelmFailed(AssertionError):
    """helm exited non-zero; the message is its stderr."""


@dataclass(frozen=True)
class Rendered:
    objects: list[dict[str, Any]]

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [obj for obj in self.objects if obj["kind"] == kind]

    def one(self, kind: str, name: str) -> dict[str, Any]:
        found = [obj for obj in self.of_kind(kind) if obj["metadata"]["name"] == name]
        assert len(found) == 1, f"{kind}/{name}: rendered {len(found)} times"
        return found[0]


def _helm(helm: Path, *args: str) -> str:
    done = subprocess.run(
        [str(helm), *args], capture_output=True, text=True, timeout=120, check=False
    )
    if done.returncode != 0:
        raise HelmFailed(done.stderr.strip())
    return done.stdout


def _value_args(values: Sequence[Path], sets: Sequence[str]) -> list[str]:
    args = [arg for path in values for arg in ("-f", str(path))]
    return args + [arg for item in sets for arg in ("--set", item)]


def lint(helm: Path, values: Sequence[Path] = (), sets: Sequence[str] = ()) -> str:
    return _helm(helm, "lint", "--strict", str(CHART), *_value_args(values, sets))


def render(
    helm: Path,
    values: Sequence[Path] = (),
    sets: Sequence[str] = (),
    *,
    release: str = RELEASE,
    namespace: str = NAMESPACE,
) -> Rendered:
    out = _helm(helm, "template", release, str(CHART), "-n", namespace, *_value_args(values, sets))
    return Rendered([obj for obj in yaml.safe_load_all(out) if obj])
