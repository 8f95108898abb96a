"""LocalStore reads its JSON text with orjson: what it gives back equals what the standard
library reads from the same text, falling back to it for text orjson refuses; an integer
beyond 64 bits comes back as a float, as the API server decodes it."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

import pytest

from tensorfusion.scheduler.fleet_generator import generate_fleet
from tensorfusion.store import LocalStore

from .contract import pod


def _stored_text(store: LocalStore, kind: str) -> list[Any]:
    """The objects of `kind` as the standard library reads their stored text."""
    with sqlite3.connect(store.file) as conn:
        rows = conn.execute(
            "SELECT body FROM objects WHERE kind = ? ORDER BY namespace, name", [kind]
        ).fetchall()
    return [json.loads(body) for (body,) in rows]


def test_a_generated_fleet_lists_as_the_standard_library_reads_it(tmp_path: Any) -> None:
    fleet = generate_fleet(6, 4, "H100", 0.7, seed=2)
    with LocalStore(tmp_path) as store:
        store.create_many(list(fleet.documents()))
        for kind in ("Node", "GPUNode", "GPU", "GPUPool", "Pod"):
            listed, _ = store.list_with_version(kind)
            assert listed == _stored_text(store, kind)
            assert listed
        assert len(store.list("Pod")) == len(fleet.pods)


@pytest.mark.parametrize(
    "value",
    [
        "unpaired \ud800 surrogate",  # stored escaped, which orjson refuses
        "caf\u00e9 \U0001f680",
        18446744073709551615,  # the largest unsigned 64-bit integer stays exact
        -9223372036854775808,
        0.1,
        -0.0,
        {"nested": [{"list": [None, True, 1.5e300, ""]}]},
    ],
)
def test_values_read_back_as_written(tmp_path: Any, value: object) -> None:
    with LocalStore(tmp_path) as store:
        written = store.create(pod("p", spec={"value": value}))
        expected = _stored_text(store, "Pod")
        assert store.get("Pod", "p") == store.list("Pod")[0] == written == expected[0]
        assert store.list("Pod")[0]["spec"]["value"] == value


def test_an_integer_beyond_64_bits_reads_back_as_a_float(tmp_path: Any) -> None:
    with LocalStore(tmp_path) as store:
        store.create(pod("p", spec={"value": 10**30}))
        assert store.get("Pod", "p")["spec"]["value"] == float(10**30)
        assert store.list("Pod")[0]["spec"]["value"] == float(10**30)
