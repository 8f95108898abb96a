"""The `tensor-fusion` command."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, get_args

from tensorfusion import __version__, _native
from tensorfusion.api.crd import stale_files, write_crds
from tensorfusion.api.field_errors import FieldIssue
from tensorfusion.api.scheduler_config import KubeSchedulerConfiguration
from tensorfusion.api.scheduling_template import PlacementMode
from tensorfusion.api.validate import DocumentResult, validate_text
from tensorfusion.api.values_schema import is_stale, write_values_schema
from tensorfusion.cli_agent import add_agent_command
from tensorfusion.cli_control_plane import add_control_plane_commands
from tensorfusion.cli_controller import add_controller_command
from tensorfusion.errors import ConfigError, FleetError
from tensorfusion.log import configure_logging
from tensorfusion.scheduler.cluster_state import ClusterState
from tensorfusion.scheduler.fleet import Fleet, load_fleet, read_fleet
from tensorfusion.scheduler.fleet_generator import generate_fleet
from tensorfusion.scheduler.gpu_models import MODELS
from tensorfusion.scheduler.profile import build_profiles, default_config, load_scheduler_config
from tensorfusion.scheduler.simulate import profile_for, read_pod, simulate
from tensorfusion.trace.openb import read_trace
from tensorfusion.trace.replay import PodShape, fleet_from_trace, listed_pods

EXIT_OK = 0
EXIT_INVALID = 1
EXIT_USAGE = 2
DEFAULT_CRD_DIR = Path("charts/tensor-fusion/crds")
DEFAULT_VALUES_SCHEMA = Path("charts/tensor-fusion/values.schema.json")


def _read_input(name: str) -> str | None:
    """The text of a file ('-': stdin), or None after saying on stderr why it cannot be read."""
    try:
        return sys.stdin.read() if name == "-" else Path(name).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        print(f"{name}: cannot read: {reason}", file=sys.stderr)
        return None


def _source_name(name: str) -> str:
    return "<stdin>" if name == "-" else name


def _profile_problems(data: dict[str, Any]) -> list[FieldIssue]:
    """What building the scheduler's profiles finds (plugin names, stages, weights)."""
    try:
        build_profiles(KubeSchedulerConfiguration.model_validate(data))
    except ConfigError as exc:
        return [FieldIssue(exc.field, exc.message)]
    return []


DEEPER_CHECKS = {"KubeSchedulerConfiguration": _profile_problems}


def _validate(args: argparse.Namespace) -> int:
    results: list[DocumentResult] = []
    for name in args.files:
        text = _read_input(name)
        if text is None:
            return EXIT_USAGE
        results.extend(validate_text(text, source=_source_name(name), deeper=DEEPER_CHECKS))
    for result in results:
        where = f"{result.source}:{result.line}"
        if result.ok:
            print(f"{where}: {result.label}: OK")
        else:
            count = len(result.errors)
            print(f"{where}: {result.label}: INVALID ({count} error{'s' * (count != 1)})")
        for issue in result.errors:
            print(f"  error: {issue}")
        if not args.quiet:
            for issue in result.warnings:
                print(f"  warning: {issue}")
    if not results:
        print("no documents found", file=sys.stderr)
        return EXIT_INVALID
    return EXIT_OK if all(result.ok for result in results) else EXIT_INVALID


def _crds(args: argparse.Namespace) -> int:
    directory, schema = Path(args.output_dir), Path(args.values_schema)
    if args.check:
        stale = [directory / name for name in stale_files(directory)]
        stale += [schema] if is_stale(schema) else []
        for path in stale:
            print(f"{path}: out of date (run `tensor-fusion crds`)")
        return EXIT_INVALID if stale else EXIT_OK
    for path in [*write_crds(directory), write_values_schema(schema)]:
        print(path)
    return EXIT_OK


