"""The state directory of an embedded control plane: the store, the API token, the shared
regions of workers and their spill directories, and where the running server listens. One
`up` at a time holds it (an exclusive file lock, released by the kernel even when the process
is killed -9)."""

from __future__ import annotations

import fcntl
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import platformdirs

from tensorfusion.errors import ConfigError

STATE_DIR_ENV = "TF_STATE_DIR"
STATE_DIR_FLAG = "--state-dir"


def default_state_dir() -> Path:
    """`TF_STATE_DIR`, else the user's data directory (e.g. ~/.local/share/tensor-fusion)."""
    configured = os.environ.get(STATE_DIR_ENV)
    return Path(configured) if configured else Path(platformdirs.user_data_dir("tensor-fusion"))


@dataclass(frozen=True)
class StatePaths:
    root: Path

    @property
    def store(self) -> Path:
        return self.root / "store.db"

    @property
    def token(self) -> Path:
        return self.root / "token"

    @property
    def endpoint(self) -> Path:
        return self.root / "endpoint.json"

    @property
    def lock(self) -> Path:
        return self.root / "up.lock"

    @property
    def regions(self) -> Path:
        return self.root / "shm"

    @property
    def spill(self) -> Path:
        """Workers' VRAM paged out to disk: under the state dir, so on disk, not in RAM."""
        return self.root / "spill"

    def read_endpoint(self) -> str | None:
        """The URL of the control plane running on this state dir, if one said so."""
        try:
            data = json.loads(self.endpoint.read_text())
        except (OSError, ValueError):
            return None
        url = data.get("url") if isinstance(data, dict) else None
        return url if isinstance(url, str) else None

    def read_token(self) -> str | None:
        try:
            return self.token.read_text().strip() or None
        except OSError:
            return None


class StateDir:
    """The state dir held by this process (see `acquire`)."""

    def __init__(self, paths: StatePaths, lock_file: IO[str]) -> None:
        self.paths = paths
        self._lock_file = lock_file

    @classmethod
    def acquire(cls, root: Path) -> StateDir:
        """Create the directory if needed and lock it for this process. ConfigError naming
        `--state-dir` when it cannot be created or written, or when another process holds it
        (with that process's pid)."""
        paths = StatePaths(root)
        try:
            root.mkdir(parents=True, exist_ok=True)
            lock_file = paths.lock.open("a+")
        except OSError as exc:
            raise ConfigError(
                STATE_DIR_FLAG, f"cannot use {root}: {exc.strerror or exc}; give a writable one"
            ) from exc
        try:
            fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock_file.seek(0)
            holder = lock_file.read().strip() or "unknown"
            lock_file.close()
            raise ConfigError(
                STATE_DIR_FLAG,
                f"{root} is in use by another `tensor-fusion up` (pid {holder}); stop it or "
                "give another state dir",
            ) from None
        lock_file.seek(0)
        lock_file.truncate()
        lock_file.write(f"{os.getpid()}\n")
        lock_file.flush()
        # Holding the lock, any endpoint announced is from a process that died unannounced.
        paths.endpoint.unlink(missing_ok=True)
        state = cls(paths, lock_file)
        state._check_writable()
        return state

    def _check_writable(self) -> None:
        probe = self.paths.root / f".write-probe-{os.getpid()}"
        try:
            probe.write_text("")
            probe.unlink()
        except OSError as exc:
            self.release()
            raise ConfigError(
                STATE_DIR_FLAG,
                f"{self.paths.root} is not writable ({exc.strerror or exc}); give a writable one",
            ) from exc

    def token(self) -> str:
        """The API token, generated on first use and kept readable by this user only."""
        existing = self.paths.read_token()
        if existing:
            return existing
        token = secrets.token_urlsafe(32)
        fd = os.open(self.paths.token, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(token + "\n")
        return token

    def publish_endpoint(self, url: str) -> None:
        """Tell clients (`run`, `status`) where the server listens."""
        temporary = self.paths.endpoint.with_suffix(".tmp")
        temporary.write_text(json.dumps({"url": url, "pid": os.getpid()}) + "\n")
        temporary.replace(self.paths.endpoint)

    def release(self) -> None:
        """Withdraw the endpoint and unlock (idempotent)."""
        if self._lock_file.closed:
            return
        self.paths.endpoint.unlink(missing_ok=True)
        self._lock_file.close()
