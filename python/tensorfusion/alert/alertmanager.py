"""Delivery of alerts to Alertmanager (`POST <addr>/api/v2/alerts`).

Alerts wait in a bounded queue until Alertmanager accepts them, so an outage delays them
instead of losing them; only when the queue is full are the oldest dropped (and logged).
"""

from __future__ import annotations

import http.client
import json
import logging
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Sequence
from typing import Final
from urllib.parse import urlsplit

from tensorfusion.alert.model import Alert
from tensorfusion.errors import ConfigError

ALERTS_PATH: Final = "/api/v2/alerts"
ADDR_FLAG: Final = "-alert-manager-addr"
DEFAULT_MAX_QUEUED: Final = 10_000
BATCH_SIZE: Final = 500

log = logging.getLogger(__name__)


def alerts_url(addr: str) -> str:
    """The v2 alerts endpoint for an address written as upstream's flag takes it
    (`alertmanager:9093`, or with a scheme and path prefix)."""
    text = addr.strip().rstrip("/")
    if not text:
        raise ConfigError(ADDR_FLAG, "is empty; expected host:port or an http(s) URL")
    if "://" not in text:
        text = f"http://{text}"
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(ADDR_FLAG, f"{addr!r} is not host:port or an http(s) URL")
    try:
        parts.port  # noqa: B018 - validates the port
    except ValueError:
        raise ConfigError(ADDR_FLAG, f"{addr!r} has an invalid port") from None
    return text + ALERTS_PATH


class AlertmanagerClient:
    """Queues alerts and posts them in order; `flush` retries what is still queued."""

    def __init__(
        self, addr: str, timeout_s: float = 5.0, max_queued: int = DEFAULT_MAX_QUEUED
    ) -> None:
        if max_queued < 1:
            raise ConfigError("max_queued", f"must be at least 1, got {max_queued}")
        self.url = alerts_url(addr)
        self.timeout_s = timeout_s
        self.dropped = 0
        self._queue: deque[Alert] = deque(maxlen=max_queued)

    @property
    def queued(self) -> int:
        return len(self._queue)

    def send(self, alerts: Sequence[Alert]) -> bool:
        """Queue `alerts` and try to deliver everything queued; True when the queue is empty."""
        overflow = len(self._queue) + len(alerts) - (self._queue.maxlen or 0)
        if overflow > 0:
            self.dropped += overflow
            log.error("alert queue full: dropping the %d oldest undelivered alerts", overflow)
        self._queue.extend(alerts)
        return self.flush()

    def flush(self) -> bool:
        while self._queue:
            batch = [self._queue[i] for i in range(min(BATCH_SIZE, len(self._queue)))]
            if not self._post(batch):
                return False
            for _ in batch:
                self._queue.popleft()
        return True

    def _post(self, batch: list[Alert]) -> bool:
        """True when the batch is done with: accepted, or refused as malformed (retrying a
        payload Alertmanager rejects would block every alert behind it forever)."""
        body = json.dumps([alert.to_json() for alert in batch]).encode()
        request = urllib.request.Request(
            self.url, data=body, method="POST", headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s):
                return True
        except urllib.error.HTTPError as exc:
            if 400 <= exc.code < 500 and exc.code not in (408, 429):
                detail = exc.read().decode(errors="replace")[:500]
                log.error("Alertmanager rejected %d alerts (%d): %s", len(batch), exc.code, detail)
                self.dropped += len(batch)
                return True
            log.warning("Alertmanager at %s answered %d; will retry", self.url, exc.code)
        except (OSError, ValueError, http.client.HTTPException) as exc:
            log.warning("Alertmanager at %s unreachable (%s); will retry", self.url, exc)
        return False
