"""Requests to the Kubernetes API server as plain JSON, and the server's refusals as the
store's errors: each names the object and carries the server's own message."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import weakref
from collections.abc import Sequence
from typing import Any

import urllib3
from kubernetes import client as kube_client

from tensorfusion.errors import (
    AlreadyExistsError,
    ConfigError,
    ConflictError,
    NotFoundError,
    NotServedError,
    ResourceExpiredError,
    StoreError,
)
from tensorfusion.store.objects import JsonObject

JSON = "application/json"
MERGE_PATCH = "application/merge-patch+json"
# Watch streams hold a connection each, one per kind, beside the ordinary requests.
_CONNECTIONS = 64


class Interruption:
    """Lets another thread end the streaming requests made through it at any step: while one
    waits for the server's answer as much as while it reads it. Once interrupted, every later
    request made through it ends as soon as it is sent."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._interrupted = False

    def interrupt(self) -> None:
        with self._lock:
            self._interrupted = True
            _shut(self._sock)

    def release(self) -> None:
        """Forget the current request's socket before its connection goes back to the pool,
        where another request may take it."""
        with self._lock:
            self._sock = None

    def _sent(self, sock: socket.socket | None) -> None:
        with self._lock:
            self._sock = sock
            if self._interrupted:
                _shut(sock)


def _shut(sock: socket.socket | None) -> None:
    """Closing the socket for reading ends a read blocked on it at once, where closing the
    response would wait for that read."""
    if sock is not None:
        # It may be closed already, by the server or by the reading thread.
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


# The interruption of the streaming request this thread is making, if any: the pool makes the
# request on this thread, through a connection that only the pool chooses.
_streaming = threading.local()


class _Interruptible:
    """Hands the connection's socket, once the request is sent, to the interruption of the
    streaming request in progress on this thread."""

    sock: socket.socket | None

    def request(self, *args: Any, **kwargs: Any) -> None:
        try:
            super().request(*args, **kwargs)  # type: ignore[misc]
        finally:
            # Even a send that failed may leave an answer to wait for (the pool swallows a
            # broken pipe).
            interruption: Interruption | None = getattr(_streaming, "interruption", None)
            if interruption is not None:
                interruption._sent(self.sock)


def _interruptible(
    pool: type[urllib3.HTTPConnectionPool],
) -> type[urllib3.HTTPConnectionPool]:
    """`pool`, making its connections `_Interruptible`: built on the class the client chose,
    so that a proxy's own connections (SOCKS) keep working."""
    connection = type(pool.ConnectionCls.__name__, (_Interruptible, pool.ConnectionCls), {})
    return type(pool.__name__, (pool,), {"ConnectionCls": connection})


