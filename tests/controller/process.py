"""`tensor-fusion controller` as a process of its own, as the chart runs it: its stderr read
line by line (so that the pipe never fills), and what it announces there (its listeners and
its holder identity) parsed out."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass
from types import TracebackType
from typing import Self

from tests.controller.cluster import wait_for

STOP_TIMEOUT_S = 60.0
_PROBES = re.compile(r"health probes on (http://\S+?)/healthz")
_API = re.compile(r"management API on (http://\S+) \(holder (\S+)\)")


@dataclass(frozen=True)
class Announced:
    probes: str
    """The probes' base URL (`/healthz`, `/readyz`)."""
    api: str
    """The management API's base URL."""
    holder: str
    """This replica's holder identity in the leader-election Lease."""


class ControllerProcess:
    """`with ControllerProcess(*flags) as controller:` runs `tensor-fusion controller` with
    `flags` until the end, then stops it with SIGTERM (and SIGKILL if that does not end it)."""

    def __init__(self, *flags: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tensorfusion.cli", "controller", *flags],
            stderr=subprocess.PIPE,
            text=True,
        )
        self._lines: list[str] = []
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, name="controller-stderr", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        stderr = self.process.stderr
        assert stderr is not None
        for line in stderr:
            with self._lock:
                self._lines.append(line)

    @property
    def lines(self) -> list[str]:
        """What it has written to stderr so far, line by line."""
        with self._lock:
            return list(self._lines)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def announced(self) -> Announced | None:
        """Its listeners and holder, once it has announced both listeners."""
        text = self.output
        probes, api = _PROBES.search(text), _API.search(text)
        if probes is None or api is None:
            return None
        return Announced(probes.group(1), api.group(1), api.group(2))

    def wait_announced(self) -> Announced:
        def announced() -> Announced | None:
            if self.process.poll() is not None:
                raise AssertionError(f"the controller exited early:\n{self.output}")
            return self.announced()

        return wait_for("the controller's listeners", announced)

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> int:
        """Send `sig` (unless it has exited) and return its exit status once its output is
        read to the end."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            code = self.process.wait(timeout=STOP_TIMEOUT_S)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()
            self._reader.join()
        return code

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
