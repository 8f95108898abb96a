"""What a management server is configured with (independent of where its state lives)."""

from __future__ import annotations

from dataclasses import dataclass

from tensorfusion.errors import ConfigError

DEFAULT_MAX_BODY_BYTES = 1 << 20


@dataclass(frozen=True)
class ServerSettings:
    """`token` guards every state-changing request (and reads from other hosts unless
    `public_reads`); bodies over `max_body_bytes` are refused with 413."""

    token: str
    public_reads: bool = False
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES

    def __post_init__(self) -> None:
        # An empty token would let an empty bearer header through the comparison.
        if not self.token or self.token.strip() != self.token:
            raise ConfigError("token", "must be a non-empty string without surrounding spaces")
        if self.max_body_bytes < 0:
            raise ConfigError("max_body_bytes", f"must be >= 0, got {self.max_body_bytes}")
