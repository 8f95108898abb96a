"""The converted pod's init container: `python3 -m tensorfusion.webhook.worker_setup`.

It runs from the project's image, before the workload's containers: it copies the shim into
the volume they preload it from, then waits until the node agent has made the pod's shared
regions (the agent makes them once the pod is bound to the node). A container that started
before its regions exist would hold each process to the limit alone instead of sharing it
with the pod's other processes, so the pod waits; after `--timeout` seconds the init
container fails saying why, and the kubelet retries it."""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from tensorfusion.shim import shim_path

EXIT_OK, EXIT_FAILED = 0, 1
POLL_S = 0.1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python3 -m tensorfusion.webhook.worker_setup",
        description="copy the shim for a TensorFusion worker and wait for its regions",
    )
    parser.add_argument("--copy-shim-to", type=Path, required=True, metavar="PATH")
    parser.add_argument("--wait-for", type=Path, action="append", default=[], metavar="PATH")
    parser.add_argument("--timeout", type=float, default=120.0, metavar="SECONDS")
    return parser


def missing_after(paths: Sequence[Path], timeout_s: float) -> list[Path]:
    """The paths that still do not exist once `timeout_s` has passed (none: all appeared)."""
    deadline = time.monotonic() + timeout_s
    while True:
        missing = [path for path in paths if not path.exists()]
        if not missing or time.monotonic() >= deadline:
            return missing
        time.sleep(POLL_S)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        shutil.copy(shim_path(), args.copy_shim_to)
    except Exception as exc:  # reported as the init container's failure, whatever it is
        print(f"worker setup: cannot copy the shim: {exc}", file=sys.stderr)
        return EXIT_FAILED
    missing = missing_after(args.wait_for, args.timeout)
    if missing:
        names = ", ".join(str(path) for path in missing)
        print(
            f"worker setup: the node agent has not made {names} within {args.timeout:g} s; "
            "is the tensor-fusion agent running on this node?",
            file=sys.stderr,
        )
        return EXIT_FAILED
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
