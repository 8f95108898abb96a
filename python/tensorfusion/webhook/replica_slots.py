"""`tensor-fusion.ai/enabled-replicas: N`: exactly N replicas of a controller are converted,
the others are admitted as they are.

The replicas counted together are the pods of one controller (the ownerReference marked
`controller: true`): one ReplicaSet, StatefulSet, Job, ... A Deployment's revisions are
ReplicaSets named by their pod-template hash, so each revision counts its own N, as it has its
own replicas: once a rollout ends, exactly N pods of the new revision are converted (while it
runs, the old revision's converted pods run beside them, as its other replicas do). The hash
is therefore not added to the count's name; a StatefulSet, whose revisions share pods' names,
counts across them, and a pod it replaces frees its slot. A pod without a controller is a
count of its own: N >= 1 converts it, 0 does not.

A controller's count is a ConfigMap in the pod's namespace, owned by the controller so that it
is removed with it: one entry per converted pod, a token with the time the pod was admitted.
The pod carries its token in the `replica-slot` label. A slot is taken only by a conditional
update of that one object (its resourceVersion), so admissions racing for the last slot cannot
both win, however many webhook replicas serve them.

A slot is held while it is younger than GRACE_S (its pod may still be on its way to storage)
or while its pod is stored, not being deleted and not finished. An admission that finds the
count full drops, in the update that takes its own slot, the slots no longer held: those of
pods deleted or finished, and those of pods never stored because their create failed after
admission. Nothing sweeps the count in between, so a slot is free for the first admission
that finds the count full once its pod is gone (or never came) and it is GRACE_S old.

A dry-run admission decides the same way and writes nothing."""

from __future__ import annotations

import functools
import hashlib
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from tensorfusion.api.annotations import ENABLED_LABEL, ENABLED_REPLICAS, REPLICA_SLOT_LABEL
from tensorfusion.api.gpu_links import text_at
from tensorfusion.api.names import dns_subdomain_problem
from tensorfusion.errors import (
    AlreadyExistsError,
    ConflictError,
    NotFoundError,
    StoreError,
    UnavailableError,
)
from tensorfusion.scheduler.allocator import TERMINAL_PHASES
from tensorfusion.store.interface import ClusterStore
from tensorfusion.store.objects import JsonObject

GRACE_S: Final = 90.0
"""How old a slot must be before a pod that is not stored frees it. It must exceed the longest
time from admission to storage (kube-apiserver ends a create at its `--request-timeout`, one
minute by default): a younger slot may belong to a pod still on its way, and dropping it would
convert one replica too many. The margin covers the skew between the clocks of the webhook
replicas, since the one that stamps a slot need not be the one that reads it."""
MAX_ATTEMPTS: Final = 32
"""Conditional updates tried before the pod is refused. Each conflict means that another
admission wrote the count (took a slot), so losing this often in a row means the count moves
faster than it can be taken; the pod is refused (500) rather than converted past N, and its
controller creates it again."""
COUNT_PREFIX: Final = "tensor-fusion-replicas-"


@dataclass(frozen=True)
class Owner:
    """A pod's controller, as its ownerReference names it."""

    api_version: str
    kind: str
    name: str
    uid: str

    def reference(self) -> dict[str, str]:
        return {
            "apiVersion": self.api_version,
            "kind": self.kind,
            "name": self.name,
            "uid": self.uid,
        }

    def count_name(self) -> str:
        """The name of the ConfigMap holding this controller's slots: readable where the
        controller's kind and name make a valid one, else a digest of them."""
        readable = f"{COUNT_PREFIX}{self.kind.lower()}-{self.name}"
        if dns_subdomain_problem(readable) is None:
            return readable
        return COUNT_PREFIX + hashlib.sha256(f"{self.kind}/{self.name}".encode()).hexdigest()[:32]


def controller_of(pod: Mapping[str, Any]) -> Owner | None:
    """The pod's controller: its ownerReference marked `controller: true` (kube allows one)."""
    references = (pod.get("metadata") or {}).get("ownerReferences")
    for reference in references if isinstance(references, list) else ():
        if isinstance(reference, Mapping) and reference.get("controller") is True:
            fields = [reference.get(key) for key in ("apiVersion", "kind", "name", "uid")]
            texts = [value for value in fields if isinstance(value, str) and value]
            if len(texts) == len(fields):
                return Owner(*texts)
    return None


def _stamp(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="milliseconds")


def _seconds(stamp: str) -> float:
    """A slot's admission time; one that cannot be read counts as long past."""
    try:
        return datetime.fromisoformat(stamp).timestamp()
    except ValueError:
        return 0.0


def _holds_its_slot(pod: Mapping[str, Any]) -> bool:
    """A stored pod keeps its slot until it is being deleted (its controller has replaced it
    already) or has finished."""
    if text_at(pod, "metadata", "deletionTimestamp"):
        return False
    return text_at(pod, "status", "phase") not in TERMINAL_PHASES


