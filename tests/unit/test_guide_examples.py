"""Every YAML block of the production guide (R1-R15) validates OK, through the real command."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tensorfusion.api.validate import validate_text

GUIDE = Path(__file__).parent.parent / "fixtures" / "guide"
BLOCKS = sorted(GUIDE.glob("*.yaml"))


def test_every_requirement_with_a_yaml_block_has_a_fixture() -> None:
    numbers = {path.name[1:3] for path in BLOCKS}
    assert numbers == {"01", "02", "03", "04", "05", "06", "07", "08", "09", "11", "14", "15"}
    assert len(BLOCKS) == 16


@pytest.mark.parametrize("path", BLOCKS, ids=lambda p: p.stem)
def test_guide_block_validates_ok(path: Path) -> None:
    results = validate_text(path.read_text(), source=path.name)
    assert results, "the block has at least one document"
    for result in results:
        assert result.ok, [str(issue) for issue in result.errors]


def test_validate_command_accepts_the_whole_guide() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "tensorfusion.cli", "validate", *map(str, BLOCKS)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    lines = [line for line in run.stdout.splitlines() if not line.startswith("  ")]
    assert len(lines) == len(BLOCKS)
    assert all(line.endswith(": OK") for line in lines)


def test_misplaced_template_labels_are_reported_not_ignored() -> None:
    # R14's workload block puts `labels` beside the template's metadata: Kubernetes would
    # drop them, so the pod would silently not be a TensorFusion pod. We say so.
    result = validate_text((GUIDE / "r14-workload-ratios.yaml").read_text())[0]
    messages = [str(issue) for issue in result.warnings]
    assert any(
        "spec.template.labels" in m and "spec.template.metadata.labels" in m for m in messages
    )
    assert any("annotations are ignored" in m for m in messages)


def test_pasted_documentation_marker_is_explained() -> None:
    text = (GUIDE / "r14-oversubscription.yaml").read_text()
    marked = text.replace(
        "tflopsOversellRatio: 300", "tflopsOversellRatio: 300  // [!code highlight]"
    )
    result = validate_text(marked)[0]
    assert not result.ok
    (issue,) = result.errors
    assert issue.path.endswith("oversubscription.tflopsOversellRatio")
    assert "documentation marker" in issue.message
