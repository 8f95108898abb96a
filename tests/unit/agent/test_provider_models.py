"""Peak TFLOPS of models the built-in table lacks, from the NVIDIA ProviderConfig's
`spec.hardwareMetadata[]`, matched by NVML's device name; bad entries are skipped by name."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from tensorfusion.agent.provider_models import declared_tflops


def provider(name: str, vendor: str, *entries: Any) -> dict[str, Any]:
    return {
        "apiVersion": "tensor-fusion.ai/v1",
        "kind": "ProviderConfig",
        "metadata": {"name": name},
        "spec": {"vendor": vendor, "hardwareMetadata": list(entries)},
    }


H20 = {"model": "H20", "fullModelName": "NVIDIA H20", "fp16TFlops": "148"}


def test_a_device_matches_by_model_or_full_name_in_any_case() -> None:
    lookup = declared_tflops([provider("nvidia", "NVIDIA", H20)])
    assert lookup("NVIDIA H20") == 148_000
    assert lookup(" nvidia h20 ") == 148_000
    assert lookup("H20") == 148_000
    assert lookup("NVIDIA H30") is None


def test_other_vendors_and_configs_without_spec_declare_nothing() -> None:
    lookup = declared_tflops([provider("amd", "AMD", H20), {"metadata": {"name": "empty"}}])
    assert lookup("NVIDIA H20") is None


def test_fractional_peaks_are_kept_in_milli_tflops() -> None:
    entry = {"model": "X1", "fullModelName": "NVIDIA X1", "fp16TFlops": "1.5"}
    assert declared_tflops([provider("nvidia", "nvidia", entry)])("NVIDIA X1") == 1500


@pytest.mark.parametrize(
    ("fp16", "problem"),
    [(None, "no fp16TFlops"), ("lots", "fp16TFlops"), ("0", "must be > 0")],
)
def test_a_bad_entry_is_skipped_by_name_and_the_others_kept(
    fp16: object, problem: str, caplog: pytest.LogCaptureFixture
) -> None:
    bad: dict[str, Any] = {"model": "Bad", "fullModelName": "NVIDIA Bad"}
    if fp16 is not None:
        bad["fp16TFlops"] = fp16
    with caplog.at_level(logging.WARNING):
        lookup = declared_tflops([provider("nvidia", "nvidia", bad, H20)])
    assert lookup("NVIDIA Bad") is None
    assert lookup("NVIDIA H20") == 148_000
    assert "ProviderConfig/nvidia: spec.hardwareMetadata[0]" in caplog.text
    assert problem in caplog.text
