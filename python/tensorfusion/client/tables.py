"""Plain-text tables of the management API's listings, for `tensor-fusion status`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

GIB = 1 << 30


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Columns left-aligned to their widest cell, two spaces apart."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    lines = [headers, *rows]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in lines
    )


def _tflops(value: Any) -> str:
    return "-" if value is None else f"{value:g}"


def _gib(value: Any) -> str:
    return "-" if value is None else f"{value / GIB:.1f}Gi"


def _used(row: dict[str, Any], unit: str, fmt: Callable[[Any], str]) -> str:
    """`allocated / physical (virtual)` for one unit."""
    return (
        f"{fmt(row['allocated'][unit])}/{fmt(row['capacity'][unit])} "
        f"({fmt(row['virtualCapacity'][unit])})"
    )


def pools_table(pools: list[dict[str, Any]]) -> str:
    headers = (
        "POOL",
        "NODES",
        "GPUS",
        "WORKERS",
        "TFLOPS ALLOC/PHYS (VIRT)",
        "VRAM ALLOC/PHYS (VIRT)",
    )
    rows = [
        (
            p["name"] + (" *" if p.get("default") else ""),
            str(p["nodes"]),
            str(p["gpus"]),
            str(p["workers"]),
            _used(p, "tflops", _tflops),
            _used(p, "vram", _gib),
        )
        for p in pools
    ]
    return table(headers, rows)


def gpus_table(gpus: list[dict[str, Any]]) -> str:
    headers = (
        "GPU",
        "NODE",
        "MODEL",
        "POOL",
        "TFLOPS ALLOC/PHYS (VIRT)",
        "VRAM ALLOC/PHYS (VIRT)",
        "WORKERS",
    )
    rows = [
        (
            g["name"],
            g["node"],
            g.get("model") or "-",
            g.get("pool") or "-",
            _used(g, "tflops", _tflops),
            _used(g, "vram", _gib),
            str(len(g["workers"])),
        )
        for g in gpus
    ]
    return table(headers, rows)


def workers_table(workers: list[dict[str, Any]]) -> str:
    headers = (
        "WORKER",
        "PHASE",
        "NODE",
        "GPUS",
        "TFLOPS REQ/LIM",
        "VRAM REQ/LIM",
        "VRAM USED",
        "PIDS",
        "COMMAND",
    )
    rows = []
    for w in workers:
        usage = w.get("usage") or {}
        rows.append(
            (
                w["name"],
                w["phase"],
                w.get("node") or "-",
                ",".join(w["gpus"]) or "-",
                f"{_tflops(w['request']['tflops'])}/{_tflops(w['limit']['tflops'])}",
                f"{_gib(w['request']['vram'])}/{_gib(w['limit']['vram'])}",
                _gib(usage.get("vram")) if usage else "-",
                ",".join(str(p) for p in w["pids"]) or "-",
                " ".join(w["command"])[:40] or "-",
            )
        )
    return table(headers, rows)
