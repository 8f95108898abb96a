"""Build facts compiled into the installed extension module."""

from __future__ import annotations

import re
from pathlib import Path

import tensorfusion
from tensorfusion import _native

STRING_KEYS = {"version", "compiler_id", "compiler_version", "cxx_standard", "build_type"}


def test_keys_and_types() -> None:
    info = _native.build_info()
    assert set(info) == {*STRING_KEYS, "werror"}
    for key in STRING_KEYS:
        value = info[key]
        assert isinstance(value, str), key
        assert value, key
        assert value != "unknown", key
    assert isinstance(info["werror"], bool)


def test_version_is_the_package_version() -> None:
    assert _native.build_info()["version"] == tensorfusion.__version__


def test_compiler() -> None:
    info = _native.build_info()
    assert info["compiler_id"] in {"GNU", "Clang", "AppleClang", "IntelLLVM", "MSVC"}
    assert re.match(r"\d+\.\d+", str(info["compiler_version"]))


def test_cxx_standard_is_at_least_17() -> None:
    assert int(str(_native.build_info()["cxx_standard"])) >= 17


def test_no_timestamps() -> None:
    # Reproducible builds: nothing like __DATE__/__TIME__ or an ISO date may leak in.
    date_or_time = re.compile(r"\d{4}-\d{2}-\d{2}|\d{2}:\d{2}:\d{2}|[A-Z][a-z]{2} [ \d]\d \d{4}")
    for key, value in _native.build_info().items():
        assert not date_or_time.search(str(value)), key


def test_extension_is_installed_inside_the_package() -> None:
    module_path = Path(_native.__file__)
    assert module_path.parent == Path(tensorfusion.__file__).parent
    assert module_path.name.startswith("_native")
