"""Fixtures shared by the whole test suite."""

from __future__ import annotations

import pytest

from tests.mockcuda_build import MockCuda, build_mockcuda


@pytest.fixture(scope="session")
def mockcuda() -> MockCuda:
    """The mock CUDA driver and NVML, built once per session (see tests/mockcuda)."""
    return build_mockcuda()
