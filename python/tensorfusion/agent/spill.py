"""Where a worker's VRAM paged out to disk lives: a directory per worker under the node's spill
root on local disk, `<root>/<namespace>/<pod name>` as its regions are named (a converted pod
mounts it with the same `subPathExpr`). The shim creates its file there as
`tf-spill-<pid>-<device>-XXXXXX` and unlinks it at once, so normally nothing stays; a process
killed between the two leaves the name behind, holding disk until someone removes it.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import Final

from tensorfusion.agent.processes import start_token

log = logging.getLogger(__name__)

DEFAULT_SPILL_ROOT: Final = Path("/var/lib/tensor-fusion/spill")
"""The spill root on a node (the agent's `--spill-root`): local disk, never a tmpfs."""
SPILL_DIR_ENV: Final = "TF_VRAM_SPILL_DIR"
"""The shim's variable naming the directory of its disk tier."""
FILE_PREFIX: Final = "tf-spill-"
_MODE: Final = 0o1777
"""Anyone may create a file, only its owner remove it: a workload need not run as the agent's
user."""


def prepare_directory(directory: Path) -> None:
    """The worker's spill directory, made writable for the workload's processes."""
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(_MODE)  # mkdir's mode is cut by the umask


def spill_pid(path: Path) -> int | None:
    """The pid in a spill file's name, None for a name the shim does not make."""
    pid, dash, _ = path.name.removeprefix(FILE_PREFIX).partition("-")
    if not path.name.startswith(FILE_PREFIX) or not dash or not pid.isdecimal():
        return None
    return int(pid)


def is_spill_directory(path: Path) -> bool:
    """A worker's spill directory: nothing in it but spill files (so a misconfigured root
    loses nothing else)."""
    if not path.is_dir() or path.is_symlink():
        return False
    return all(spill_pid(entry) is not None and entry.is_file() for entry in path.iterdir())


def remove_dead_files(root: Path) -> list[Path]:
    """Removes the spill files under `root` whose process is gone; returns them. Only
    meaningful where the agent shares the workers' pid namespace (a reused pid keeps its
    file until the worker's directory goes)."""
    removed = []
    for path in sorted(root.glob(f"*/*/{FILE_PREFIX}*")):
        pid = spill_pid(path)
        if pid is None or not path.is_file() or path.is_symlink() or start_token(pid) is not None:
            continue
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
            removed.append(path)
            log.info("removed %s: its process is gone", path)
    return removed
