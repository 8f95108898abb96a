"""`tensor-fusion run`: get a GPU slice from the running control plane, run a command in it
under the shim, and give the slice back when the command ends, however it ends.

Exit status: the command's own (128 + N when it died of signal N); 125 when the slice could
not be had (no control plane, unschedulable, bad request), 126 when the command cannot be
executed, 127 when it does not exist. The same conventions as `env`, `docker run` and shells.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from tensorfusion.client.api_client import ApiClient, ApiError, NoControlPlane
from tensorfusion.client.held_child import HeldChild
from tensorfusion.errors import TensorFusionError
from tensorfusion.server.worker_requests import WorkerCreate
from tensorfusion.shim import shim_path

log = logging.getLogger(__name__)

EXIT_NO_SLICE = 125
EXIT_CANNOT_EXECUTE = 126
EXIT_NOT_FOUND = 127
FORWARDED_SIGNALS = (
    signal.SIGINT,
    signal.SIGTERM,
    signal.SIGHUP,
    signal.SIGQUIT,
    signal.SIGUSR1,
    signal.SIGUSR2,
)


def request_body(request: WorkerCreate, command: Sequence[str]) -> dict[str, Any]:
    """The `POST /api/workers` body for this process running `command`."""
    asked = request.model_copy(update={"pid": os.getpid(), "command": list(command)})
    return asked.model_dump(mode="json", by_alias=True, exclude_none=True)


def worker_environment(base: Mapping[str, str], slice_env: Mapping[str, str]) -> dict[str, str]:
    """The command's environment: ours, the slice's limits and devices, and the shim first in
    LD_PRELOAD (kept ahead of whatever the user preloads)."""
    env = dict(base) | dict(slice_env)
    preload = [str(shim_path())] + [p for p in base.get("LD_PRELOAD", "").split(":") if p]
    env["LD_PRELOAD"] = ":".join(preload)
    return env


def run(client: ApiClient, request: WorkerCreate, command: Sequence[str]) -> int:
    if not command:
        print("tensor-fusion run: give the command after `--`", file=sys.stderr)
        return EXIT_NO_SLICE
    try:
        worker = client.request("POST", "/api/workers", request_body(request, command))
    except NoControlPlane as exc:
        print(f"tensor-fusion run: {exc}", file=sys.stderr)
        return EXIT_NO_SLICE
    except ApiError as exc:
        print(f"tensor-fusion run: no GPU slice: {exc}", file=sys.stderr)
        return EXIT_NO_SLICE
    name = worker["name"]
    log.info("worker %s on %s: GPUs %s", name, worker.get("node"), ", ".join(worker["gpus"]))
    try:
        return _run_in_slice(client, name, worker_environment(os.environ, worker["env"]), command)
    finally:
        _release(client, name)


def _run_in_slice(client: ApiClient, name: str, env: dict[str, str], command: Sequence[str]) -> int:
    """Run `command`, its pid recorded in the worker before it is let go: a command that ends
    at once is still seen by the node agent."""
    with contextlib.closing(HeldChild(command, env, FORWARDED_SIGNALS)) as child:
        try:
            client.request("PATCH", f"/api/workers/{name}", {"pids": [child.pid]})
        except TensorFusionError as exc:  # the slice still holds through our own pid
            log.warning("could not record the command's pid: %s", exc)
        try:
            child.release()
        except FileNotFoundError:
            print(f"tensor-fusion run: {command[0]}: command not found", file=sys.stderr)
            return EXIT_NOT_FOUND
        except OSError as exc:
            print(f"tensor-fusion run: {command[0]}: {exc.strerror}", file=sys.stderr)
            return EXIT_CANNOT_EXECUTE
        status = child.wait()
    return 128 - status if status < 0 else status


def _release(client: ApiClient, name: str) -> None:
    try:
        client.request("DELETE", f"/api/workers/{name}")
    except ApiError as exc:
        if exc.status != 404:  # already released (the agent saw the processes end)
            print(f"tensor-fusion run: could not release {name}: {exc}", file=sys.stderr)
    except Exception as exc:  # the agent releases it once our processes are gone
        print(f"tensor-fusion run: could not release {name}: {exc}", file=sys.stderr)
