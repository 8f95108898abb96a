"""Running the app under uvicorn: `serve` in the foreground (until SIGINT/SIGTERM), or
`start_in_thread` for tests and benchmarks.

The socket is bound here, before uvicorn starts, so that a port that is taken is a
ConfigError for the caller rather than uvicorn's `sys.exit`, and port 0 resolves to the real
port for the URL."""

from __future__ import annotations

import contextlib
import copy
import logging
import os
import signal
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any, Final, Protocol

import uvicorn
from starlette.types import ASGIApp

from tensorfusion.errors import ConfigError, UnavailableError
from tensorfusion.log import ENV_VAR, parse_log_level

GRACEFUL_SHUTDOWN_S: Final = 30
"""How long in-flight requests may take to finish after SIGINT/SIGTERM."""
STOP_SIGNALS: Final = (signal.SIGINT, signal.SIGTERM)
_UVICORN_LEVELS: Final = {
    "trace": "trace",
    "debug": "debug",
    "info": "info",
    "warn": "warning",
    "error": "error",
}
LOGGER: Final = logging.getLogger("tensorfusion.server")


class TlsFiles(Protocol):
    """A PEM certificate (chain) and its key, for serving HTTPS."""

    @property
    def cert_file(self) -> Path: ...

    @property
    def key_file(self) -> Path: ...


def listen(host: str, port: int) -> socket.socket:
    """A listening TCP socket for host:port (IPv4 or IPv6, as the host resolves)."""
    # getaddrinfo would quietly take 70000 as 70000 mod 65536.
    if not 0 <= port <= 65535:
        raise ConfigError("port", f"must be 0 (any free port) to 65535, got {port}")
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP, flags=socket.AI_PASSIVE
        )[0]
    except OSError as exc:
        raise ConfigError("host/port", f"cannot listen on {host}:{port}: {exc}") from exc
    # The protocol is named (not left 0): asyncio disables Nagle (TCP_NODELAY) only on
    # connections whose socket says it is TCP, and with Nagle on each keep-alive response
    # waits 40 ms for the client's delayed ACK.
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen()
    except OSError as exc:
        sock.close()
        raise ConfigError("host/port", f"cannot listen on {host}:{port}: {exc}") from exc
    return sock


def url_of(sock: socket.socket, scheme: str = "http") -> str:
    host, port = sock.getsockname()[:2]
    return (
        f"{scheme}://[{host}]:{port}"
        if sock.family == socket.AF_INET6
        else f"{scheme}://{host}:{port}"
    )


def _log_config() -> dict[str, Any]:
    """uvicorn's logging, with request lines on stderr too: stdout is the CLI's output."""
    config = copy.deepcopy(uvicorn.config.LOGGING_CONFIG)
    config["handlers"]["access"]["stream"] = "ext://sys.stderr"
    return config


def _config(app: ASGIApp, tls: TlsFiles | None = None) -> uvicorn.Config:
    level = _UVICORN_LEVELS[parse_log_level(os.environ.get(ENV_VAR))]
    # A line per request only at debug and trace: at info it would flood a busy server's log.
    return uvicorn.Config(
        app,
        log_level=level,
        log_config=_log_config(),
        access_log=level in ("debug", "trace"),
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
        ssl_certfile=tls.cert_file if tls else None,
        ssl_keyfile=tls.key_file if tls else None,
    )


class _Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, url: str, on_started: Callable[[str], None]) -> None:
        super().__init__(config)
        self.url = url
        self.on_started = on_started

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            LOGGER.info("serving on %s", self.url)
            self.on_started(self.url)

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # uvicorn's own handlers re-raise the signal after shutting down, which for SIGTERM
        # kills the process before the caller can stop the control plane; here the signal
        # only stops the server (a second one forces it) and `serve` returns.
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in STOP_SIGNALS}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self.force_exit = self.should_exit
        self.should_exit = True


def serve(app: ASGIApp, host: str, port: int, on_started: Callable[[str], None]) -> None:
    """Serve until SIGINT or SIGTERM, then let in-flight requests finish and return.
    `on_started` gets the URL (with the real port when `port` is 0) once it listens."""
    sock = listen(host, port)
    _Server(_config(app), url_of(sock), on_started).run(sockets=[sock])


class RunningServer:
    """A server on a background thread; stops (gracefully) on `stop()` or leaving `with`."""

    def __init__(self, server: _Server, thread: threading.Thread) -> None:
        self._server = server
        self._thread = thread
        self.url = server.url

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join()

    def __enter__(self) -> RunningServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def start_in_thread(
    app: ASGIApp, host: str = "127.0.0.1", port: int = 0, *, tls: TlsFiles | None = None
) -> RunningServer:
    """Start serving on a daemon thread (HTTPS with `tls`); returns once the server accepts
    requests."""
    sock = listen(host, port)
    started = threading.Event()
    url = url_of(sock, "https" if tls else "http")
    server = _Server(_config(app, tls), url, lambda _url: started.set())
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="tensorfusion-api", daemon=True
    )
    thread.start()
    while not started.wait(0.05):
        if not thread.is_alive():
            sock.close()
            raise UnavailableError(f"the server on {server.url} stopped while starting")
    return RunningServer(server, thread)
