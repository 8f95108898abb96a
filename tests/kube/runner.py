"""Runs the emulator on its own thread and event loop (the synchronous Kubernetes client would
deadlock inside the emulator's loop), and hands tests a `KubeApi` to reach it."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml

from tests.kube.emulator import ApiServerEmulator, run_until

T = TypeVar("T")
_START_TIMEOUT_S = 30.0


def write_kubeconfig(path: Path, url: str) -> Path:
    """A kubeconfig with one context, `emulator`, that reaches `url` as the admin."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "emulator", "cluster": {"server": url}}],
        "users": [{"name": "admin", "user": {"token": "emulator-admin"}}],
        "contexts": [
            {
                "name": "emulator",
                "context": {"cluster": "emulator", "user": "admin", "namespace": "default"},
            }
        ],
        "current-context": "emulator",
    }
    path.write_text(yaml.safe_dump(config))
    return path


@dataclass
class KubeApi:
    """A running emulator, as tests see it."""

    url: str
    kubeconfig: Path
    emulator: ApiServerEmulator
    _loop: asyncio.AbstractEventLoop = field(repr=False)

    def call(self, function: Callable[[], T]) -> T:
        """Run `function` on the emulator's loop, where its state lives, and return its result."""
        future: concurrent.futures.Future[T] = concurrent.futures.Future()

        def run() -> None:
            try:
                future.set_result(function())
            except Exception as error:
                future.set_exception(error)

        self._loop.call_soon_threadsafe(run)
        return future.result(timeout=_START_TIMEOUT_S)

    def register_token(self, token: str, username: str) -> None:
        """Make the emulator's TokenReview authenticate `token` as `username`."""
        self.call(lambda: self.emulator.register_token(token, username))

    def route_service(self, namespace: str, name: str, port: int, to: tuple[str, int]) -> None:
        """Make the emulator reach Service `namespace/name` on `port` at `to` (host, port), as
        webhooks' `clientConfig.service` names it."""
        self.call(lambda: self.emulator.route_service(namespace, name, port, to))

    def compact(self) -> None:
        """Drop the change log, so that a watch from any older resourceVersion gets 410 Gone."""
        self.call(self.emulator.compact)

    def drop_watches(self, *, compact: bool = False) -> None:
        """End every open watch, as an API server's restart does; with `compact`, drop the
        change log too (in the same step), so that resuming a watch gets 410 Gone."""
        self.call(lambda: self.emulator.drop_watches(compact=compact))

    def expired_reads(self) -> int:
        """How many watches so far asked for a version older than the log keeps (410 Gone)."""
        return self.call(lambda: self.emulator.store.expired_reads)


class EmulatorThread:
    """`with EmulatorThread(kubeconfig_path) as api:` serves a fresh emulator until the end."""

    def __init__(self, kubeconfig: Path, **options: Any) -> None:
        self._kubeconfig = kubeconfig
        self._options = options
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None

    def __enter__(self) -> KubeApi:
        emulator = ApiServerEmulator(**self._options)
        started: concurrent.futures.Future[str] = concurrent.futures.Future()

        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            await run_until(emulator, started.set_result, self._stop)

        def thread() -> None:
            try:
                asyncio.run(main())
            except BaseException as error:
                if not started.done():
                    started.set_exception(error)
                raise

        self._thread = threading.Thread(target=thread, name="kube-api-emulator", daemon=True)
        self._thread.start()
        url = started.result(timeout=_START_TIMEOUT_S)
        assert self._loop is not None
        return KubeApi(url, write_kubeconfig(self._kubeconfig, url), emulator, self._loop)

    def __exit__(self, *exc_info: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(timeout=_START_TIMEOUT_S)
