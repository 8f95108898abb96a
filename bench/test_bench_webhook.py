"""Pod admission through the controller's webhook over TLS, in the API-server emulator (no
kube-apiserver can run here; the emulator calls webhooks as it does). 1,000 enabled pods are
created through the official client with the webhook registered as the chart registers it;
each admission call is timed from the emulator's side (request, TLS, the webhook's decision,
the answer) and its p50 and p99 reported. The same creates with no webhook registered, in
the same run, are the baseline for the cost of a create. The emulator, the controller (whose
scheduler works on the created pods meanwhile) and the client share one Python process, so
the figures, the tail most, are upper bounds of what a cluster would see. Run with
`python -m pytest bench/test_bench_webhook.py --benchmark-only`; the figures are printed at
the end (see conftest.py)."""

from __future__ import annotations

import itertools
import statistics
import timeit
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kubernetes
import pytest
from pytest_benchmark.fixture import BenchmarkFixture
from tests.controller.cluster import NAMESPACE, fleet_store, guide_pod
from tests.kube.admission import recorded_calls
from tests.kube.runner import EmulatorThread
from tests.kube.webhook_configuration import (
    WEBHOOK_NAME,
    ServedWebhook,
    register,
    served_webhook,
    webhook_configuration,
)

PODS = 1000
BATCH = 200
ROUNDS = PODS // BATCH


@dataclass
class Cluster:
    api_client: kubernetes.client.ApiClient
    core_v1: Any  # untyped: its signatures want the client's models, and this passes dicts
    webhook: ServedWebhook


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    """The emulator with a small fleet (the webhook resolves pods to its pool) and the
    controller serving its webhook, not yet registered."""
    with ExitStack() as stack:
        api = stack.enter_context(EmulatorThread(tmp_path / "kubeconfig"))
        stack.enter_context(fleet_store(api.kubeconfig, nodes=2, gpus_per_node=2))
        webhook = stack.enter_context(served_webhook(api.kubeconfig, tmp_path))
        client = kubernetes.config.new_client_from_config(config_file=str(api.kubeconfig))
        stack.callback(client.close)
        yield Cluster(client, kubernetes.client.CoreV1Api(client), webhook)


def _quantile(values: list[float], fraction: float) -> float:
    """The nearest-rank quantile."""
    ordered = sorted(values)
    return ordered[max(0, round(fraction * len(ordered)) - 1)]


def test_bench_webhook_admission(
    benchmark: BenchmarkFixture, cluster: Cluster, record_figure: Callable[[str], None]
) -> None:
    names = (f"p{index}" for index in itertools.count())

    def create_batch() -> None:
        for _ in range(BATCH):
            cluster.core_v1.create_namespaced_pod("default", guide_pod(next(names)))

    baseline_s = statistics.median(timeit.repeat(create_batch, number=1, repeat=ROUNDS))
    register(
        cluster.api_client,
        webhook_configuration(
            cluster.webhook.url, cluster.webhook.ca_bundle, release_namespace=NAMESPACE
        ),
    )
    with recorded_calls() as calls:
        benchmark.pedantic(create_batch, rounds=ROUNDS, iterations=1)
    if benchmark.stats is None:  # benchmarks disabled
        return
    assert [call.webhook for call in calls] == [WEBHOOK_NAME] * PODS
    assert not any(call.failed for call in calls)
    durations = [call.duration_s for call in calls]
    p50, p99 = _quantile(durations, 0.50), _quantile(durations, 0.99)
    create_s = benchmark.stats.stats.median / BATCH
    baseline_create_s = baseline_s / BATCH
    benchmark.extra_info.update(
        admissions=len(durations),
        admission_p50_ms=p50 * 1e3,
        admission_p99_ms=p99 * 1e3,
        create_ms=create_s * 1e3,
        create_without_webhook_ms=baseline_create_s * 1e3,
        create_ratio=create_s / baseline_create_s,
    )
    figure = (
        f"pod webhook over TLS, {PODS} admissions timed by the emulator: "
        f"p50 {p50 * 1e3:.2f} ms, p99 {p99 * 1e3:.2f} ms; a create takes "
        f"{create_s * 1e3:.2f} ms with it, {baseline_create_s * 1e3:.2f} ms without "
        f"(medians, {create_s / baseline_create_s:.1f}x)"
    )
    print(figure)
    record_figure(figure)
