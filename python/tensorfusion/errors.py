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


class FleetError(TensorFusionError, ValueError):
    """A cluster snapshot (fleet file) is inconsistent; `obj` names the object
    (`GPU/node-3-gpu-0`) and `field` the field at fault."""

    def __init__(self, obj: str, field: str, message: str) -> None:
        super().__init__(f"{obj}: {field}: {message}" if field else f"{obj}: {message}")
        self.obj = obj
        self.field = field
        self.message = message


class CloudError(TensorFusionError):
    """A cloud vendor's API refused a call; `kind` says whether waiting mends it (throttled,
    capacity, other) or a person must (credentials, invalid); `code` is the vendor's code."""

    def __init__(self, kind: str, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.kind = kind
        self.code = code

    @property
    def retryable(self) -> bool:
        return self.kind in ("throttled", "capacity", "other")


class StoreError(TensorFusionError):
    """The cluster store refused an operation."""


class NotFoundError(StoreError, KeyError):
    """The object does not exist."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "not found"


class NotServedError(StoreError):
    """The API server does not serve a kind at all (its CRD is not installed)."""


class AlreadyExistsError(StoreError):
    """An object of that kind, namespace and name already exists."""


class ConflictError(StoreError):
    """The object changed since it was read (resourceVersion mismatch) or is already bound."""


class AllocationError(TensorFusionError, ValueError):
    """A reservation would break the capacity rule, names an unknown GPU, or contradicts the
    pod's existing allocation."""


class ResourceExpiredError(StoreError):
    """A watch asked for changes older than the store keeps (Kubernetes' 410 Gone): list
    again and watch from the version the list returns."""


class SinkUnavailable(TensorFusionError):
    """The metrics backend cannot be reached (or refused the write for a transient reason);
    the caller keeps the batch and retries later."""


class QueryError(TensorFusionError):
    """The metrics backend rejected a SQL query; the message is the backend's own."""


class UnschedulableError(TensorFusionError):
    """No node can take the workload now; `report` is the simulate report with the diagnosis."""

    def __init__(self, message: str, report: dict[str, object]) -> None:
        super().__init__(message)
        self.report = report


class UnavailableError(TensorFusionError):
    """The control plane cannot serve the request now (not ready, not the leader, shutting
    down); retrying later may succeed."""