class KubeApi:
    """One API server connection pool, shared by every thread; `close` ends it."""

    def __init__(self, configuration: kube_client.Configuration, timeout_s: float) -> None:
        configuration.connection_pool_maxsize = max(
            configuration.connection_pool_maxsize, _CONNECTIONS
        )
        self.host: str = configuration.host
        self._timeout_s = timeout_s
        self._client: kube_client.ApiClient | None = kube_client.ApiClient(configuration)
        pools = self._client.rest_client.pool_manager
        pools.pool_classes_by_scheme = {
            scheme: _interruptible(pool) for scheme, pool in pools.pool_classes_by_scheme.items()
        }
        self._lock = threading.Lock()
        # Those of the streams opened through it that are still alive, for `close` to end.
        self._streams: weakref.WeakSet[Interruption] = weakref.WeakSet()

    def _open(
        self,
        method: str,
        path: str,
        what: str,
        *,
        query: Sequence[tuple[str, str]],
        body: bytes | None,
        content_type: str,
        timeout_s: float,
        interruption: Interruption | None,
    ) -> urllib3.BaseHTTPResponse:
        with self._lock:
            client = self._client
        if client is None:
            raise StoreError(f"the store on {self.host} is closed")
        headers = {"Accept": JSON}
        if body is not None:
            headers["Content-Type"] = content_type
        _, url, headers, _, _ = client.param_serialize(
            method,
            path,
            query_params=list(query),
            header_params=headers,
            auth_settings=["BearerToken"],
        )
        try:
            response: urllib3.BaseHTTPResponse = client.rest_client.pool_manager.request(
                method,
                url,
                body=body,
                headers=headers,
                timeout=timeout_s,
                preload_content=interruption is None,
                retries=False,
            )
        except urllib3.exceptions.HTTPError as error:
            raise StoreError(
                f"{what}: cannot reach the API server at {self.host}: {error}"
            ) from None
        if not 200 <= response.status < 300:
            payload = response.data if interruption is None else response.read()
            if interruption is not None:
                interruption.release()
            response.release_conn()
            raise api_error(response.status, decoded_status(payload), what)
        return response

    def request(
        self,
        method: str,
        path: str,
        what: str,
        *,
        query: Sequence[tuple[str, str]] = (),
        body: bytes | None = None,
        content_type: str = JSON,
    ) -> JsonObject:
        """The server's JSON answer to one request; `what` names the object in errors."""
        response = self._open(
            method,
            path,
            what,
            query=query,
            body=body,
            content_type=content_type,
            timeout_s=self._timeout_s,
            interruption=None,
        )
        try:
            answer: JsonObject = json.loads(response.data)
        except ValueError:
            raise StoreError(f"{what}: the API server's answer is not JSON") from None
        return answer

    def stream(
        self,
        path: str,
        what: str,
        query: Sequence[tuple[str, str]],
        timeout_s: float,
        interruption: Interruption,
    ) -> urllib3.BaseHTTPResponse:
        """An open streaming GET (a watch) that `interruption` can end from another thread,
        from the moment it is sent, as `close` does; the caller reads its lines, then
        releases `interruption` before the response."""
        with self._lock:
            if self._client is not None:
                self._streams.add(interruption)
        _streaming.interruption = interruption
        try:
            return self._open(
                "GET",
                path,
                what,
                query=query,
                body=None,
                content_type=JSON,
                timeout_s=timeout_s,
                interruption=interruption,
            )
        except BaseException:
            interruption.release()
            raise
        finally:
            _streaming.interruption = None

    def close(self) -> None:
        """End the pool and every stream opened through it, at whatever step each is."""
        with self._lock:
            client, self._client = self._client, None
            streams, self._streams = list(self._streams), weakref.WeakSet()
        for interruption in streams:
            interruption.interrupt()
        if client is not None:
            client.rest_client.pool_manager.clear()


def decoded_status(payload: bytes) -> JsonObject:
    """A `Status` body, or one made of the raw text when the server sent something else."""
    try:
        status = json.loads(payload)
    except ValueError:
        status = None
    if isinstance(status, dict):
        return status
    return {"message": payload.decode("utf-8", "replace").strip() or "(no message)"}


def api_error(code: int, status: JsonObject, what: str) -> StoreError | ConfigError:
    """The store's error for a refusal with HTTP `code` and `status` body, about `what`
    (`Kind namespace/name`)."""
    message = str(status.get("message") or status.get("reason") or "(no message)")
    reason = status.get("reason")
    details = status.get("details")
    if code == 404 and isinstance(details, dict) and details.get("name"):
        return NotFoundError(f"{what} not found")
    if code == 404:  # no object named: the server does not serve the resource at all
        return NotServedError(f"{what}: the API server does not serve this resource: {message}")
    if code == 409 and reason == "AlreadyExists":
        return AlreadyExistsError(f"{what} already exists")
    if code == 409:
        return ConflictError(f"{what}: {message}")
    if code == 410:
        return ResourceExpiredError(
            f"{what}: {message}; list again (list_with_version) and watch from the version "
            "that returns"
        )
    if code == 422:
        return ConfigError(_first_cause_field(status), f"{what}: {message}")
    return StoreError(f"{what}: the API server answered {code}: {message}")


def _first_cause_field(status: JsonObject) -> str:
    details = status.get("details")
    causes = details.get("causes") if isinstance(details, dict) else None
    if isinstance(causes, list) and causes and isinstance(causes[0], dict):
        return str(causes[0].get("field") or "object")
    return "object"
