"""The one exception hierarchy of tensor-fusion.

Every error a user can cause names the thing at fault (a field path, an annotation key, an
environment variable) so that the message alone is enough to fix it.
"""

from __future__ import annotations


class TensorFusionError(Exception):
    """Base of every error raised on purpose by tensor-fusion."""


class ConfigError(TensorFusionError, ValueError):
    """A setting (environment variable, flag, config file entry) has an invalid value."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class QuantityError(TensorFusionError, ValueError):
    """A string is not a valid Kubernetes quantity (or is out of the accepted range)."""


class AnnotationError(TensorFusionError, ValueError):
    """A pod's TensorFusion label or annotation is invalid; `key` is the full annotation key."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}")
        self.key = key
        self.message = message
