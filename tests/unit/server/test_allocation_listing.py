"""`/api/allocation` filters and pages over a real allocator's snapshot: what each filter
keeps, pages that reassemble the snapshot exactly, the tokens it refuses, and the whole body
rendered once per snapshot (served again, with 304 for its ETag, until the allocations
change)."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from fastapi.testclient import TestClient
from starlette.responses import JSONResponse

from tensorfusion.scheduler.allocation import Allocation, GpuRecord, GpuShare
from tensorfusion.scheduler.allocator import READY, GpuAllocator
from tensorfusion.server.allocation_listing import (
    CONTINUE_FIELD,
    AllocationFilter,
    AllocationListing,
    AllocationQuery,
    ContinueToken,
)
from tensorfusion.server.app import create_app
from tensorfusion.server.conditional import Rendered
from tensorfusion.server.errors import ApiError
from tensorfusion.server.settings import ServerSettings
from tests.unit.server.conftest import LOOPBACK
from tests.unit.server.fake_backend import FakeBackend

GIB = 1 << 30
SHARE = GpuShare(10_000, 20_000, GIB, 2 * GIB)
POOLS = {"node-0": "train", "node-1": "train", "node-2": "serve"}


def cluster() -> GpuAllocator:
    """Three nodes of four GPUs in two pools; 20 pods, two of them on two GPUs each."""
    allocator = GpuAllocator()
    for node_index, (node, pool) in enumerate(POOLS.items()):
        for i in range(4):
            allocator.add_gpu(
                GpuRecord(f"{node}-gpu-{i}", node, pool, "H100", f"GPU-{node}-{i}", i),
                node_index,
                state=READY,
                capacity=(989_000, 80 * GIB),
                virtual=(4_945_000, 160 * GIB),
            )
    for n in range(20):
        node = list(POOLS)[n % 3]
        gpus = (f"{node}-gpu-{n % 4}", f"{node}-gpu-{(n + 1) % 4}") if n in (4, 9) else None
        add_pod(allocator, n, gpus or (f"{node}-gpu-{n % 4}",))
    return allocator


def add_pod(allocator: GpuAllocator, n: int, gpus: tuple[str, ...]) -> None:
    # UIDs out of creation order, so that UID order is not the order pods came in.
    allocator.reserve(
        Allocation(f"uid-{(n * 7) % 20:02d}-{n}", "default", f"pod-{n}", gpus, (SHARE,) * len(gpus))
    )


@pytest.fixture
def allocator() -> GpuAllocator:
    return cluster()


@pytest.fixture
def listing(allocator: GpuAllocator) -> AllocationListing:
    return AllocationListing(allocator.snapshot, Rendered.of)


def answer(listing: AllocationListing, **query: Any) -> dict[str, Any]:
    wanted = AllocationFilter(*(query.pop(key, None) for key in AllocationFilter._fields))
    response = listing.answer(AllocationQuery(wanted, **query))
    assert response.status_code == 200
    body: dict[str, Any] = json.loads(bytes(response.body))
    return body


def all_pages(listing: AllocationListing, limit: int, **wanted: str) -> list[dict[str, Any]]:
    pages = [answer(listing, limit=limit, **wanted)]
    while "continue" in pages[-1]["metadata"]:
        token = pages[-1]["metadata"]["continue"]
        pages.append(answer(listing, limit=limit, continue_token=token, **wanted))
    return pages


def test_without_parameters_the_body_is_the_snapshot_itself(
    allocator: GpuAllocator, listing: AllocationListing
) -> None:
    whole = listing.whole()
    assert whole.body == JSONResponse(allocator.snapshot()).body
    assert whole == Rendered.of(allocator.snapshot())
    # The general path (a page of everything) gives the very same bytes.
    assert listing.answer(AllocationQuery()).body == whole.body


class CountedRenders:
    """`Rendered.of`, counting the snapshots it renders."""

    def __init__(self) -> None:
        self.rendered: list[Mapping[str, Any]] = []

    def __call__(self, snapshot: Mapping[str, Any]) -> Rendered:
        self.rendered.append(snapshot)
        return Rendered.of(snapshot)


def test_an_unchanged_snapshot_is_served_from_the_bytes_rendered_first(
    allocator: GpuAllocator,
) -> None:
    renders = CountedRenders()
    listing = AllocationListing(allocator.snapshot, renders)
    first = listing.whole()
    answer(listing, limit=3)  # other queries render no whole body
    assert all(listing.whole() is first for _ in range(3))
    assert renders.rendered == [allocator.snapshot()]


@pytest.mark.parametrize("change", ["placed", "removed"])
def test_a_change_renders_the_whole_again_once(allocator: GpuAllocator, change: str) -> None:
    renders = CountedRenders()
    listing = AllocationListing(allocator.snapshot, renders)
    before = listing.whole()
    if change == "placed":
        add_pod(allocator, 20, ("node-2-gpu-3",))
    else:
        allocator.release(next(iter(allocator.snapshot()["allocations"])))
    after = listing.whole()
    assert listing.whole() is after
    assert len(renders.rendered) == 2
    assert after.etag != before.etag
    assert after.body == JSONResponse(allocator.snapshot()).body
    assert len(json.loads(after.body)["allocations"]) == (21 if change == "placed" else 19)


def test_a_first_page_after_a_change_shows_it(
    allocator: GpuAllocator, listing: AllocationListing
) -> None:
    """The GPUs and node counts a first page carries are derived once per snapshot: a
    change derives them again."""
    before = answer(listing, node="node-2", limit=2)
    add_pod(allocator, 20, ("node-2-gpu-3",))
    after = answer(listing, node="node-2", limit=2)
    assert after["workersPerNode"]["node-2"] == before["workersPerNode"]["node-2"] + 1
    assert [gpu["workers"] for gpu in after["gpus"]] == [
        gpu["workers"] + (gpu["name"] == "node-2-gpu-3") for gpu in before["gpus"]
    ]


def test_a_node_filter_keeps_its_gpus_their_allocations_and_its_count(
    allocator: GpuAllocator, listing: AllocationListing
) -> None:
    full = allocator.snapshot()
    body = answer(listing, node="node-1")
    assert [gpu["name"] for gpu in body["gpus"]] == [f"node-1-gpu-{i}" for i in range(4)]
    assert body["allocations"] == {
        uid: entry for uid, entry in full["allocations"].items() if entry["node"] == "node-1"
    }
    assert body["workersPerNode"] == {"node-1": full["workersPerNode"]["node-1"]}
    assert body["gpuWorkers"] == {
        gpu: workers for gpu, workers in full["gpuWorkers"].items() if gpu.startswith("node-1-")
    }
    assert "metadata" not in body


def test_a_pool_filter_keeps_the_nodes_of_the_pool(listing: AllocationListing) -> None:
    body = answer(listing, pool="train")
    assert {gpu["pool"] for gpu in body["gpus"]} == {"train"}
    assert len(body["gpus"]) == 8
    assert set(body["workersPerNode"]) == {"node-0", "node-1"}
    assert {entry["node"] for entry in body["allocations"].values()} == {"node-0", "node-1"}


def test_a_gpu_filter_keeps_every_allocation_holding_it(
    allocator: GpuAllocator, listing: AllocationListing
) -> None:
    full = allocator.snapshot()
    [two_gpus] = [e for e in full["allocations"].values() if e["name"] == "pod-4"]
    body = answer(listing, gpu=two_gpus["gpus"][1])
    assert [gpu["name"] for gpu in body["gpus"]] == [two_gpus["gpus"][1]]
    assert "pod-4" in {entry["name"] for entry in body["allocations"].values()}
    # The pod's other GPU is not selected: it is named in the allocation, not listed.
    assert list(body["gpuWorkers"]) == [two_gpus["gpus"][1]]
    assert body["workersPerNode"] == {two_gpus["node"]: full["workersPerNode"][two_gpus["node"]]}


@pytest.mark.parametrize(
    "wanted",
    [
        {"node": "node-9"},
        {"pool": "nowhere"},
        {"gpu": "node-0-gpu-9"},
        {"node": "node-0", "gpu": "node-1-gpu-0"},
        {"node": "node-2", "pool": "train"},
    ],
)
def test_a_filter_that_matches_nothing_is_an_empty_answer(
    listing: AllocationListing, wanted: dict[str, str]
) -> None:
    assert answer(listing, **wanted) == {
        "gpus": [],
        "workersPerNode": {},
        "allocations": {},
        "gpuWorkers": {},
    }


def test_filters_combine(listing: AllocationListing) -> None:
    body = answer(listing, node="node-0", pool="train", gpu="node-0-gpu-2")
    assert [gpu["name"] for gpu in body["gpus"]] == ["node-0-gpu-2"]


@pytest.mark.parametrize(
    ("wanted", "limit"),
    [({}, 3), ({}, 1), ({}, 7), ({"pool": "train"}, 4), ({"node": "node-2"}, 2)],
)
def test_pages_reassemble_the_filtered_snapshot_exactly(
    listing: AllocationListing, wanted: dict[str, str], limit: int
) -> None:
    whole = answer(listing, **wanted)
    pages = all_pages(listing, limit, **wanted)
    assert len(pages) == -(-len(whole["allocations"]) // limit) > 1
    uids = [uid for page in pages for uid in page["allocations"]]
    assert uids == sorted(whole["allocations"])  # in UID order, each once
    assert all(len(page["allocations"]) <= limit for page in pages)
    merged: dict[str, list[Any]] = {}
    for page in pages:
        for gpu, workers in page["gpuWorkers"].items():
            merged.setdefault(gpu, []).extend(workers)
    assert merged == whole["gpuWorkers"]
    assert pages[0]["gpus"] == whole["gpus"]
    assert pages[0]["workersPerNode"] == whole["workersPerNode"]
    assert all(page["gpus"] == [] and page["workersPerNode"] == {} for page in pages[1:])
    remaining = [page["metadata"].get("remainingItemCount") for page in pages]
    assert remaining == [len(uids) - limit * (i + 1) for i in range(len(pages) - 1)] + [None]
    assert pages[-1]["metadata"] == {}


def test_a_limit_beyond_the_end_is_one_page(listing: AllocationListing) -> None:
    body = answer(listing, limit=10**30)
    assert len(body["allocations"]) == 20
    assert body["metadata"] == {}


def test_continue_without_limit_gives_the_rest(listing: AllocationListing) -> None:
    first = answer(listing, limit=5)
    rest = answer(listing, continue_token=first["metadata"]["continue"])
    assert len(rest["allocations"]) == 15
    assert rest["metadata"] == {}
    assert not set(rest["allocations"]) & set(first["allocations"])


def refusal(listing: AllocationListing, query: AllocationQuery) -> ApiError:
    with pytest.raises(ApiError) as refused:
        listing.answer(query)
    assert refused.value.field == CONTINUE_FIELD
    assert str(refused.value.detail).startswith(f"{CONTINUE_FIELD}: ")
    return refused.value


@pytest.mark.parametrize(
    "token",
    [
        "not a token",
        "eyJ",  # base64 of a truncated JSON document
        ContinueToken("s", AllocationFilter(), "u").encode()[:-3],
        "WzEsMiwzXQ",  # [1,2,3]: JSON of the wrong shape
        "WyJzIixbbnVsbF0sInUiXQ",  # a filter of the wrong length
        "_w",  # base64 of a byte that is not UTF-8
        "é",
    ],
)
def test_a_malformed_token_is_400(listing: AllocationListing, token: str) -> None:
    refused = refusal(listing, AllocationQuery(limit=2, continue_token=token))
    assert refused.status_code == 400
    assert "metadata.continue" in str(refused.detail)


def test_a_token_of_another_filter_is_400(listing: AllocationListing) -> None:
    token = answer(listing, node="node-0", limit=2)["metadata"]["continue"]
    for other in (AllocationFilter(), AllocationFilter("node-1"), AllocationFilter(gpu="x")):
        refused = refusal(listing, AllocationQuery(other, 2, token))
        assert refused.status_code == 400
        assert "node=node-0" in str(refused.detail)


def test_a_token_from_a_changed_snapshot_is_410(
    allocator: GpuAllocator, listing: AllocationListing
) -> None:
    first = answer(listing, limit=4)
    token = first["metadata"]["continue"]
    assert answer(listing, limit=4, continue_token=token)["allocations"]  # still current
    add_pod(allocator, 20, ("node-2-gpu-3",))
    refused = refusal(listing, AllocationQuery(limit=4, continue_token=token))
    assert refused.status_code == 410
    assert "without continue" in str(refused.detail)
    # A new list sees the change.
    assert len(answer(listing)["allocations"]) == 21


def test_a_token_from_another_server_run_is_410(allocator: GpuAllocator) -> None:
    token = answer(AllocationListing(allocator.snapshot, Rendered.of), limit=4)["metadata"][
        "continue"
    ]
    refused = refusal(
        AllocationListing(allocator.snapshot, Rendered.of),
        AllocationQuery(limit=4, continue_token=token),
    )
    assert refused.status_code == 410


# --- over HTTP --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("limit=0", "query.limit"),
        ("limit=-3", "query.limit"),
        ("limit=ten", "query.limit"),
        ("limit=1.5", "query.limit"),
        ("node=", "query.node"),
        ("pool=", "query.pool"),
        ("gpu=", "query.gpu"),
        ("continue=", "query.continue"),
    ],
)
def test_a_bad_parameter_is_422_naming_it(local: TestClient, query: str, field: str) -> None:
    answer = local.get(f"/api/allocation?{query}")
    assert answer.status_code == 422
    assert answer.json()["field"] == field
    assert answer.json()["message"].startswith(f"{field}: ")


def test_a_bad_token_over_http_is_400_naming_continue(local: TestClient) -> None:
    answer = local.get("/api/allocation?limit=1&continue=garbage")
    assert answer.status_code == 400
    assert answer.json()["error"] == "BadRequest"
    assert answer.json()["field"] == "query.continue"


def test_a_paged_answer_over_http_carries_metadata(local: TestClient) -> None:
    answer = local.get("/api/allocation?limit=2&pool=default-pool")
    assert answer.status_code == 200
    assert answer.json()["metadata"] == {}


def test_a_stale_token_over_http_is_410_expired(local: TestClient) -> None:
    token = ContinueToken("an-earlier-snapshot", AllocationFilter(), "uid").encode()
    answer = local.get(f"/api/allocation?continue={token}")
    assert answer.status_code == 410
    assert answer.json()["error"] == "Expired"
    assert answer.json()["field"] == "query.continue"


@pytest.fixture
def served(
    allocator: GpuAllocator, settings: ServerSettings, monkeypatch: pytest.MonkeyPatch
) -> Iterator[TestClient]:
    """The app over the allocator's snapshot."""
    backend = FakeBackend()
    monkeypatch.setattr(backend, "allocation", allocator.snapshot)
    with TestClient(create_app(backend, settings), client=LOOPBACK) as client:
        yield client


def test_the_whole_snapshot_is_304_until_the_allocations_change(
    allocator: GpuAllocator, served: TestClient
) -> None:
    first = served.get("/api/allocation")
    assert first.status_code == 200
    assert first.json() == allocator.snapshot()
    etag = first.headers["ETag"]
    again = served.get("/api/allocation", headers={"If-None-Match": etag})
    assert (again.status_code, again.content) == (304, b"")
    add_pod(allocator, 20, ("node-2-gpu-3",))
    changed = served.get("/api/allocation", headers={"If-None-Match": etag})
    assert changed.status_code == 200
    assert changed.headers["ETag"] != etag
    assert changed.json() == allocator.snapshot()
    assert len(changed.json()["allocations"]) == 21
