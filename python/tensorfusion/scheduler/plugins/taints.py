"""Node taints and pod tolerations, matched as Kubernetes matches them."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal, get_args

from tensorfusion.scheduler.plugins.spec_reader import SpecReader

TaintEffect = Literal["NoSchedule", "PreferNoSchedule", "NoExecute"]
TAINT_EFFECTS: tuple[TaintEffect, ...] = get_args(TaintEffect)
HARD_EFFECTS: frozenset[str] = frozenset({"NoSchedule", "NoExecute"})
"""Effects that keep a pod off a node (PreferNoSchedule only lowers the score)."""
UNSCHEDULABLE_TAINT_KEY = "node.kubernetes.io/unschedulable"

TolerationOperator = Literal["Equal", "Exists"]


@dataclass(frozen=True, slots=True)
class NodeTaint:
    key: str
    value: str
    effect: TaintEffect

    def __str__(self) -> str:
        # The `{key: value}` form kube-scheduler puts in its reasons.
        return f"{{{self.key}: {self.value}}}"


@dataclass(frozen=True, slots=True)
class Toleration:
    key: str = ""
    """Empty with operator Exists: tolerates every taint."""
    operator: TolerationOperator = "Equal"
    value: str = ""
    effect: str = ""
    """Empty: matches every effect."""

    def tolerates(self, taint: NodeTaint) -> bool:
        if self.effect and self.effect != taint.effect:
            return False
        if self.key and self.key != taint.key:
            return False
        return self.operator == "Exists" or self.value == taint.value


def tolerated(tolerations: Iterable[Toleration], taint: NodeTaint) -> bool:
    return any(toleration.tolerates(taint) for toleration in tolerations)


def read_tolerations(reader: SpecReader, value: object, path: str) -> tuple[Toleration, ...]:
    """Tolerations the API server would accept; the others are reported and dropped (kube's
    matcher never lets an unknown operator tolerate anything)."""
    tolerations = []
    for index, item in enumerate(reader.items(value, path)):
        at = f"{path}[{index}]"
        problems = len(reader.problems)
        entry = reader.mapping(item, at)
        key = reader.text(entry.get("key"), f"{at}.key")
        operator = reader.text(entry.get("operator"), f"{at}.operator") or "Equal"
        value_text = reader.text(entry.get("value"), f"{at}.value")
        effect = reader.text(entry.get("effect"), f"{at}.effect")
        if operator not in ("Equal", "Exists"):
            reader.fail(f"{at}.operator", f'must be "Equal" or "Exists", got {operator!r}')
        elif operator == "Exists" and value_text:
            reader.fail(f"{at}.value", "must be empty when operator is Exists")
        elif operator == "Equal" and not key:
            reader.fail(f"{at}.operator", "must be Exists when the key is empty")
        if effect and effect not in TAINT_EFFECTS:
            reader.fail(
                f"{at}.effect", f"must be one of {', '.join(TAINT_EFFECTS)}, got {effect!r}"
            )
        if len(reader.problems) == problems:
            checked: TolerationOperator = "Exists" if operator == "Exists" else "Equal"
            tolerations.append(Toleration(key, checked, value_text, effect))
    return tuple(tolerations)
