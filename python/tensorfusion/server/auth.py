"""Who may do what: every state-changing request needs the bearer token; reads (and simulate,
which changes nothing) are open to loopback clients, and to everyone with `public_reads`.

A pure ASGI middleware rather than per-route dependencies, so that the OpenAPI spec, the docs
and the dashboard's files are guarded by the same rule as the API. Who checks a token is an
`Authenticator`: the server's own token (`StaticToken`) unless the home gives another, such as
the controller's TokenReview.
"""

from __future__ import annotations

import hmac
import ipaddress
from typing import Final, Protocol

from starlette.types import ASGIApp, Receive, Scope, Send

from tensorfusion.server.errors import error_response
from tensorfusion.server.settings import ServerSettings

READ_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS"})
SIMULATE_PATH: Final = "/api/simulate-schedule"
"""A POST that changes nothing: a read as far as access goes."""
CHALLENGE: Final = {"WWW-Authenticate": "Bearer"}
PROBE_PATHS: Final = frozenset({"/healthz", "/readyz"})
"""Open to every client: kubelet probes carry no token, and they reveal only up or not."""


def needs_token(method: str, path: str) -> bool:
    """Whether a request changes state, and so needs the token from every client."""
    return method not in READ_METHODS and not (method == "POST" and path == SIMULATE_PATH)


def is_loopback(host: str | None) -> bool:
    """127.0.0.0/8 and ::1 (also as an IPv4-mapped address); anything that is not an IP
    address (a test client's made-up name, a Unix socket) is not loopback."""
    if host is None:
        return False
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


def bearer_token(authorization: bytes | None) -> bytes | None:
    """The credentials of an `Authorization: Bearer <token>` header (scheme case-insensitive)."""
    if authorization is None:
        return None
    scheme, _, credentials = authorization.strip().partition(b" ")
    if scheme.lower() != b"bearer":
        return None
    return credentials.strip() or None


def same_token(given: bytes, token: str) -> bool:
    # compare_digest: the time taken must not tell how much of a guess was right.
    return hmac.compare_digest(given, token.encode())


def token_matches(authorization: bytes | None, token: str) -> bool:
    given = bearer_token(authorization)
    return given is not None and same_token(given, token)


class Authenticator(Protocol):
    rejection: str
    """What a client whose token is refused is told."""

    async def accepts(self, token: bytes) -> bool:
        """Whether `token` (a bearer token's credentials) may make any request."""
        ...


class StaticToken:
    """The one token the server generated."""

    rejection = "the bearer token is wrong; use the one the server generated"

    def __init__(self, token: str) -> None:
        self.token = token

    async def accepts(self, token: bytes) -> bool:
        return same_token(token, self.token)


class AuthMiddleware:
    def __init__(
        self, app: ASGIApp, settings: ServerSettings, authenticator: Authenticator | None = None
    ) -> None:
        self.app = app
        self.settings = settings
        self.authenticator = authenticator or StaticToken(settings.token)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        problem = await self._problem(scope)
        if problem is None:
            await self.app(scope, receive, send)
            return
        response = error_response(401, problem, headers=CHALLENGE)
        await response(scope, receive, send)

    async def _problem(self, scope: Scope) -> str | None:
        """Why the request is refused, or None when it may go on. An open request is let
        through before its token is looked at, so that it costs the authenticator nothing."""
        if scope["method"] in READ_METHODS and scope["path"] in PROBE_PATHS:
            return None
        client = scope.get("client")
        host = client[0] if client else None
        if not needs_token(scope["method"], scope["path"]) and (
            self.settings.public_reads or is_loopback(host)
        ):
            return None
        authorization = next(
            (value for name, value in scope["headers"] if name == b"authorization"), None
        )
        given = bearer_token(authorization)
        if given is not None and await self.authenticator.accepts(given):
            return None
        if authorization is not None:
            return self.authenticator.rejection
        if needs_token(scope["method"], scope["path"]):
            return "this request changes state: send 'Authorization: Bearer <token>'"
        return f"reads from {host} need 'Authorization: Bearer <token>' (only loopback is open)"
