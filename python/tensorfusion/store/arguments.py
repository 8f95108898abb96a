"""Checks of the plain arguments of store calls (names, times, resource versions, lease
holders), so that every backend refuses the same bad input with the same message."""

from __future__ import annotations

import math
import time

from tensorfusion.api.field_errors import type_name
from tensorfusion.api.names import dns_subdomain_problem
from tensorfusion.errors import ConfigError


def checked_seconds(field: str, value: object, *, allow_zero: bool = False) -> float:
    """A finite, positive number of seconds (or zero when `allow_zero`)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(field, f"must be a number of seconds, got {type_name(value)}")
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ConfigError(field, f"must be a finite number {bound}, got {value}")
    return float(value)


def checked_now(now: object) -> float:
    """The caller's clock reading (seconds since the epoch) or, when None, the wall clock:
    leases are compared across processes, so a monotonic clock would not do."""
    return time.time() if now is None else checked_seconds("now", now, allow_zero=True)


def checked_version(field: str, value: object) -> int:
    """A resource version a caller hands back: a non-negative integer (0 = the beginning)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(field, f"must be a non-negative integer, got {value!r}")
    return value


def checked_object_name(field: str, name: object) -> str:
    """An object name (a DNS subdomain): what objects, lease names and bind targets use."""
    if not isinstance(name, str) or not name:
        raise ConfigError(field, f"must be a non-empty string, got {name!r}")
    if problem := dns_subdomain_problem(name):
        raise ConfigError(field, problem)
    return name


def checked_holder(holder: object) -> str:
    """A lease holder's identity: any non-empty string (hostnames, pod names and UUIDs all
    occur)."""
    if not isinstance(holder, str) or not holder:
        raise ConfigError("holder", f"must be a non-empty string, got {holder!r}")
    return holder


def checked_lease_term(
    name: object, holder: object, duration_s: object, now: object
) -> tuple[str, str, float, float]:
    """The lease name, holder, expiry and clock reading of an acquire or renew call."""
    at = checked_now(now)
    return (
        checked_object_name("name", name),
        checked_holder(holder),
        at + checked_seconds("duration_s", duration_s),
        at,
    )
