"""Peak TFLOPS of GPU models the built-in model table lacks, as a cluster declares them: the
NVIDIA ProviderConfig's `spec.hardwareMetadata[]` (`model`, `fullModelName`, `fp16TFlops`).

NVML names a device by its full product name ("NVIDIA H20"), so a device matches an entry by
either name, in any letter case. An entry that cannot be read is skipped with a warning: one
bad entry must not hide the others.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final

from tensorfusion.api.gpu_links import text_at
from tensorfusion.api.quantity import Quantity
from tensorfusion.errors import QuantityError

log = logging.getLogger(__name__)

VENDOR: Final = "nvidia"


def declared_tflops(
    provider_configs: Iterable[Mapping[str, Any]],
) -> Callable[[str], int | None]:
    """A lookup from NVML's device name to the milli-TFLOPS the NVIDIA ProviderConfigs
    declare for it (None when none does)."""
    peaks: dict[str, int] = {}
    for config in provider_configs:
        spec = config.get("spec")
        if not isinstance(spec, Mapping) or str(spec.get("vendor", "")).lower() != VENDOR:
            continue
        name = text_at(config, "metadata", "name")
        entries = spec.get("hardwareMetadata")
        for index, entry in enumerate(entries if isinstance(entries, list) else []):
            where = f"ProviderConfig/{name}: spec.hardwareMetadata[{index}]"
            milli = _milli_tflops(entry, where)
            if milli is None:
                continue
            for key in ("model", "fullModelName"):
                model = text_at(entry, key)
                if model:
                    peaks.setdefault(model.strip().lower(), milli)
    return lambda device_name: peaks.get(device_name.strip().lower())


def _milli_tflops(entry: object, where: str) -> int | None:
    value = entry.get("fp16TFlops") if isinstance(entry, Mapping) else None
    if value is None:
        log.warning("%s: no fp16TFlops; ignored", where)
        return None
    try:
        milli = Quantity.parse(str(value)).milli_value()
    except QuantityError as exc:
        log.warning("%s.fp16TFlops: %s; ignored", where, exc)
        return None
    if milli <= 0:
        log.warning("%s.fp16TFlops: must be > 0, got %s; ignored", where, value)
        return None
    return milli
