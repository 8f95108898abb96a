"""The shim's Python face: where the library is, and the documented environment."""

from __future__ import annotations

import ctypes
import os
from pathlib import Path

import pytest

import tensorfusion
import tensorfusion._native
from tensorfusion import shim as shim_module
from tensorfusion.errors import TensorFusionError


def test_shim_path_is_the_installed_library() -> None:
    path = tensorfusion.shim_path()
    assert path.name == "libtfshim.so"
    assert path.parent == Path(tensorfusion._native.__file__).resolve().parent
    ctypes.CDLL(str(path), mode=os.RTLD_LOCAL)  # loads without a driver present


def test_shim_exports_only_the_hooks() -> None:
    library = ctypes.CDLL(str(tensorfusion.shim_path()))
    for name in ("cuMemAlloc_v2", "cuGetProcAddress_v2", "nvmlDeviceGetMemoryInfo", "dlsym"):
        assert hasattr(library, name)
    # The C++ runtime linked into the shim must not interpose on the workload's.
    for hidden in ("__cxa_throw", "_ZSt9terminatev"):
        with pytest.raises(AttributeError):
            getattr(library, hidden)


def test_missing_library_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shim_module, "SHIM_FILENAME", "libmissing.so")
    with pytest.raises(TensorFusionError, match=r"libmissing\.so: not found at .*pip install"):
        shim_module.shim_path()


def test_documented_environment_is_unique_and_complete() -> None:
    names = [variable.name for variable in shim_module.SHIM_ENV]
    assert len(names) == len(set(names))
    assert all(name.startswith("TF_") for name in names)
    assert {"TF_VRAM_LIMIT", "TF_SHM_PATH", "TF_REAL_LIBCUDA"} <= set(names)
    sources = Path(__file__).resolve().parents[2] / "cpp" / "shim"
    read = {n for path in sources.glob("*.cpp") for n in names if f'"{n}' in path.read_text()}
    assert read == set(names)  # every documented variable is read by the shim
