"""Local processes of a worker, told apart from later processes that reuse their pid.

A pid alone is not an identity: once a process exits, the kernel may hand its number to an
unrelated one. The start time the kernel records (field 22 of /proc/<pid>/stat, clock ticks
since boot) is fixed for a process's life, so `pid@start` names one process for good. The
shared regions use the same token for their members (cpp/shm/process_identity.cpp).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple

from tensorfusion.api.annotations import WORKER_PIDS
from tensorfusion.api.names import is_decimal
from tensorfusion.errors import AnnotationError

_START_FIELD = 22
_GONE_STATES = ("Z", "X")
"""Zombie and dead: the process has exited, only its parent has not collected it yet."""


class WorkerProcess(NamedTuple):
    pid: int
    token: int
    """The process's start time in clock ticks since boot."""


def start_token(pid: int) -> int | None:
    """The start time of process `pid`, or None when there is no such running process."""
    if pid <= 0:
        return None
    try:
        text = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8", errors="replace")
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name (field 2) is parenthesised and may itself hold spaces and ')'.
    fields = text[text.rfind(")") + 2 :].split()
    # `fields` starts at field 3, the state.
    position = _START_FIELD - 3
    if len(fields) <= position or fields[0] in _GONE_STATES or not is_decimal(fields[position]):
        return None
    return int(fields[position])


def is_alive(pid: int, token: int) -> bool:
    """Whether the process `pid` that started at `token` still runs."""
    return start_token(pid) == token


def format_pids(processes: Iterable[tuple[int, int]]) -> str:
    """The WORKER_PIDS annotation value for (pid, start token) pairs: `pid@start` items,
    comma-separated."""
    return ",".join(f"{pid}@{token}" for pid, token in processes)


def parse_pids(value: str) -> list[WorkerProcess]:
    """Reads a WORKER_PIDS annotation value (empty: no process recorded); AnnotationError
    naming the key if malformed."""
    if not value.strip():
        return []
    processes = []
    for item in value.split(","):
        pid, at, token = item.strip().partition("@")
        if not (at and is_decimal(pid) and is_decimal(token)) or int(pid) == 0:
            raise AnnotationError(
                WORKER_PIDS,
                f"each item must be pid@start (a pid >= 1 and its start time), got {item!r}",
            )
        processes.append(WorkerProcess(int(pid), int(token)))
    return processes
