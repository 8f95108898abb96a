"""The GPU model table: published figures, and lookup by any of a model's names."""

from __future__ import annotations

import pytest

from tensorfusion.api.quantity import Quantity
from tensorfusion.errors import ConfigError
from tensorfusion.scheduler.gpu_models import GIB, MODELS, lookup_model


@pytest.mark.parametrize(
    ("name", "tflops", "vram_gib", "nvlink"),
    [
        ("A100-40", "312", 40, True),
        ("A100-80", "312", 80, True),
        ("H100", "989", 80, True),
        ("H200", "989", 141, True),
        ("L4", "121", 24, False),
        ("L40S", "362", 48, False),
        ("RTX4090", "165", 24, False),
        ("T4", "65", 16, False),
        ("H100-PCIe", "756", 80, False),
    ],
)
def test_published_dense_figures(name: str, tflops: str, vram_gib: int, nvlink: bool) -> None:
    model = lookup_model(name)
    assert model.name == name
    assert model.tflops == Quantity.parse(tflops)
    assert model.vram_bytes == vram_gib * GIB
    assert model.nvlink is nvlink
    assert model.form_factor == ("SXM" if nvlink else "PCIe")


@pytest.mark.parametrize(
    ("written", "name"),
    [
        ("h100", "H100"),
        ("H100-SXM", "H100"),
        ("NVIDIA H100 80GB HBM3", "H100"),
        ("nvidia h100 80gb hbm3", "H100"),
        ("  H200  ", "H200"),
        ("NVIDIA A100-SXM4-40GB", "A100-40"),
        ("a100-80gb", "A100-80"),
        ("RTX 4090", "RTX4090"),
        ("NVIDIA GeForce RTX 4090", "RTX4090"),
        ("Tesla T4", "T4"),
        ("H100 PCIe", "H100-PCIe"),
        ("l40s", "L40S"),
    ],
)
def test_lookup_by_alias_and_product_in_any_case(written: str, name: str) -> None:
    assert lookup_model(written).name == name


@pytest.mark.parametrize("written", ["", "H300", "A100", "NVIDIA", "h100 sxm6", "L4 "[:1]])
def test_unknown_model_lists_the_known_ones(written: str) -> None:
    with pytest.raises(ConfigError) as caught:
        lookup_model(written)
    assert caught.value.field == "model"
    assert repr(written) in caught.value.message
    for model in MODELS:
        assert model.name in caught.value.message


def test_no_name_belongs_to_two_models() -> None:
    names = [name.lower() for model in MODELS for name in model.names]
    assert len(names) == len(set(names))


def test_hosts_are_plausible_eight_gpu_servers() -> None:
    for model in MODELS:
        host = model.host
        assert host.cpu_cores >= 64, model.name
        # Enough RAM to back every GPU's VRAM (frameworks pin host copies of weights).
        assert host.memory_bytes >= 8 * model.vram_bytes, model.name
        assert host.disk_bytes >= 10**12, model.name
        assert host.instance_type, model.name
