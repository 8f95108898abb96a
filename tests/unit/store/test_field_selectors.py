"""An empty selector value selects a missing, null or empty field, as the API server's
`spec.nodeName=` does; the local store's query and the filter its feeds apply agree on
every pod."""

from __future__ import annotations

from typing import Any

import pytest

from tensorfusion.store import LocalStore
from tensorfusion.store.field_selectors import selects

from .contract import pod

NODE_NAMES: list[Any] = ["node-1", "", None, 0, {"name": "node-1"}]
"""Kept as spec.nodeName (None: no such key), the last two of types a pod would not hold."""


@pytest.mark.parametrize("value", ["", "node-1", "0"])
def test_the_query_and_the_filter_select_the_same_pods(value: str) -> None:
    with LocalStore(":memory:") as store:
        for number, node_name in enumerate(NODE_NAMES):
            spec = {} if node_name is None else {"nodeName": node_name}
            store.create(pod(f"p-{number}", spec=spec))
        store.create(pod("no-spec", spec=None))
        store.create(pod("null-node", spec={"nodeName": None}))
        selector = {"spec.nodeName": value}
        listed = [p["metadata"]["name"] for p in store.list("Pod", field_selector=selector)]
        assert listed == [p["metadata"]["name"] for p in store.list("Pod") if selects(selector, p)]
        if value == "":
            assert listed == ["no-spec", "null-node", "p-1", "p-2"]
