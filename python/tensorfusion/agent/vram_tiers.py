"""How much of a worker's VRAM limit may live outside the GPU: the shim pages the worker's
memory beyond its device share out to pinned host memory and to a file on local disk.

The scheduler packs limits on a GPU against its virtual capacity, VRAM x (1 + h + d) with the
pool's vramExpandToHostMem = h% and vramExpandToHostDisk = d% (`scheduler.capacity`), so each
worker gets the same proportional share of each tier: of a limit L, L x 100/(100+h+d) on the
device, L x h/(100+h+d) in host memory and the rest on disk.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from tensorfusion.api.gpu_links import text_at
from tensorfusion.api.pool import Oversubscription

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Expansion:
    """A pool's vramExpandToHostMem and vramExpandToHostDisk, in percent of the VRAM."""

    host_percent: int = 0
    disk_percent: int = 0


NO_EXPANSION = Expansion()


@dataclass(frozen=True)
class TierBudget:
    """Bytes of one VRAM limit per tier; `host` and `disk` are the region's host_limit and
    disk_limit (both 0: the shim does not page)."""

    device: int
    host: int
    disk: int


def pool_expansion(pool: Mapping[str, Any] | None) -> Expansion:
    """The pool's expansion as the scheduler reads it (fields it leaves out take the API's
    defaults); none for no pool, or for settings the scheduler would refuse too."""
    if pool is None:
        return NO_EXPANSION
    raw: Any = pool
    for key in ("spec", "capacityConfig", "oversubscription"):
        raw = raw.get(key) if isinstance(raw, Mapping) else None
    try:
        read = Oversubscription.model_validate(raw or {})
    except ValidationError as exc:
        log.warning(
            "GPUPool %s: VRAM is not paged out, its oversubscription is invalid: %s",
            text_at(pool, "metadata", "name"),
            exc.errors()[0]["msg"],
        )
        return NO_EXPANSION
    return Expansion(read.vram_expand_to_host_mem, read.vram_expand_to_host_disk)


def tier_budget(vram_limit: int, expansion: Expansion) -> TierBudget:
    """`vram_limit` split by `expansion` (integer floors; the remainder goes to disk when the
    pool expands to disk, else to the device)."""
    host_percent, disk_percent = expansion.host_percent, expansion.disk_percent
    if host_percent == disk_percent == 0:
        return TierBudget(vram_limit, 0, 0)
    whole = 100 + host_percent + disk_percent
    host = vram_limit * host_percent // whole
    if disk_percent == 0:
        return TierBudget(vram_limit - host, host, 0)
    device = vram_limit * 100 // whole
    return TierBudget(device, host, vram_limit - device - host)
