"""The CRDs as the objects their files hold: generating and parsing them takes about a second,
which tests that start a fresh API server for each case would otherwise pay every time."""

from __future__ import annotations

import copy
import functools
from typing import Any

import yaml

from tensorfusion.api.crd import crd_files


@functools.cache
def _parsed() -> tuple[dict[str, Any], ...]:
    return tuple(yaml.safe_load(text) for text in crd_files().values())


def crd_bodies() -> list[Any]:
    """Every CRD, parsed from its file's text as `yaml.safe_load` gives it (the Kubernetes
    client takes a plain object where its stubs name a model); a copy the caller may change."""
    return copy.deepcopy(list(_parsed()))
