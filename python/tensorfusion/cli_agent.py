"""`tensor-fusion agent`: the node agent, one per GPU node (the chart's DaemonSet).

It serves `/healthz` (200 while the process runs), `/readyz` (503 with the reason while NVML
or the API server cannot be used) and `/metrics` (its own Prometheus series) on
`--bind-address`, `:8000` by default. Usage rows go to GreptimeDB when the GREPTIME_*
variables say where it is; otherwise none are recorded, and it says so at the start."""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import sys
import tempfile
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Final

from fastapi import FastAPI
from starlette.responses import JSONResponse

from tensorfusion.agent.device_plugin_checkpoint import DEFAULT_PATH
from tensorfusion.agent.kube_agent import (
    DEFAULT_INTERVAL_S,
    KubeAgent,
    KubeAgentConfig,
    SystemNvml,
)
from tensorfusion.agent.spill import DEFAULT_SPILL_ROOT
from tensorfusion.errors import ConfigError, TensorFusionError
from tensorfusion.metrics.buffered_writer import BufferedWriter
from tensorfusion.metrics.greptime_env import greptime_from_env
from tensorfusion.metrics.greptime_sink import GreptimeSink
from tensorfusion.metrics.point import Point
from tensorfusion.server.metrics_listener import FLAG as METRICS_BIND_FLAG
from tensorfusion.server.metrics_listener import parse_bind_address
from tensorfusion.server.routes_metrics import metrics_routes
from tensorfusion.server.runner import STOP_SIGNALS, start_in_thread
from tensorfusion.store.kube import KubeStore

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
NODE_NAME_ENV: Final = "NODE_NAME"
DEFAULT_REGIONS_ROOT: Final = Path("/run/tensor-fusion/shm")
DEFAULT_BIND_ADDRESS: Final = ":8000"
REQUEST_TIMEOUT_S: Final = 30.0


def _say(message: str) -> None:
    print(f"tensor-fusion agent: {message}", file=sys.stderr, flush=True)


def agent_app(agent: KubeAgent) -> FastAPI:
    """The probes and the agent's Prometheus series, for the kubelet and scrapers."""
    app = FastAPI(title="tensor-fusion agent", openapi_url=None, docs_url=None, redoc_url=None)

    @app.get("/healthz")
    def healthz() -> JSONResponse:
        return JSONResponse({"status": "ok"})

    @app.get("/readyz")
    def readyz() -> JSONResponse:
        ready, reason = agent.readiness()
        if ready:
            return JSONResponse({"status": "ready"})
        body = {"error": "Unavailable", "message": f"not ready: {reason}"}
        return JSONResponse(body, status_code=503)

    app.include_router(metrics_routes(agent.metrics.registry))
    return app


def _config(args: argparse.Namespace, state_dir: Path) -> KubeAgentConfig:
    node = args.node_name or os.environ.get(NODE_NAME_ENV, "").strip()
    if not node:
        raise ConfigError("node-name", f"required (or set {NODE_NAME_ENV}, as the chart does)")
    return KubeAgentConfig(
        node=node,
        regions_root=Path(args.regions_root),
        state_dir=state_dir,
        checkpoint=Path(args.kubelet_checkpoint),
        spill_root=Path(args.spill_root),
        interval_s=args.interval,
    )


