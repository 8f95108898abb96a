"""The controller's control plane: KubeStore over the cluster's API server, the leader's
duties (`engine.leader_duties`) behind a Lease, the loops only the leader runs, and the
backend the management API and the probes serve from.

Every replica serves the API and the probes; only the leader schedules, runs the leader's
loops (the reconcilers), records the allocation tables and evaluates alerts. A follower's
scheduling reads answer 503 saying that another replica leads.

Threads: the lease, the scheduler and the leader's metrics (`LeaderDuties`), and one per
leader loop; HTTP requests come from the servers'.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import socket
import tempfile
import threading
import uuid
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Final

from fastapi import Body, FastAPI, HTTPException

from tensorfusion.controller.events import failed_scheduling_recorder
from tensorfusion.controller.flags import ControllerFlags
from tensorfusion.controller.token_review import TokenReviewAuthenticator
from tensorfusion.controller.worker_views import USAGE_TIMEOUT_S, WorkerViews
from tensorfusion.engine.home import Home
from tensorfusion.engine.leader_duties import RETRY_S, LeaderDuties
from tensorfusion.engine.observability import Observability, ObservabilityConfig
from tensorfusion.engine.threads import start_daemon
from tensorfusion.errors import ConfigError, UnavailableError
from tensorfusion.metrics.greptime_env import greptime_from_env
from tensorfusion.metrics.greptime_sink import GreptimeSink
from tensorfusion.operator.leader_election import LeaderElection
from tensorfusion.scheduler.profile import load_scheduler_config
from tensorfusion.server.app import create_app
from tensorfusion.server.backend import WorkerRequest
from tensorfusion.server.routes_health import health_routes
from tensorfusion.server.settings import ServerSettings
from tensorfusion.store.interface import ClusterStore
from tensorfusion.store.kube import KubeStore
from tensorfusion.store.kube_http import KubeApi
from tensorfusion.store.kubeconfig import client_configuration
from tensorfusion.webhook.admission_review import WEBHOOK_PATH, BadReview, review_response
from tensorfusion.webhook.decision import Admission
from tensorfusion.webhook.replica_slots import ReplicaSlots
from tensorfusion.webhook.serving_certs import DEFAULT_CERT_DIR, ServingCert, serving_cert

log = logging.getLogger(__name__)

LEASE_NAME: Final = "85104305.tensor-fusion.ai"
"""Upstream's leader-election ID, so that one of theirs and one of ours never both lead."""
LEASE_DURATION_S: Final = 10.0
"""How long a lease outlives its holder's last renewal: a replica that dies (kill -9, a lost
node) is replaced within it plus one retry. Shorter than controller-runtime's 15 s, so that
takeover stays within 15 s; five renewals fit in it, so a slow one does not cost the lead."""
LEASE_RENEW_S: Final = 2.0
"""The leader renews, and a follower tries to take over, this often."""
REQUEST_TIMEOUT_S: Final = 30.0
NO_WORKERS: Final = (
    "local workers are served by `tensor-fusion up`; in Kubernetes, create a Pod with the "
    "tensor-fusion.ai annotations"
)

LeaderLoop = Callable[[ClusterStore, threading.Event], None]
"""A loop only the leader runs (the reconcilers), over the controller's store: it runs until
the event is set, which happens when leadership ends; it is started again when this replica
leads again."""


class SoleLeader(LeaderElection):
    """`--leader-elect=false`: this replica leads at once and until it stops, writing no
    lease (upstream's behaviour; only one replica may run so)."""

    def step(self) -> bool:
        self._set(True)
        return True

    def release(self) -> None:
        self._step_down()


@dataclass(frozen=True)
class Running:
    """The started parts; made only once every one of them is."""

    store: KubeStore
    leader: LeaderDuties
    authenticator: TokenReviewAuthenticator
    workers: WorkerViews
    resources: ExitStack
    """Closes what was opened (the metrics sink, the API connections, a temporary state dir)."""