def _fleet_generate(args: argparse.Namespace) -> int:
    try:
        fleet = generate_fleet(
            args.nodes, args.gpus_per_node, args.model, args.fill, seed=args.seed, pool=args.pool
        )
    except ConfigError as exc:
        print(f"tensor-fusion: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return _write_fleet(fleet, args.output)


def _fleet_from_trace(args: argparse.Namespace) -> int:
    try:
        trace = read_trace(args.directory, tuple(args.pods) if args.pods else ())
        fleet = fleet_from_trace(trace, pool=args.pool, placement=args.placement)
    except (ConfigError, FleetError) as exc:
        print(f"tensor-fusion: {exc}", file=sys.stderr)
        return EXIT_USAGE
    fleet.pods.extend(listed_pods(trace, PodShape.of(trace), args.pool))
    return _write_fleet(fleet, args.output)


def _write_fleet(fleet: Fleet, output: str) -> int:
    if output == "-":
        sys.stdout.write(fleet.to_yaml())
        return EXIT_OK
    try:
        Path(output).write_text(fleet.to_yaml(), encoding="utf-8")
    except OSError as exc:
        print(f"{output}: cannot write: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_USAGE
    return EXIT_OK


def _fleet_check(args: argparse.Namespace) -> int:
    text = _read_input(args.file)
    if text is None:
        return EXIT_USAGE
    source = _source_name(args.file)
    fleet, problems = read_fleet(source, text)
    for problem in problems:
        print(f"{source}: {problem}")
    if problems:
        return EXIT_INVALID
    print(
        f"{source}: OK ({len(fleet.nodes)} nodes, {len(fleet.gpus)} GPUs, {len(fleet.pods)} pods)"
    )
    return EXIT_OK


def _simulate(args: argparse.Namespace) -> int:
    fleet_text = _read_input(args.fleet)
    pod_text = _read_input(args.pod)
    if fleet_text is None or pod_text is None:
        return EXIT_USAGE
    try:
        config = load_scheduler_config(args.scheduler_config) if args.scheduler_config else None
        fleet = load_fleet(_source_name(args.fleet), fleet_text)
        pod = read_pod(_source_name(args.pod), pod_text)
        profile = build_profiles(config or default_config())
        cluster, report = ClusterState.build(fleet)
    except (ConfigError, FleetError) as exc:
        print(f"tensor-fusion: {exc}", file=sys.stderr)
        return EXIT_USAGE
    for problem in report.problems():
        print(f"{_source_name(args.fleet)}: allocation not restored: {problem}", file=sys.stderr)
    try:
        chosen = profile_for(profile, pod)
    except ConfigError as exc:
        print(f"tensor-fusion: {_source_name(args.pod)}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    result = simulate(chosen, cluster, pod, top=args.top)
    print(json.dumps(result, indent=2))
    return EXIT_OK if result["schedulable"] else EXIT_INVALID


def _version(_args: argparse.Namespace) -> int:
    info = _native.build_info()
    werror = ", -Werror" if info["werror"] else ""
    print(f"tensor-fusion {__version__}")
    print(
        f"native core {info['version']} ({info['compiler_id']} {info['compiler_version']}, "
        f"C++{info['cxx_standard']}, {info['build_type']}{werror})"
    )
    return EXIT_OK


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tensor-fusion", description="GPU pooling and virtualization for Kubernetes."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    validate = commands.add_parser(
        "validate",
        help="check manifests, values files and scheduler configs",
        description="Check YAML files (multi-document; '-' reads stdin): tensor-fusion.ai "
        "objects, Pods and their controllers with TensorFusion annotations, Helm values, "
        "dynamic config and KubeSchedulerConfiguration. Exit 1 if anything is invalid.",
    )
    validate.add_argument("files", nargs="+", metavar="FILE")
    validate.add_argument("-q", "--quiet", action="store_true", help="do not print warnings")
    validate.set_defaults(run=_validate)

    crds = commands.add_parser(
        "crds", help="generate the CRD manifests and the chart's values.schema.json from the models"
    )
    crds.add_argument("--output-dir", default=str(DEFAULT_CRD_DIR), metavar="DIR")
    crds.add_argument("--values-schema", default=str(DEFAULT_VALUES_SCHEMA), metavar="FILE")
    crds.add_argument(
        "--check", action="store_true", help="only report files that differ; exit 1 if any"
    )
    crds.set_defaults(run=_crds)

    version = commands.add_parser("version", help="print version and native build info")
    version.set_defaults(run=_version)
    _add_fleet_commands(commands)
    add_control_plane_commands(commands)
    add_controller_command(commands)
    add_agent_command(commands)

    simulate_cmd = commands.add_parser(
        "simulate",
        help="show where a pod would be scheduled on a fleet, and why",
        description="Run the full scheduling pipeline for one Pod on a fleet file, changing "
        "nothing, and print the result as JSON: node and GPUs, each filter stage's node "
        "counts, the scores of the top nodes, and a diagnosis when it does not fit. "
        "Exit 0 if schedulable, 1 if not, 2 on bad input.",
    )
    simulate_cmd.add_argument("--fleet", required=True, metavar="FLEET.yaml")
    simulate_cmd.add_argument(
        "--scheduler-config",
        metavar="FILE",
        help="KubeSchedulerConfiguration (default: the guide's R8 settings)",
    )
    simulate_cmd.add_argument("--top", type=int, default=5, help="how many top nodes to show")
    simulate_cmd.add_argument("pod", metavar="POD.yaml", help="the Pod manifest ('-' for stdin)")
    simulate_cmd.set_defaults(run=_simulate)
    return parser


def _add_fleet_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    fleet = commands.add_parser(
        "fleet",
        help="generate, import and check cluster snapshots",
        description="A fleet file is a multi-document YAML of Nodes, GPUNodes, GPUs, GPUPools "
        "and Pods: a snapshot of a cluster to simulate scheduling on.",
    )
    actions = fleet.add_subparsers(dest="fleet_command", required=True, metavar="ACTION")
    generate = actions.add_parser(
        "generate",
        help="write a synthetic fleet",
        description="Write a fleet of identical nodes in one pool, with running pods whose "
        "requests take --fill of the pool's VRAM. The same flags give the same fleet.",
    )
    generate.add_argument("--nodes", type=int, required=True, metavar="N")
    generate.add_argument("--gpus-per-node", type=int, required=True, metavar="G")
    generate.add_argument(
        "--model",
        required=True,
        help=f"GPU model, one of: {', '.join(model.name for model in MODELS)} (or an alias)",
    )
    generate.add_argument(
        "--fill", type=float, default=0.0, help="share of VRAM requested by pods, 0 to 1"
    )
    generate.add_argument("--seed", type=int, default=0)
    generate.add_argument("--pool", default="default", metavar="NAME")
    generate.add_argument(
        "-o", "--output", default="-", metavar="FILE", help="where to write (default: stdout)"
    )
    generate.set_defaults(run=_fleet_generate)
    from_trace = actions.add_parser(
        "from-trace",
        help="write the fleet of a GPU-sharing trace",
        description="Write the fleet of a trace directory in the format of Alibaba's openb "
        "trace (openb_node_list*.csv and openb_pod_list_NAME.csv): its nodes and GPUs in one "
        "pool, nothing allocated, and with --pods the pending pods of those lists (a pod's "
        "gpu_milli becomes compute-percent and the same share of VRAM).",
    )
    from_trace.add_argument("directory", metavar="DIR", help="the trace directory")
    from_trace.add_argument(
        "--pods",
        action="append",
        metavar="NAME",
        help="add the pods of openb_pod_list_NAME.csv (repeatable; default: no pods)",
    )
    from_trace.add_argument("--pool", default="default", metavar="NAME")
    from_trace.add_argument(
        "--placement",
        choices=get_args(PlacementMode),
        help="give the pool a SchedulingConfigTemplate of this placement mode (default: none, "
        "so the pool places by the default mode)",
    )
    from_trace.add_argument(
        "-o", "--output", default="-", metavar="FILE", help="where to write (default: stdout)"
    )
    from_trace.set_defaults(run=_fleet_from_trace)
    check = actions.add_parser(
        "check",
        help="check a fleet file",
        description="Check every object of a fleet file and the references between them; "
        "print every problem and exit 1 if there is any.",
    )
    check.add_argument("file", metavar="FILE", help="the fleet file ('-' reads stdin)")
    check.set_defaults(run=_fleet_check)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        configure_logging()
    except ConfigError as exc:
        print(f"tensor-fusion: {exc}", file=sys.stderr)
        return EXIT_USAGE
    code: int = args.run(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
