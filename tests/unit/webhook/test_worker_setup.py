"""The converted pod's init container: it copies the shim, waits for the agent's regions,
and fails saying why when they do not appear."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tensorfusion.shim import shim_path
from tensorfusion.webhook import worker_setup


def test_copies_the_shim_and_returns_once_the_regions_exist(tmp_path: Path) -> None:
    region = tmp_path / "device-0"
    region.write_bytes(b"")
    target = tmp_path / "libtfshim.so"
    assert worker_setup.main(["--copy-shim-to", str(target), "--wait-for", str(region)]) == 0
    assert target.read_bytes() == shim_path().read_bytes()


@pytest.mark.timing
def test_waits_until_a_region_appears(tmp_path: Path) -> None:
    link = tmp_path / "device-0"
    link.symlink_to("gpu-1.shm")  # the link alone is not the region
    appear = threading.Timer(0.3, (tmp_path / "gpu-1.shm").write_bytes, [b""])
    appear.start()
    try:
        assert worker_setup.missing_after([link], timeout_s=60) == []
    finally:
        appear.cancel()


def test_fails_naming_what_the_agent_did_not_make(tmp_path: Path) -> None:
    missing = tmp_path / "device-1"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            worker_setup.__name__,
            "--copy-shim-to",
            str(tmp_path / "libtfshim.so"),
            "--wait-for",
            str(missing),
            "--timeout",
            "0",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 1
    assert str(missing) in done.stderr
    assert "tensor-fusion agent" in done.stderr


def test_a_shim_that_cannot_be_copied_fails(tmp_path: Path) -> None:
    target = tmp_path / "no-such-dir" / "libtfshim.so"
    assert worker_setup.main(["--copy-shim-to", str(target)]) == 1
