"""Reading traces in the format of Alibaba's openb GPU-sharing trace: a directory with one
node list (`openb_node_list*.csv`) and any number of pod lists (`openb_pod_list_NAME.csv`).
Every value is checked; an error names the file, the row and the column at fault."""

from __future__ import annotations

import csv
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from tensorfusion.api.names import dns_label_problem, is_decimal
from tensorfusion.errors import ConfigError, FleetError
from tensorfusion.scheduler.fleet_generator import MAX_GPUS_PER_NODE
from tensorfusion.trace.gpu_specs import GpuSpec, lookup_spec

NODE_LIST_GLOB = "openb_node_list*.csv"
POD_LIST_PREFIX = "openb_pod_list_"
DIR_ENV = "TF_OPENB_DIR"
MILLI = 1000
"""gpu_milli of a whole GPU."""
NODE_COLUMNS = ("sn", "cpu_milli", "memory_mib", "gpu", "model")
POD_COLUMNS = (
    "name",
    "cpu_milli",
    "memory_mib",
    "num_gpu",
    "gpu_milli",
    "gpu_spec",
    "qos",
    "pod_phase",
    "creation_time",
    "deletion_time",
    "scheduled_time",
)
_REQUIRED_POD_COLUMNS = POD_COLUMNS[:6]
"""The rest are read when present (the replay does not use them) but must be well formed."""


@dataclass(frozen=True)
class TraceNode:
    name: str
    cpu_milli: int
    memory_mib: int
    gpus: int
    model: GpuSpec | None
    """None only for a node without GPUs."""


@dataclass(frozen=True)
class TracePod:
    name: str
    cpu_milli: int
    memory_mib: int
    num_gpu: int
    gpu_milli: int
    """Thousandths of each of its GPUs (1000 when it takes more than one)."""
    gpu_spec: tuple[GpuSpec, ...]
    """The models it may run on; empty for any."""

    @property
    def gpu_demand_milli(self) -> int:
        """Thousandths of a GPU it asks for in all."""
        return self.gpu_milli * self.num_gpu


@dataclass(frozen=True)
class Trace:
    nodes: tuple[TraceNode, ...]
    pod_lists: Mapping[str, tuple[TracePod, ...]]
    """By name: `default` for openb_pod_list_default.csv."""

    @property
    def gpu_capacity_milli(self) -> int:
        return sum(node.gpus for node in self.nodes) * MILLI


def trace_dir(path: str | Path | None = None, *, default: Path | None = None) -> Path:
    """`path`, else the directory TF_OPENB_DIR names, else `default`."""
    if path is not None:
        return Path(path)
    value = os.environ.get(DIR_ENV)
    if value:
        return Path(value)
    if default is None:
        raise ConfigError(DIR_ENV, "not set: name the directory of a trace")
    return default


def read_trace(directory: str | Path, pod_lists: tuple[str, ...] | None = None) -> Trace:
    """The trace in `directory`: its nodes, and the pod lists named (all by default)."""
    root = Path(directory)
    if not root.is_dir():
        raise ConfigError("trace", f"{root} is not a directory")
    node_files = sorted(root.glob(NODE_LIST_GLOB))
    if len(node_files) != 1:
        found = ", ".join(path.name for path in node_files) or "none"
        raise ConfigError("trace", f"{root} must hold one {NODE_LIST_GLOB} (found: {found})")
    available = {
        path.stem.removeprefix(POD_LIST_PREFIX): path
        for path in sorted(root.glob(f"{POD_LIST_PREFIX}*.csv"))
    }
    wanted = tuple(available) if pod_lists is None else pod_lists
    for name in wanted:
        if name not in available:
            known = ", ".join(available) or "none"
            raise ConfigError("--pods", f"no pod list {name!r} in {root} (known: {known})")
    return Trace(
        nodes=tuple(_read_nodes(node_files[0])),
        pod_lists={name: tuple(_read_pods(available[name])) for name in wanted},
    )