def _seconds(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number of seconds, got {text!r}") from None


def _agent(args: argparse.Namespace) -> int:
    try:
        bind = parse_bind_address(args.bind_address)
        greptime = greptime_from_env(os.environ)
        with contextlib.ExitStack() as resources:
            state_dir = _state_dir(args.state_dir, resources)
            config = _config(args, state_dir)
            store = resources.enter_context(
                KubeStore(args.kubeconfig, request_timeout_s=REQUEST_TIMEOUT_S)
            )
            writer = None
            if greptime is None:
                _say("no metrics sink: GREPTIME_HOST is not set, so no usage rows are recorded")
            else:
                sink = GreptimeSink(greptime)
                resources.callback(sink.close)
                writer = BufferedWriter(
                    sink, state_dir / "metrics-buffer", flush_interval_s=config.interval_s
                )
                resources.callback(_flush, writer)
                _say(f"usage rows go to GreptimeDB at {greptime.host}:{greptime.port}")
            nvml = SystemNvml()
            resources.callback(nvml.close)
            agent = KubeAgent(
                store, config, nvml, record=None if writer is None else _recorder(writer)
            )
            server = resources.enter_context(start_in_thread(agent_app(agent), *bind))
            _say(f"node {config.node}: probes and metrics on {server.url} (/healthz, /readyz)")
            stop = threading.Event()
            for sig in STOP_SIGNALS:
                signal.signal(sig, lambda _sig, _frame: stop.set())
            agent.run(stop)
            _say("stopping")
    except ConfigError as exc:
        _say(_flagged(exc))
        return EXIT_USAGE
    except TensorFusionError as exc:
        _say(str(exc))
        return EXIT_FAILED
    return EXIT_OK


def _flagged(exc: ConfigError) -> str:
    """The error with the flag it is about, for the fields that stand for one."""
    flag = _FLAGS.get(exc.field)
    return str(exc) if flag is None else f"{flag}: {exc.message}"


_FLAGS: Final = {
    "node-name": "--node-name",
    "interval": "--interval",
    "state-dir": "--state-dir",
    "kubeconfig": "--kubeconfig",
    METRICS_BIND_FLAG: "--bind-address",
}


def _state_dir(given: str | None, resources: contextlib.ExitStack) -> Path:
    if given is None:
        path = Path(tempfile.mkdtemp(prefix="tensor-fusion-agent-"))
        resources.callback(shutil.rmtree, path, ignore_errors=True)
        return path
    path = Path(given)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError("state-dir", f"cannot create {path}: {exc}") from exc
    return path


def _recorder(writer: BufferedWriter) -> Callable[[Sequence[Point]], None]:
    def record(points: Sequence[Point]) -> None:
        writer.write(points)
        writer.poll()

    return record


def _flush(writer: BufferedWriter) -> None:
    try:
        writer.flush()
    except TensorFusionError as exc:
        _say(f"usage rows kept in the buffer for the next start: {exc}")


def add_agent_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    agent = commands.add_parser(
        "agent",
        help="run the node agent on a GPU node of a Kubernetes cluster (a DaemonSet)",
        description="Discover this node's GPUs through NVML and register them, keep the "
        "shared regions of the pods bound to it, follow the kubelet's device-plugin "
        "checkpoint, and record usage to GreptimeDB (GREPTIME_* variables). Serves /healthz, "
        "/readyz and /metrics on --bind-address.",
    )
    agent.add_argument(
        "--node-name", metavar="NAME", help=f"this node (default: ${NODE_NAME_ENV}; required)"
    )
    agent.add_argument(
        "--kubeconfig",
        metavar="FILE",
        help="default: $KUBECONFIG, else the pod's service account",
    )
    agent.add_argument("--regions-root", default=str(DEFAULT_REGIONS_ROOT), metavar="DIR")
    agent.add_argument(
        "--spill-root",
        default=str(DEFAULT_SPILL_ROOT),
        metavar="DIR",
        help="the workers' VRAM paged out to disk, one directory per pod, on local disk "
        f"(default: {DEFAULT_SPILL_ROOT})",
    )
    agent.add_argument("--kubelet-checkpoint", default=str(DEFAULT_PATH), metavar="FILE")
    agent.add_argument(
        "--state-dir",
        metavar="DIR",
        help="usage rows waiting for GreptimeDB; its disk bounds VRAM spilled to disk "
        "(default: a temporary directory)",
    )
    agent.add_argument(
        "--bind-address",
        default=DEFAULT_BIND_ADDRESS,
        metavar="HOST:PORT",
        help=f"probes and metrics (default: {DEFAULT_BIND_ADDRESS}, every interface)",
    )
    agent.add_argument(
        "--interval",
        type=_seconds,
        default=DEFAULT_INTERVAL_S,
        metavar="SECONDS",
        help=f"between passes (default: {DEFAULT_INTERVAL_S:g}, at most 30)",
    )
    agent.set_defaults(run=_agent)
