"""Running under uvicorn: the real port in the URL, a taken port as a ConfigError, graceful
stops (in-flight requests finish) from `stop()` and from SIGTERM/SIGINT."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tensorfusion.errors import ConfigError
from tensorfusion.server.app import create_app
from tensorfusion.server.runner import listen, start_in_thread, url_of
from tensorfusion.server.settings import ServerSettings
from tests.unit.server.conftest import TOKEN
from tests.unit.server.fake_backend import FakeBackend

# A server whose /slow request waits for a line on stdin, so that the test decides when it
# finishes; it reports each step on stdout.
SERVE_SCRIPT = textwrap.dedent(
    """
    import sys
    from fastapi import FastAPI
    from tensorfusion.server.runner import serve

    app = FastAPI()

    @app.get("/slow")
    def slow() -> dict[str, str]:
        print("entered", flush=True)
        sys.stdin.readline()
        return {"done": "yes"}

    serve(app, "127.0.0.1", 0, lambda url: print(url, flush=True))
    print("returned", flush=True)
    """
)


def wait_until_refusing(url: str) -> None:
    """Returns once the server has stopped accepting connections (it is shutting down). A
    connection the kernel accepted just before the listener closed is dropped unanswered."""
    while True:
        try:
            httpx.get(f"{url}/healthz", timeout=5)
        except (httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError):
            return


@pytest.mark.timing
def test_port_zero_gives_the_real_port_in_the_url() -> None:
    app = create_app(FakeBackend(), ServerSettings(token=TOKEN))
    with start_in_thread(app) as server:
        host, port = server.url.removeprefix("http://").split(":")
        assert host == "127.0.0.1"
        assert int(port) > 0
        assert httpx.get(f"{server.url}/healthz").json() == {"status": "ok"}
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{server.url}/healthz")


@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
def test_the_socket_says_it_is_tcp(host: str) -> None:
    """asyncio turns Nagle off (TCP_NODELAY) only for sockets whose protocol is TCP; a
    socket left at protocol 0 makes every keep-alive response wait for a delayed ACK."""
    with listen(host, 0) as sock:
        assert sock.proto == socket.IPPROTO_TCP


def test_an_ipv6_url_is_bracketed() -> None:
    sock = listen("::1", 0)
    with sock:
        assert url_of(sock) == f"http://[::1]:{sock.getsockname()[1]}"


def test_a_taken_port_is_a_config_error() -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        with pytest.raises(ConfigError) as caught:
            start_in_thread(create_app(FakeBackend(), ServerSettings(token=TOKEN)), port=port)
    assert caught.value.field == "host/port"
    assert f"127.0.0.1:{port}" in str(caught.value)


@pytest.mark.parametrize(
    ("host", "port", "field"),
    [("no-such-host.invalid", 0, "host/port"), ("127.0.0.1", 70000, "port"), ("::1", -1, "port")],
)
def test_an_unusable_address_is_a_config_error(host: str, port: int, field: str) -> None:
    with pytest.raises(ConfigError) as caught:
        listen(host, port)
    assert caught.value.field == field


def test_a_bad_log_level_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TF_LOG_LEVEL", "loud")
    with pytest.raises(ConfigError, match="TF_LOG_LEVEL"):
        start_in_thread(create_app(FakeBackend(), ServerSettings(token=TOKEN)))


@pytest.mark.timing
def test_stop_lets_an_in_flight_request_finish() -> None:
    entered, release = threading.Event(), threading.Event()
    backend = FakeBackend(gate=release)
    original = backend.workers

    def workers() -> list[dict[str, object]]:
        entered.set()
        return original()

    backend.workers = workers  # type: ignore[method-assign]
    server = start_in_thread(create_app(backend, ServerSettings(token=TOKEN)))
    with ThreadPoolExecutor(2) as pool:
        request = pool.submit(httpx.get, f"{server.url}/api/workers", timeout=30)
        entered.wait()
        stopping = pool.submit(server.stop)
        wait_until_refusing(server.url)
        release.set()
        # The request in flight when the shutdown began still gets its answer.
        assert request.result().status_code == 200
        stopping.result()


@pytest.mark.timing
@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT])
def test_serve_stops_gracefully_on_a_signal_and_returns(stop: signal.Signals) -> None:
    env = os.environ | {"TF_LOG_LEVEL": "debug"}
    process = subprocess.Popen(
        [sys.executable, "-c", SERVE_SCRIPT],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert process.stdin is not None
    assert process.stdout is not None
    try:
        url = process.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        with ThreadPoolExecutor(1) as pool:
            request = pool.submit(httpx.get, f"{url}/slow", timeout=30)
            assert process.stdout.readline().strip() == "entered"
            process.send_signal(stop)
            wait_until_refusing(url)
            process.stdin.write("go\n")
            process.stdin.flush()
            assert request.result().json() == {"done": "yes"}
        out, err = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == 0, err
    assert out == "returned\n"  # and no log lines on stdout
    assert '"GET /slow HTTP/1.1" 200' in err  # TF_LOG_LEVEL=debug logs each request