class _Rows:
    """The rows of one CSV file, each value read with the row and column kept for errors."""

    def __init__(self, path: Path, columns: tuple[str, ...], required: tuple[str, ...]) -> None:
        self.path = path
        self._columns, self._required = columns, required
        self.row = 0
        self.line = 1
        self._values: dict[str, str] = {}

    def __iter__(self) -> Iterator[_Rows]:
        try:
            with self.path.open(newline="", encoding="utf-8") as file:
                reader = csv.reader(file)
                header = next(reader, [])
                self._check_header(header)
                width = len(header)
                for values in reader:
                    self.row, self.line = self.row + 1, reader.line_num
                    if len(values) != width:
                        raise self.error(
                            "", f"has {len(values)} values, the header names {width} columns"
                        )
                    self._values = dict(zip(header, values, strict=True))
                    yield self
        except (OSError, UnicodeDecodeError, csv.Error) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
            raise FleetError(str(self.path), "", f"cannot read: {reason}") from exc

    def _check_header(self, header: list[str]) -> None:
        for column in header:
            if column not in self._columns:
                known = ", ".join(self._columns)
                raise self.error(column, f"unknown column (known: {known})", header=True)
        for column in self._required:
            if column not in header:
                raise self.error(column, "missing column", header=True)

    def error(self, column: str, message: str, *, header: bool = False) -> FleetError:
        where = "header" if header else f"row {self.row} (line {self.line})"
        return FleetError(f"{self.path}: {where}", column, message)

    def text(self, column: str) -> str:
        return self._values.get(column, "").strip()

    def whole(self, column: str, low: int, high: int | None = None) -> int:
        value = self.text(column)
        if not is_decimal(value) or int(value) < low or (high is not None and int(value) > high):
            bound = f"from {low} to {high}" if high is not None else f"at least {low}"
            raise self.error(column, f"must be a whole number {bound}, got {value!r}")
        return int(value)

    def optional_whole(self, column: str) -> None:
        """A column the replay does not use: checked when given."""
        if self.text(column):
            self.whole(column, 0)

    def models(self, column: str) -> tuple[GpuSpec, ...]:
        """`|`-separated GPU model codes; empty for none."""
        value = self.text(column)
        try:
            return tuple(lookup_spec(code) for code in value.split("|")) if value else ()
        except ConfigError as exc:
            raise self.error(column, exc.message) from None

    def name(self, column: str, seen: set[str]) -> str:
        value = self.text(column)
        problem = dns_label_problem(value)
        if problem is not None:
            raise self.error(column, problem)
        if value in seen:
            raise self.error(column, f"duplicate name {value!r}")
        seen.add(value)
        return value


def _read_nodes(path: Path) -> Iterator[TraceNode]:
    seen: set[str] = set()
    for row in _Rows(path, NODE_COLUMNS, NODE_COLUMNS):
        name = row.name("sn", seen)
        gpus = row.whole("gpu", 0, MAX_GPUS_PER_NODE)
        models = row.models("model")
        if len(models) > 1 or (gpus and not models):
            raise row.error("model", f"must name one GPU model, got {row.text('model')!r}")
        model = models[0] if models else None
        yield TraceNode(name, row.whole("cpu_milli", 1), row.whole("memory_mib", 1), gpus, model)


def _read_pods(path: Path) -> Iterator[TracePod]:
    seen: set[str] = set()
    for row in _Rows(path, POD_COLUMNS, _REQUIRED_POD_COLUMNS):
        name = row.name("name", seen)
        num_gpu = row.whole("num_gpu", 0, MAX_GPUS_PER_NODE)
        gpu_milli = row.whole("gpu_milli", 0, MILLI)
        if (gpu_milli > 0) != (num_gpu > 0):
            raise row.error("gpu_milli", f"must be 0 exactly when num_gpu is 0, got {gpu_milli}")
        if num_gpu > 1 and gpu_milli != MILLI:
            raise row.error(
                "gpu_milli", f"must be {MILLI} (whole GPUs) when num_gpu > 1, got {gpu_milli}"
            )
        models = row.models("gpu_spec")
        for column in POD_COLUMNS[8:]:
            row.optional_whole(column)
        yield TracePod(
            name, row.whole("cpu_milli", 0), row.whole("memory_mib", 0), num_gpu, gpu_milli, models
        )
