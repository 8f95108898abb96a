"""Closing a feed ends its watch threads at once, whatever step their request is at: even one
the server has not answered yet, or one sent after the close."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from collections.abc import Callable, Iterator

import pytest
from kubernetes import client as kube_client

from tensorfusion.errors import ResourceExpiredError, StoreError
from tensorfusion.store.kube_http import Interruption, KubeApi
from tensorfusion.store.kube_kinds import KUBE_KINDS
from tensorfusion.store.kube_watch import StreamFeed

# Bounds only for a failure: a watch's own read timeout is far longer (over 5 minutes).
_BOUND_S = 10.0
_PODS = KUBE_KINDS["Pod"]

Answer = Callable[[socket.socket], None]


def _never(connection: socket.socket) -> None:
    """Hold the request unanswered, as a server that has stalled does."""


def _gone(connection: socket.socket) -> None:
    body = json.dumps({"kind": "Status", "code": 410, "message": "too old"}).encode()
    head = f"HTTP/1.1 410 Gone\r\nContent-Type: application/json\r\nContent-Length: {len(body)}"
    connection.sendall(head.encode() + b"\r\n\r\n" + body)


class _Server:
    """A server on a thread that takes one request at a time and answers it with `answer`;
    `received` is set once a request has arrived whole."""

    def __init__(self, answer: Answer) -> None:
        self._answer = answer
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self.received = threading.Event()
        self._open: list[socket.socket] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self._listener.accept()
            except OSError:  # closed: the test is over
                return
            self._open.append(connection)
            data = b""
            while b"\r\n\r\n" not in data and (chunk := connection.recv(4096)):
                data += chunk
            self.received.set()
            self._answer(connection)

    def close(self) -> None:
        # Shutting the listener down wakes its `accept`, which closing it alone would not.
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        for connection in self._open:
            connection.close()
        self._thread.join(_BOUND_S)


@pytest.fixture
def serve() -> Iterator[Callable[[Answer], tuple[_Server, KubeApi]]]:
    made: list[tuple[_Server, KubeApi]] = []

    def start(answer: Answer) -> tuple[_Server, KubeApi]:
        server = _Server(answer)
        api = KubeApi(kube_client.Configuration(host=server.url), timeout_s=_BOUND_S)
        made.append((server, api))
        return server, api

    yield start
    for server, api in made:
        api.close()
        server.close()


def test_closing_a_feed_ends_a_watch_the_server_has_not_answered(
    serve: Callable[[Answer], tuple[_Server, KubeApi]],
) -> None:
    server, api = serve(_never)
    feed = StreamFeed(api, {_PODS: 1}, {})
    assert server.received.wait(_BOUND_S)
    feed.close()
    for stream in feed._streams:
        stream.join(_BOUND_S)
        assert not stream.is_alive()
    assert feed.take() == []  # a close is no failure


def test_closing_the_api_ends_the_watches_of_a_feed_left_open(
    serve: Callable[[Answer], tuple[_Server, KubeApi]],
) -> None:
    server, api = serve(_never)
    feed = StreamFeed(api, {_PODS: 1}, {})
    assert server.received.wait(_BOUND_S)
    api.close()
    for stream in feed._streams:
        stream.join(_BOUND_S)
        assert not stream.is_alive()
    with pytest.raises(StoreError, match="watch of Pod"):
        feed.take()  # the feed was not closed: its end is a failure
    feed.close()


def test_a_closed_api_opens_no_watch(
    serve: Callable[[Answer], tuple[_Server, KubeApi]],
) -> None:
    server, api = serve(_never)
    api.close()
    with pytest.raises(StoreError, match="is closed"):
        api.stream(_PODS.collection(), "watch of Pod", [("watch", "true")], 300, Interruption())
    assert not server.received.is_set()


def test_a_watch_sent_after_the_interruption_ends_at_once(
    serve: Callable[[Answer], tuple[_Server, KubeApi]],
) -> None:
    _, api = serve(_never)
    interruption = Interruption()
    interruption.interrupt()
    with pytest.raises(StoreError, match="cannot reach the API server"):
        api.stream(_PODS.collection(), "watch of Pod", [("watch", "true")], 300, interruption)


def test_a_refused_watch_is_the_servers_error(
    serve: Callable[[Answer], tuple[_Server, KubeApi]],
) -> None:
    _, api = serve(_gone)
    with pytest.raises(ResourceExpiredError, match="too old"):
        api.stream(_PODS.collection(), "watch of Pod", [("watch", "true")], 300, Interruption())


def test_an_interruption_shuts_the_socket_of_the_request_in_progress() -> None:
    ours, theirs = socket.socketpair()
    with ours, theirs:
        interruption = Interruption()
        interruption._sent(ours)
        interruption.interrupt()
        assert ours.recv(1) == b""  # would block without the interruption


def test_an_interruption_spares_a_released_socket() -> None:
    ours, theirs = socket.socketpair()
    with ours, theirs:
        interruption = Interruption()
        interruption._sent(ours)
        interruption.release()  # its connection went back to the pool
        interruption.interrupt()
        theirs.sendall(b"x")
        assert ours.recv(1) == b"x"


def test_an_interruption_before_the_send_shuts_the_socket_once_sent() -> None:
    ours, theirs = socket.socketpair()
    with ours, theirs:
        interruption = Interruption()
        interruption.interrupt()
        interruption._sent(ours)
        assert ours.recv(1) == b""


@pytest.mark.parametrize("sock", [None, "closed"])
def test_an_interruption_tolerates_a_missing_or_closed_socket(sock: str | None) -> None:
    interruption = Interruption()
    if sock == "closed":
        closed = socket.socket()
        closed.close()
        interruption._sent(closed)
    interruption.interrupt()
    interruption.interrupt()  # twice is harmless
    interruption.release()
