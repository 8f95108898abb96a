"""The `tensor-fusion` command."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from tensorfusion import __version__, _native
from tensorfusion.api.crd import stale_files, write_crds
from tensorfusion.api.validate import DocumentResult, validate_text
from tensorfusion.errors import ConfigError
from tensorfusion.log import configure_logging

EXIT_OK = 0
EXIT_INVALID = 1
EXIT_USAGE = 2
DEFAULT_CRD_DIR = Path("charts/tensor-fusion/crds")


def _validate(args: argparse.Namespace) -> int:
    results: list[DocumentResult] = []
    for name in args.files:
        try:
            text = sys.stdin.read() if name == "-" else Path(name).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
            print(f"{name}: cannot read: {reason}", file=sys.stderr)
            return EXIT_USAGE
        results.extend(validate_text(text, source="<stdin>" if name == "-" else name))
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
    directory = Path(args.output_dir)
    if args.check:
        stale = stale_files(directory)
        for name in stale:
            print(f"{directory / name}: out of date (run `tensor-fusion crds`)")
        return EXIT_INVALID if stale else EXIT_OK
    for path in write_crds(directory):
        print(path)
    return EXIT_OK


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

    crds = commands.add_parser("crds", help="generate the CRD manifests from the models")
    crds.add_argument("--output-dir", default=str(DEFAULT_CRD_DIR), metavar="DIR")
    crds.add_argument(
        "--check", action="store_true", help="only report files that differ; exit 1 if any"
    )
    crds.set_defaults(run=_crds)

    version = commands.add_parser("version", help="print version and native build info")
    version.set_defaults(run=_version)
    return parser


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
