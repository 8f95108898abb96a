"""Fixtures: `helm`, the real helm v4 binary (fetched once, as tests/kube's tools are)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.kube_tools import ToolsUnavailable, kube_tools_or_reason


@pytest.fixture(scope="session")
def helm() -> Path:
    tools = kube_tools_or_reason()
    if isinstance(tools, ToolsUnavailable):
        pytest.skip(str(tools))
    return tools.helm
