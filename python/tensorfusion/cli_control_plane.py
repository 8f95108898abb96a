"""The control-plane commands of `tensor-fusion`: `up` (serve), and its clients `run`,
`status` and `allocation`."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sys
from pathlib import Path

from tensorfusion.alert.alertmanager import alerts_url
from tensorfusion.api.helm_values import HelmValues
from tensorfusion.api.model_file import load_model
from tensorfusion.client.api_client import ApiClient
from tensorfusion.client.run_command import run
from tensorfusion.client.tables import gpus_table, pools_table, workers_table
from tensorfusion.embedded.control_plane import ControlPlane, ControlPlaneConfig
from tensorfusion.embedded.state_dir import STATE_DIR_ENV, default_state_dir
from tensorfusion.engine.observability import ObservabilityConfig
from tensorfusion.errors import ConfigError, TensorFusionError
from tensorfusion.server.app import create_app
from tensorfusion.server.auth import is_loopback
from tensorfusion.server.metrics_listener import metrics_app, parse_bind_address
from tensorfusion.server.runner import serve, start_in_thread
from tensorfusion.server.settings import ServerSettings
from tensorfusion.server.worker_requests import WorkerCreate

log = logging.getLogger("tensorfusion.up")

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def _progress(message: str) -> None:
    print(f"tensor-fusion up: {message}", file=sys.stderr, flush=True)


def _up(args: argparse.Namespace) -> int:
    try:
        observability = _observability(args)
        metrics_address = (
            parse_bind_address(args.metrics_bind_address) if args.metrics_bind_address else None
        )
    except TensorFusionError as exc:
        print(f"tensor-fusion up: {exc}", file=sys.stderr)
        return EXIT_USAGE
    config = ControlPlaneConfig(
        state_dir=Path(args.state_dir) if args.state_dir else default_state_dir(),
        fleet=Path(args.fleet) if args.fleet else None,
        scheduler_config=Path(args.scheduler_config) if args.scheduler_config else None,
        observability=observability,
    )
    if not (is_loopback(args.host) or args.host == "localhost"):
        _progress(
            f"listening on {args.host}: reads from other hosts need the token "
            "unless --public-reads is given"
        )
    plane = ControlPlane(config, progress=_progress)

    def started(url: str) -> None:
        plane.state.publish_endpoint(url)
        _progress(f"serving on {url} (dashboard at {url}/)")
        _progress(f"API token in {plane.state.paths.token}")

    try:
        plane.start()  # inside the try: a Ctrl-C while it builds still stops what started
        app = create_app(plane, ServerSettings(token=plane.token, public_reads=args.public_reads))
        with contextlib.ExitStack() as listeners:
            if metrics_address is not None:
                metrics = listeners.enter_context(
                    start_in_thread(metrics_app(app.state.metrics_registry), *metrics_address)
                )
                _progress(f"Prometheus metrics on {metrics.url}/metrics")
            serve(app, args.host, args.port, on_started=started)
    except TensorFusionError as exc:
        print(f"tensor-fusion up: {exc}", file=sys.stderr)
        return EXIT_USAGE
    finally:
        _progress("stopping")
        plane.stop()
    return EXIT_OK


def _observability(args: argparse.Namespace) -> ObservabilityConfig:
    """The metrics and alerting flags. Alerts are evaluated when they have somewhere to go:
    `--alert-manager-addr` (upstream's `--enable-alert` alone has no address to send to)."""
    if args.enable_alert and not args.alert_manager_addr:
        raise ConfigError("--alert-manager-addr", "required with --enable-alert")
    if args.alert_manager_addr:
        alerts_url(args.alert_manager_addr)  # refused before anything starts
    greptime = None
    if args.values:
        values = load_model(HelmValues, Path(args.values), "Helm values")
        if values.greptime is not None and not values.greptime.install_standalone:
            greptime = values.greptime
    return ObservabilityConfig(
        dynamic_config=Path(args.dynamic_config) if args.dynamic_config else None,
        alert_manager_addr=args.alert_manager_addr,
        greptime=greptime,
        interval_s=args.metrics_interval,
    )


def _client(args: argparse.Namespace) -> ApiClient:
    return ApiClient.locate(args.server, Path(args.state_dir) if args.state_dir else None)


def _run(args: argparse.Namespace) -> int:
    command = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    request = WorkerCreate(
        tflops_request=args.tflops_request,
        vram_request=args.vram_request,
        tflops_limit=args.tflops_limit,
        vram_limit=args.vram_limit,
        gpu_count=args.gpu_count,
        pool=args.pool,
        gpu_model=args.gpu_model,
        name=args.name,
    )
    try:
        client = _client(args)
    except TensorFusionError as exc:
        print(f"tensor-fusion run: {exc}", file=sys.stderr)
        return 125
    return run(client, request, command)


def _status(args: argparse.Namespace) -> int:
    try:
        client = _client(args)
        pools = client.get("/api/pools")["pools"]
        gpus = client.get("/api/gpus")["gpus"]
        workers = client.get("/api/workers")["workers"]
    except TensorFusionError as exc:
        print(f"tensor-fusion status: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(f"control plane: {client.url}\n")
    print(pools_table(pools), end="\n\n")
    print(gpus_table(gpus), end="\n\n")
    print(workers_table(workers) if workers else "no workers")
    return EXIT_OK


def _allocation(args: argparse.Namespace) -> int:
    try:
        snapshot = _client(args).get("/api/allocation")
    except TensorFusionError as exc:
        print(f"tensor-fusion allocation: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(json.dumps(snapshot, indent=2))
    return EXIT_OK


def _add_location(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--state-dir",
        metavar="DIR",
        help=f"the control plane's state dir (default: ${STATE_DIR_ENV} or the user data dir)",
    )
    parser.add_argument(
        "--server", metavar="URL", help="the API's URL (default: the one `up` announced)"
    )


def add_control_plane_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
) -> None:
    up = commands.add_parser(
        "up",
        help="run the embedded control plane",
        description="Pool this host's GPUs (through NVML) or a declared fleet, and serve the "
        "management API and dashboard. State (allocations, workers) lives in the state dir; "
        "a restart on it resumes. Stops cleanly on SIGINT/SIGTERM.",
    )
    up.add_argument(
        "--state-dir", metavar="DIR", help=f"default: ${STATE_DIR_ENV} or the user data dir"
    )
    up.add_argument("--fleet", metavar="FLEET.yaml", help="pool a declared fleet instead")
    up.add_argument("--scheduler-config", metavar="FILE", help="KubeSchedulerConfiguration")
    up.add_argument("--host", default="127.0.0.1")
    up.add_argument("--port", type=int, default=8080)
    up.add_argument(
        "--public-reads",
        action="store_true",
        help="serve read endpoints to any host without the token",
    )
    up.add_argument(
        "--dynamic-config",
        metavar="FILE",
        help="metricsTTL, metricsFormat and alertRules (default: the built-in rules)",
    )
    up.add_argument(
        "--alert-manager-addr",
        metavar="ADDR",
        help="evaluate the alert rules and post alerts to this Alertmanager (host:port or URL)",
    )
    up.add_argument(
        "--enable-alert", action="store_true", help="upstream's flag; needs --alert-manager-addr"
    )
    up.add_argument(
        "--values",
        metavar="FILE",
        help="Helm values: a greptime section with installStandalone: false (or isCloud) "
        "sends metrics to that GreptimeDB instead of the state dir",
    )
    up.add_argument(
        "--metrics-interval", type=float, default=5.0, metavar="SECONDS", help="default: 5"
    )
    up.add_argument(
        "--metrics-bind-address",
        metavar="ADDR",
        help="also serve /metrics (no token) on this listener, e.g. :9000 or 127.0.0.1:9000",
    )
    up.set_defaults(run=_up)

    run_cmd = commands.add_parser(
        "run",
        help="run a command in a GPU slice",
        description="Ask the running control plane for a GPU slice, run CMD in it under the "
        "shim (limits enforced, CUDA_VISIBLE_DEVICES set), release it when CMD exits, and exit "
        "with CMD's status (125: no slice, 126: CMD not executable, 127: CMD not found).",
    )
    run_cmd.add_argument("--tflops-request", required=True, metavar="TFLOPS")
    run_cmd.add_argument("--tflops-limit", metavar="TFLOPS", help="default: the request")
    run_cmd.add_argument("--vram-request", metavar="BYTES", help="default: the limit")
    run_cmd.add_argument("--vram-limit", required=True, metavar="BYTES", help="e.g. 4Gi")
    run_cmd.add_argument("--gpu-count", type=int, default=1, metavar="N")
    run_cmd.add_argument("--pool", metavar="NAME")
    run_cmd.add_argument("--gpu-model", metavar="MODEL")
    run_cmd.add_argument("--name", metavar="NAME", help="the worker's name (default: generated)")
    _add_location(run_cmd)
    run_cmd.add_argument("cmd", nargs=argparse.REMAINDER, metavar="-- CMD ARGS...")
    run_cmd.set_defaults(run=_run)

    status = commands.add_parser("status", help="pools, GPUs and workers as tables")
    _add_location(status)
    status.set_defaults(run=_status)

    allocation = commands.add_parser("allocation", help="the raw allocation snapshot (JSON)")
    _add_location(allocation)
    allocation.set_defaults(run=_allocation)