class Controller(Home[Running]):
    """Implements `server.backend.ManagementBackend`. `start` raises ConfigError naming the
    flag at fault and leaves nothing running."""

    NAME = "the controller"

    def __init__(
        self,
        flags: ControllerFlags,
        *,
        loops: Sequence[LeaderLoop] = (),
        holder: str | None = None,
        lease_duration_s: float = LEASE_DURATION_S,
        lease_renew_s: float = LEASE_RENEW_S,
        replica_slots: Callable[[ClusterStore], ReplicaSlots] = ReplicaSlots,
    ) -> None:
        """`holder` names this replica in the lease (default: host name and a fresh id, as
        controller-runtime does, so that a restarted replica is a new holder).
        `replica_slots` makes the webhook's enabled-replicas counts over the store (tests
        give it a short grace or their own clock)."""
        super().__init__()
        self.flags = flags
        self.node_pools = flags.node_pools
        self.loops = tuple(loops)
        self.holder = holder or f"{socket.gethostname()}_{uuid.uuid4()}"
        self.lease_duration_s = lease_duration_s
        self.lease_renew_s = lease_renew_s
        self.replica_slots = replica_slots

    # --- life cycle ----------------------------------------------------------------------

    def start(self) -> None:
        running = self._open()
        self._running = running
        running.leader.start()
        self._threads = [
            start_daemon(f"leader-loop-{index}", self._lead, running.leader.election, loop)
            for index, loop in enumerate(self.loops)
        ]

    def _open(self) -> Running:
        """Every part, or, when one fails, none: what was opened is closed again."""
        flags = self.flags
        scheduler_config = (
            load_scheduler_config(flags.scheduler_config) if flags.scheduler_config else None
        )
        # Where the node agents write their usage (GREPTIME_*, set by the chart).
        greptime = greptime_from_env(os.environ)
        with ExitStack() as resources:
            state_root = flags.state_dir
            if state_root is None:
                state_root = Path(tempfile.mkdtemp(prefix="tensor-fusion-controller-"))
                resources.callback(shutil.rmtree, state_root, ignore_errors=True)
            else:
                try:
                    state_root.mkdir(parents=True, exist_ok=True)
                except OSError as exc:
                    raise ConfigError("--state-dir", f"cannot create {state_root}: {exc}") from exc
            observability = Observability(
                # The leader's allocation metrics go where the agents write, and its alert rules
                # read both from there.
                ObservabilityConfig(
                    dynamic_config=flags.dynamic_config,
                    alert_manager_addr=flags.alert_manager_addr,
                    greptime=greptime,
                ),
                state_root,
            )
            resources.callback(observability.close)
            store = KubeStore(
                flags.kubeconfig,
                lease_namespace=flags.namespace,
                request_timeout_s=REQUEST_TIMEOUT_S,
            )
            resources.callback(store.close)
            review_api = KubeApi(client_configuration(flags.kubeconfig), REQUEST_TIMEOUT_S)
            resources.callback(review_api.close)
            election_kind = LeaderElection if flags.leader_elect else SoleLeader
            election = election_kind(
                store,
                self.holder,
                name=LEASE_NAME,
                duration_s=self.lease_duration_s,
                renew_every_s=self.lease_renew_s,
            )
            leader = LeaderDuties(
                store,
                election,
                observability,
                scheduler_config,
                self._stop,
                on_unschedulable=failed_scheduling_recorder(store),
            )
            usage_sink = GreptimeSink(greptime, timeout_s=USAGE_TIMEOUT_S) if greptime else None
            workers = WorkerViews(store, usage_sink)
            resources.callback(workers.close)
            running = Running(
                store=store,
                leader=leader,
                authenticator=TokenReviewAuthenticator(review_api),
                workers=workers,
                resources=resources.pop_all(),
            )
        return running

    def _lead(self, election: LeaderElection, loop: LeaderLoop) -> None:
        """Run `loop` while leading, until the controller stops; a loop that fails starts
        again, one that returns waits for the next term."""
        while not self._stop.is_set():
            if not election.is_leader.wait(0.2):
                continue
            try:
                loop(self._parts().store, election.lost)
            except Exception:
                log.exception("a leader loop stopped on an error; restarting it")
                self._stop.wait(RETRY_S)
                continue
            while not (election.lost.wait(0.2) or self._stop.is_set()):
                pass

    @property
    def leading(self) -> threading.Event:
        return self._parts().leader.election.is_leader

    # --- the servers' apps ---------------------------------------------------------------

    def api_app(self) -> FastAPI:
        """The management API: writes need a token the cluster accepts (TokenReview); reads
        are open unless `--api-auth=all`, and then still from loopback."""
        # TokenReview decides; the settings' own token is one no client is ever given.
        settings = ServerSettings(
            token=secrets.token_urlsafe(32), public_reads=self.flags.api_auth == "writes"
        )
        return create_app(self, settings, self._parts().authenticator)

    def probes_app(self) -> FastAPI:
        """`/healthz` and `/readyz` alone, for the kubelet (`--health-probe-bind-address`)."""
        app = FastAPI(title="tensor-fusion probes", openapi_url=None, docs_url=None, redoc_url=None)
        app.include_router(health_routes(self))
        return app

    def webhook_app(self) -> FastAPI:
        """`/mutate-v1-pod` alone, for the API server over HTTPS (`--webhook-port`). Every
        replica answers, reading the GPU pools from the cluster for each pod it converts and
        counting enabled-replicas there (the count is one object, written conditionally, so
        replicas need not agree otherwise)."""
        app = FastAPI(
            title="tensor-fusion webhook", openapi_url=None, docs_url=None, redoc_url=None
        )
        store = self._parts().store
        admission = Admission(
            pools=lambda: store.list("GPUPool"),
            slots=self.replica_slots(store),
            image=self.flags.webhook_image,
            progressive_migration=self.flags.nvidia_operator_progressive_migration,
        )

        @app.post(WEBHOOK_PATH)
        def mutate_pod(review: Annotated[Any, Body()]) -> dict[str, Any]:
            try:
                return review_response(review, admission)
            except BadReview as exc:
                raise HTTPException(400, str(exc)) from exc

        return app

    def webhook_cert(self) -> ServingCert | None:
        """The webhook's certificate (ConfigError naming `--webhook-cert-dir` when it cannot
        be loaded); None when that flag is not given and the default directory is absent."""
        directory = self.flags.webhook_cert_dir
        if directory is None:
            if not DEFAULT_CERT_DIR.exists():
                return None
            directory = DEFAULT_CERT_DIR
        return serving_cert(directory, "--webhook-cert-dir")

    # --- ManagementBackend ---------------------------------------------------------------

    def readiness(self) -> tuple[bool, str]:
        """A follower is ready (it serves, and stands by to lead); the leader once its
        scheduler runs."""
        try:
            leader = self._parts().leader
        except UnavailableError as exc:
            return False, str(exc)
        if not leader.election.is_leader.is_set() and not self._stop.is_set():
            return True, "standing by: another replica leads"
        return leader.readiness()

    def workers(self) -> list[dict[str, Any]]:
        return self._parts().workers.views()

    def node_workers(self, nodes: frozenset[str]) -> list[dict[str, Any]]:
        return self._parts().workers.views(nodes)

    def pending_workers(self) -> list[dict[str, Any]]:
        running = self._parts()
        leader = running.leader
        candidates = leader.stranded_workers()
        if not candidates:  # the common case: nor are the present GPUs needed
            return []
        return running.workers.pending_views(candidates, leader.present_gpus())

    def create_worker(self, request: WorkerRequest) -> dict[str, Any]:
        raise UnavailableError(NO_WORKERS)

    def add_worker_pids(self, name: str, pids: list[int]) -> dict[str, Any]:
        raise UnavailableError(NO_WORKERS)

    def delete_worker(self, name: str) -> dict[str, Any]:
        raise UnavailableError(NO_WORKERS)