class ReplicaSlots:
    """The counts of converted replicas, kept in `store`; `clock` gives seconds since the
    epoch, `grace_s` is GRACE_S but in tests."""

    def __init__(
        self,
        store: ClusterStore,
        *,
        grace_s: float = GRACE_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._grace_s = grace_s
        self._clock = clock

    def claim(
        self, pod: Mapping[str, Any], namespace: str, limit: int, *, dry_run: bool
    ) -> dict[str, str] | None:
        """Whether `pod`, whose enabled-replicas is `limit`, is converted: the labels it gets
        then (its slot's token; none for a pod without a controller), None when its
        controller has `limit` converted pods already. UnavailableError when the count cannot
        be read or written; ValueError for a negative `limit`."""
        if limit < 0:
            raise ValueError(f"{ENABLED_REPLICAS}: must be >= 0, got {limit}")
        if limit == 0:
            return None
        owner = controller_of(pod)
        if owner is None:
            return {}
        try:
            token = self._take(owner, namespace, limit, dry_run)
        except StoreError as exc:
            raise UnavailableError(
                f"{ENABLED_REPLICAS}: cannot count the converted replicas of "
                f"{_where(owner, namespace)}: {exc}"
            ) from exc
        return None if token is None else {REPLICA_SLOT_LABEL: token}

    def _take(self, owner: Owner, namespace: str, limit: int, dry_run: bool) -> str | None:
        """A new slot's token, or None when the count is full."""
        name = owner.count_name()
        token = secrets.token_hex(8)
        # Listed once per admission, not per retry: a conflict says another admission took a
        # slot, nothing about the pods; a pod stored after this list holds a young slot.
        stored_tokens = functools.cache(lambda: self._stored_tokens(namespace))
        for _ in range(MAX_ATTEMPTS):
            now = self._clock()
            count = self._count(name, namespace)
            if count is None:
                if dry_run:
                    return token
                try:
                    self._store.create(_count_object(name, namespace, owner, {token: _stamp(now)}))
                except AlreadyExistsError:
                    continue
                return token
            slots = _slots_of(count, owner)
            if len(slots) >= limit:
                slots = self._held(slots, stored_tokens, now)
                if len(slots) >= limit:
                    return None
            if dry_run:
                return token
            slots[token] = _stamp(now)
            # The owner is written again: a count left by an earlier controller of the same
            # name becomes this one's.
            metadata = {**count["metadata"], "ownerReferences": [owner.reference()]}
            try:
                self._store.update({**count, "metadata": metadata, "data": slots})
            except (ConflictError, NotFoundError):
                # Another admission wrote the count, or it was removed: read it again.
                continue
            return token
        raise UnavailableError(
            f"{ENABLED_REPLICAS}: the count of converted replicas of {_where(owner, namespace)} "
            f"changed under {MAX_ATTEMPTS} attempts in a row; the pod is refused rather than "
            "converted past the count: create it again"
        )

    def _count(self, name: str, namespace: str) -> JsonObject | None:
        try:
            return self._store.get("ConfigMap", name, namespace)
        except NotFoundError:
            return None

    def _held(
        self, slots: dict[str, str], stored_tokens: Callable[[], set[str | None]], now: float
    ) -> dict[str, str]:
        """The slots still held (see the module's docstring)."""
        young = {token for token, stamp in slots.items() if now - _seconds(stamp) < self._grace_s}
        if len(young) == len(slots):
            return slots
        held = young | stored_tokens()
        return {token: stamp for token, stamp in slots.items() if token in held}

    def _stored_tokens(self, namespace: str) -> set[str | None]:
        """The slot tokens of the stored pods that hold theirs. Only enabled pods are
        converted, so they hold every token."""
        return {
            (pod["metadata"].get("labels") or {}).get(REPLICA_SLOT_LABEL)
            for pod in self._store.list("Pod", namespace, {ENABLED_LABEL: "true"})
            if _holds_its_slot(pod)
        }


def _where(owner: Owner, namespace: str) -> str:
    return f"{owner.kind} {namespace}/{owner.name} (ConfigMap {owner.count_name()})"


def _slots_of(count: Mapping[str, Any], owner: Owner) -> dict[str, str]:
    """The count's slots; none when it belongs to an earlier controller of the same name,
    which the garbage collector has not removed yet (or has orphaned)."""
    references = count["metadata"].get("ownerReferences") or []
    if not any(isinstance(ref, Mapping) and ref.get("uid") == owner.uid for ref in references):
        return {}
    data = count.get("data") or {}
    return {token: stamp for token, stamp in data.items() if isinstance(stamp, str)}


def _count_object(
    name: str, namespace: str, owner: Owner, slots: Mapping[str, str]
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace, "ownerReferences": [owner.reference()]},
        "data": dict(slots),
    }
