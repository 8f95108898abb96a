"""LocalStore: the store contract on SQLite (in memory and on disk), plus what only a local
file can show: two handles and two processes on one file, the change-log bound, reopening
after a crash, and the database file's location."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tensorfusion.errors import (
    AlreadyExistsError,
    ConfigError,
    ConflictError,
    ResourceExpiredError,
    StoreError,
)
from tensorfusion.store import ClusterStore, LocalStore, WatchEvent
from tensorfusion.store.local import STATE_FILE, database_file

from .contract import T0, StoreContract, assert_refused, node, pod, version_of


class TestInMemory(StoreContract):
    @pytest.fixture
    def store(self) -> Iterator[ClusterStore]:
        with LocalStore(":memory:") as store:
            yield store


class TestOnDisk(StoreContract):
    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[ClusterStore]:
        with LocalStore(tmp_path / "state") as store:
            yield store


def start_python(code: str) -> subprocess.Popen[str]:
    """Start `code` in a fresh interpreter: another process on the same database file."""
    command = [sys.executable, "-c", textwrap.dedent(code)]
    return subprocess.Popen(command, stderr=subprocess.PIPE, text=True)


def finish(process: subprocess.Popen[str]) -> None:
    _, errors = process.communicate(timeout=120)
    assert process.returncode == 0, errors


def run_python(code: str) -> None:
    finish(start_python(code))


# -- the database file ---------------------------------------------------------------------


def test_a_state_directory_is_created_with_its_parents(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "state"
    with LocalStore(target) as store:
        store.create(pod())
    assert (target / STATE_FILE).is_file()


def test_an_existing_directory_holds_the_state_file(tmp_path: Path) -> None:
    odd = tmp_path / "state.d"
    odd.mkdir()
    assert database_file(odd) == str(odd / STATE_FILE)
    assert database_file(str(tmp_path)) == str(tmp_path / STATE_FILE)


def test_a_file_path_is_the_database_itself(tmp_path: Path) -> None:
    target = tmp_path / "nested" / "cluster.sqlite"
    with LocalStore(str(target)) as store:
        store.create(node())
    assert target.is_file()
    assert database_file(":memory:") == ":memory:"


def test_the_file_is_in_wal_mode(tmp_path: Path) -> None:
    with LocalStore(tmp_path) as store:
        store.create(pod())
        conn = sqlite3.connect(store.file)
        try:
            assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
            assert conn.execute("SELECT count(*) FROM objects").fetchone() == (1,)
        finally:
            conn.close()


@pytest.mark.parametrize("path", ["", 5, None, b"state.db"])
def test_bad_paths_are_refused(path: Any) -> None:
    assert_refused("path", LocalStore, path)


def test_a_file_that_is_not_a_database_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "notes.txt"
    target.write_text("not a database, just a long enough line of text to be read\n" * 20)
    with pytest.raises(StoreError, match=r"cannot open the state database .*notes\.txt"):
        LocalStore(target)


def test_a_directory_that_cannot_be_created_is_refused(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StoreError, match="cannot create the state directory"):
        LocalStore(blocker / "state")


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    LocalStore(tmp_path).close()
    conn = sqlite3.connect(tmp_path / STATE_FILE)
    with conn:
        conn.execute("UPDATE meta SET value = 3 WHERE key = 'schema'")
    conn.close()
    with pytest.raises(StoreError, match="schema version 3"):
        LocalStore(tmp_path)


def test_a_version_1_file_is_upgraded_and_its_watchers_list_again(tmp_path: Path) -> None:
    with LocalStore(tmp_path) as store:
        store.create(pod("a"))
        _, version = store.list_with_version("Pod")
    # Version 1 kept no earlier state in its change log.
    conn = sqlite3.connect(tmp_path / STATE_FILE)
    with conn:
        conn.execute("ALTER TABLE changes DROP COLUMN previous")
        conn.execute("UPDATE meta SET value = 1 WHERE key = 'schema'")
    conn.close()
    with LocalStore(tmp_path) as store:
        assert [p["metadata"]["name"] for p in store.list("Pod")] == ["a"]
        with pytest.raises(ResourceExpiredError, match="list again"):
            store.events_since(version - 1)
        assert store.events_since(version) == []
        running = store.patch("Pod", "a", {"status": {"phase": "Running"}})
        done = store.patch("Pod", "a", {"status": {"phase": "Succeeded"}})
        narrowed = store.events_since(version, ["Pod"], {"Pod": {"status.phase": "Running"}})
        assert [(e.type, e.object["status"]["phase"]) for e in narrowed] == [
            ("ADDED", "Running"),
            ("DELETED", "Running"),
        ]
        assert [e.resource_version for e in narrowed] == [version_of(running), version_of(done)]
    with LocalStore(tmp_path) as store:  # upgraded once
        assert len(store.events_since(version)) == 2


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"change_log_size": 0}, "change_log_size"),
        ({"change_log_size": 2.5}, "change_log_size"),
        ({"change_log_size": True}, "change_log_size"),
        ({"poll_interval_s": 0}, "poll_interval_s"),
        ({"busy_timeout_s": -1}, "busy_timeout_s"),
    ],
)
def test_bad_options_are_refused(options: dict[str, Any], field: str) -> None:
    assert_refused(field, LocalStore, ":memory:", **options)


# -- create_many ---------------------------------------------------------------------------


def test_create_many_creates_in_order() -> None:
    with LocalStore(":memory:") as store:
        created = store.create_many(pod(f"p-{i}", f"ns-{i % 3}") for i in range(300))
        assert [version_of(p) for p in created] == list(range(1, 301))
        assert len({p["metadata"]["uid"] for p in created}) == 300
        in_ns_1 = [p for p in created if p["metadata"]["namespace"] == "ns-1"]
        assert store.list("Pod", "ns-1") == sorted(in_ns_1, key=lambda p: p["metadata"]["name"])
        assert [e.type for e in store.events_since(0)] == ["ADDED"] * 300


def test_create_many_is_all_or_nothing_on_a_duplicate() -> None:
    with LocalStore(":memory:") as store:
        store.create(pod("b"))
        with pytest.raises(AlreadyExistsError, match=r"^objs\[1\]: Pod default/b already exists$"):
            store.create_many([pod("a"), pod("b"), pod("c")])
        with pytest.raises(AlreadyExistsError, match=r"^objs\[2\]: Pod default/a already exists$"):
            store.create_many([pod("a"), pod("c"), pod("a")])
        assert [p["metadata"]["name"] for p in store.list("Pod")] == ["b"]
        assert store.list_with_version("Pod")[1] == 1


def test_create_many_names_the_bad_object() -> None:
    with LocalStore(":memory:") as store:
        assert_refused("objs[1].metadata.name", store.create_many, [pod("a"), pod("B"), pod("c")])
        assert_refused(
            "objs[1].spec.x", store.create_many, [pod("a"), {**pod("d"), "spec": {"x": {1}}}]
        )
        assert store.list_with_version("Pod") == ([], 0)


# -- the change log ------------------------------------------------------------------------


def test_the_change_log_is_bounded() -> None:
    with LocalStore(":memory:", change_log_size=3) as store:
        for i in range(5):
            store.create(pod(f"p-{i}"))
        assert [e.resource_version for e in store.events_since(2)] == [3, 4, 5]
        for too_old in (0, 1):
            with pytest.raises(ResourceExpiredError, match=r"too old.*list again") as caught:
                store.events_since(too_old)
            assert not isinstance(caught.value, ConfigError)
        with pytest.raises(ResourceExpiredError, match="too old"):
            next(store.watch(["Pod"], 1, 0))
        feed = store.follow({"Pod": 1})
        assert feed.wait(0) is True  # the take says why
        with pytest.raises(ResourceExpiredError, match=r"too old.*list again"):
            feed.take()


def test_a_batch_longer_than_the_log_keeps_its_tail() -> None:
    with LocalStore(":memory:", change_log_size=4) as store:
        store.create_many(pod(f"p-{i}") for i in range(10))
        assert [e.object["metadata"]["name"] for e in store.events_since(6)] == [
            "p-6",
            "p-7",
            "p-8",
            "p-9",
        ]
        with pytest.raises(ResourceExpiredError, match="too old"):
            store.events_since(5)


def test_no_op_writes_do_not_use_up_the_log() -> None:
    with LocalStore(":memory:", change_log_size=1) as store:
        created = store.create(pod())
        for _ in range(3):
            store.update(created)
            store.acquire_lease("leader", "a", 10, now=T0)
        assert store.events_since(0) == [WatchEvent("ADDED", created, 1)]


# -- watching ------------------------------------------------------------------------------


def test_events_and_watch_are_narrowed_by_field_selectors() -> None:
    with LocalStore(":memory:") as store:
        store.create(pod("a"))
        here = store.bind("default", "a", "node-1", {})  # enters the selection
        other = store.create(node("node-1"))
        on_node = {"Pod": {"spec.nodeName": "node-1"}}
        entered = WatchEvent("ADDED", here, version_of(here))
        assert store.events_since(0, None, on_node) == [
            entered,
            WatchEvent("ADDED", other, version_of(other)),
        ]
        assert list(store.watch(["Pod"], 0, 0, on_node)) == [entered]
        assert_refused("field_selectors", store.events_since, 0, ["Node"], on_node)
        assert_refused("field_selectors", store.watch, ["Node"], 0, 0, on_node)
        assert_refused("field_selectors[Pod]", store.events_since, 0, None, {"Pod": {"x": "y"}})


@pytest.mark.timing
def test_watch_wakes_on_a_write_from_another_thread() -> None:
    # Polling is set far beyond the watch timeout, so only the in-process wake-up can deliver
    # the event before the watch ends.
    with LocalStore(":memory:", poll_interval_s=3600) as store:
        writer = threading.Timer(0.2, store.create, args=(pod(),))
        writer.start()
        try:
            events = store.watch(["Pod"], 0, timeout_s=60)
            first = next(events)
        finally:
            writer.join()
        assert (first.type, first.object["metadata"]["name"]) == ("ADDED", "web-0")


@pytest.mark.timing
def test_watch_sees_writes_of_another_process(tmp_path: Path) -> None:
    with LocalStore(tmp_path, poll_interval_s=0.02) as store:
        writer = start_python(
            f"""
            from tensorfusion.store import LocalStore
            with LocalStore({str(tmp_path)!r}) as store:
                store.create({{"kind": "Node", "metadata": {{"name": "node-7"}}}})
            """
        )
        try:
            first = next(store.watch(["Node"], 0, timeout_s=120))
        finally:
            finish(writer)
        assert first.object["metadata"]["name"] == "node-7"


@pytest.mark.timing
def test_watch_continues_after_each_event() -> None:
    with LocalStore(":memory:") as store:
        store.create(pod("a"))
        events = store.watch(None, 0, timeout_s=60)
        assert next(events).object["metadata"]["name"] == "a"
        store.create(node())
        store.delete("Pod", "a")
        assert [(e.type, e.object["kind"]) for e in (next(events), next(events))] == [
            ("ADDED", "Node"),
            ("DELETED", "Pod"),
        ]


@pytest.mark.timing
def test_closing_the_store_ends_a_waiting_watch() -> None:
    store = LocalStore(":memory:", poll_interval_s=3600)
    closer = threading.Timer(0.2, store.close)
    closer.start()
    try:
        with pytest.raises(StoreError, match="closed"):
            list(store.watch(None, 0, timeout_s=60))
    finally:
        closer.join()


# -- sharing one file ----------------------------------------------------------------------


def test_two_handles_on_one_file_see_each_other(tmp_path: Path) -> None:
    with LocalStore(tmp_path) as first, LocalStore(tmp_path) as second:
        created = first.create(pod())
        assert second.get("Pod", "web-0") == created
        updated = second.patch("Pod", "web-0", {"status": {"phase": "Running"}})
        assert first.get("Pod", "web-0") == updated
        with pytest.raises(ConflictError):
            first.update({**created, "status": {"phase": "Failed"}})
        with pytest.raises(AlreadyExistsError):
            second.create(pod())
        assert second.create(node())["metadata"]["resourceVersion"] == "3"
        assert [e.resource_version for e in first.events_since(0)] == [1, 2, 3]
        assert first.acquire_lease("leader", "a", 10, now=T0)
        assert not second.acquire_lease("leader", "b", 10, now=T0)
        assert second.lease_holder("leader", now=T0) == "a"


@pytest.mark.timing
def test_processes_write_without_losing_or_refusing_a_write(tmp_path: Path) -> None:
    with LocalStore(tmp_path) as store:
        store.create({**pod(), "status": {"count": 0}})
    go = tmp_path / "go"
    worker = f"""
        import os, time
        from tensorfusion.errors import ConflictError
        from tensorfusion.store import LocalStore
        with LocalStore({str(tmp_path)!r}) as store:
            while not os.path.exists({str(go)!r}):  # start together, to collide
                time.sleep(0.001)
            for i in range(100):
                name = f"gpu-{{os.getpid()}}-{{i}}"
                store.create({{"kind": "GPU", "metadata": {{"name": name}}}})
                while True:
                    current = store.get("Pod", "web-0")
                    current["status"]["count"] += 1
                    try:
                        store.update(current)
                        break
                    except ConflictError:
                        pass
        """
    workers = [start_python(worker) for _ in range(3)]
    go.touch()
    for process in workers:
        finish(process)
    with LocalStore(tmp_path) as store:
        final = store.get("Pod", "web-0")
        assert final["status"]["count"] == 300
        assert len(store.list("GPU")) == 300
        versions = [e.resource_version for e in store.events_since(0)]
        assert versions == list(range(1, 602))


@pytest.mark.timing
def test_threads_share_one_store() -> None:
    with LocalStore(":memory:") as store:

        def create(start: int) -> None:
            for i in range(start, start + 50):
                store.create(pod(f"p-{i}"))

        threads = [threading.Thread(target=create, args=(n * 50,)) for n in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        objects, version = store.list_with_version("Pod")
        assert len(objects) == 200
        assert version == 200
        assert sorted(version_of(p) for p in objects) == list(range(1, 201))


def test_data_survives_a_crash(tmp_path: Path) -> None:
    run_python(
        f"""
        import os
        from tensorfusion.store import LocalStore
        store = LocalStore({str(tmp_path)!r})
        store.create({{"kind": "Pod", "metadata": {{"name": "web-0"}}}})
        store.create_many({{"kind": "GPU", "metadata": {{"name": f"gpu-{{i}}"}}}} for i in range(3))
        store.bind("default", "web-0", "node-1", {{"tensor-fusion.ai/gpu-ids": "gpu-0"}})
        store.acquire_lease("leader", "a", 3600)
        os._exit(0)  # no close, no clean-up: as if the process were killed
        """
    )
    with LocalStore(tmp_path) as store:
        assert store.get("Pod", "web-0")["spec"]["nodeName"] == "node-1"
        assert [g["metadata"]["name"] for g in store.list("GPU")] == ["gpu-0", "gpu-1", "gpu-2"]
        assert store.lease_holder("leader") == "a"
        assert store.list_with_version("Pod")[1] == 5
        assert store.create(node())["metadata"]["resourceVersion"] == "6"
