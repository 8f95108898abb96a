"""The FailedScheduling Event the controller writes for a pod that does not fit."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, cast

import pytest

from tensorfusion.controller.events import failed_scheduling_event, failed_scheduling_recorder
from tensorfusion.errors import StoreError
from tensorfusion.store.interface import ClusterStore
from tensorfusion.store.local import LocalStore

POD: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "big", "namespace": "team", "uid": "u-1"},
}
MESSAGE = "0/2 nodes are available: 2 nodes: not enough VRAM"
NOW_NS = 1_700_000_000_123_456_789


def test_the_event_names_the_pod_and_says_why() -> None:
    event = failed_scheduling_event(POD, MESSAGE, NOW_NS)
    assert event["metadata"] == {"name": f"big.{NOW_NS:x}", "namespace": "team"}
    assert event["involvedObject"] == {
        "apiVersion": "v1",
        "kind": "Pod",
        "name": "big",
        "namespace": "team",
        "uid": "u-1",
    }
    assert (event["reason"], event["type"], event["message"]) == (
        "FailedScheduling",
        "Warning",
        MESSAGE,
    )
    assert event["firstTimestamp"] == event["lastTimestamp"] == "2023-11-14T22:13:20Z"
    assert event["source"] == {"component": "tensor-fusion-scheduler"}


def test_the_recorder_writes_it_to_the_store(tmp_path: Path) -> None:
    with LocalStore(tmp_path / "store.db") as store:
        failed_scheduling_recorder(store, lambda: NOW_NS)(POD, MESSAGE)
        [event] = store.list("Event", "team")
    assert event["message"] == MESSAGE


class RefusingStore:
    def create(self, obj: object) -> None:
        raise StoreError("the API server is unreachable")


def test_a_write_that_fails_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    record = failed_scheduling_recorder(cast(ClusterStore, RefusingStore()), lambda: NOW_NS)
    with caplog.at_level(logging.WARNING):
        record(POD, MESSAGE)
    assert "could not write the FailedScheduling event of big" in caplog.text
    assert "unreachable" in caplog.text
