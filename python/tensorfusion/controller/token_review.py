"""Bearer tokens checked by the API server: a TokenReview (authentication.k8s.io/v1) per
token, as kube-rbac-proxy and the webhook authenticators do, so that any service account's or
user's token the cluster accepts may write. Answers are kept for a short while, so that a
client's requests in a row cost one review."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Final

import anyio.to_thread

from tensorfusion.store.kube_http import KubeApi

log = logging.getLogger(__name__)

REVIEWS_PATH: Final = "/apis/authentication.k8s.io/v1/tokenreviews"
CACHE_TTL_S: Final = 10.0
CACHE_SIZE: Final = 1024


class TokenReviewAuthenticator:
    """`server.auth.Authenticator` over TokenReview. A review that fails (the API server
    unreachable, refusing) accepts nothing and is not kept."""

    rejection = "the bearer token was not accepted by the cluster (TokenReview)"

    def __init__(
        self,
        api: KubeApi,
        *,
        ttl_s: float = CACHE_TTL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.api = api
        self.ttl_s = ttl_s
        self.clock = clock
        self._answers: OrderedDict[bytes, tuple[float, bool]] = OrderedDict()
        self._lock = threading.Lock()

    async def accepts(self, token: bytes) -> bool:
        # The review blocks on the network: off the server's event loop.
        return await anyio.to_thread.run_sync(self.review, token)

    def review(self, token: bytes) -> bool:
        now = self.clock()
        with self._lock:
            kept = self._answers.get(token)
            if kept is not None and kept[0] > now:
                return kept[1]
        try:
            text = token.decode("ascii")
        except UnicodeDecodeError:
            return False
        body = {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenReview",
            "spec": {"token": text},
        }
        try:
            answer = self.api.request(
                "POST", REVIEWS_PATH, "TokenReview", body=json.dumps(body).encode()
            )
        except Exception as exc:
            log.warning("TokenReview failed, the request is refused: %s", exc)
            return False
        accepted = (answer.get("status") or {}).get("authenticated") is True
        with self._lock:
            self._answers[token] = (now + self.ttl_s, accepted)
            self._answers.move_to_end(token)
            while len(self._answers) > CACHE_SIZE:
                self._answers.popitem(last=False)
        return accepted
