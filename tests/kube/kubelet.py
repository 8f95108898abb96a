"""A kubelet stand-in for the API-server emulator's nodes.

No container runtime exists here, so a pod bound to one of the stand-in's nodes runs as local
processes, as far as a pod's path through TensorFusion needs:
- volumes: an emptyDir is a fresh directory of the pod's; a hostPath is a directory standing
  for that path on the node (`StandInNode.host_paths`); `subPath`/`subPathExpr` select (and
  make) a directory under the volume, as the kubelet does;
- env: values, `$(NAME)` references to earlier variables, and fieldRefs read from the pod as
  stored (its annotations then hold what the scheduler wrote before it bound the pod);
- a container's paths: the process sees no mount namespace, so every env value and argument
  naming a path under a mount is rewritten to the directory behind it;
- the image: `python3` runs this interpreter (the project's image has the package);
- the GPU driver: where the container runtime would give the container the devices that
  NVIDIA_VISIBLE_DEVICES names (the NVIDIA runtime's contract), the process gets the node's
  driver (`StandInNode.driver_env`, the mock libcuda) with CUDA_VISIBLE_DEVICES set to them.

It registers its nodes (ready, 16 CPUs, 64Gi). Init containers run one after another, then the
containers together; the pod's phase is written to its status. A failed init container fails
the pod (no retries), and a container that exits is not restarted. Deleting the pod kills its
processes.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tensorfusion.errors import AlreadyExistsError, NotFoundError, StoreError
from tensorfusion.store.kube import KubeStore

log = logging.getLogger(__name__)

_REFERENCE = re.compile(r"\$\((?P<name>[A-Za-z_][A-Za-z0-9_.-]*)\)")
_MAP_FIELD = re.compile(r"metadata\.(?P<map>annotations|labels)\['(?P<key>[^']+)'\]")
_POD_FIELDS = {
    "metadata.name": ("metadata", "name"),
    "metadata.namespace": ("metadata", "namespace"),
    "metadata.uid": ("metadata", "uid"),
    "spec.nodeName": ("spec", "nodeName"),
    "spec.serviceAccountName": ("spec", "serviceAccountName"),
}
IMAGE_COMMANDS = {"python3": sys.executable, "python": sys.executable}
"""What the project's image runs, by the name a container's command gives."""


class PodSpecError(Exception):
    """What in the pod the stand-in cannot run, naming the field."""


def expanded(text: str, env: Mapping[str, str]) -> str:
    """`$(NAME)` replaced from `env`; an unknown reference stays as written, as in kube."""
    return _REFERENCE.sub(lambda m: env.get(m["name"], m[0]), text)


def field_value(pod: Mapping[str, Any], path: str) -> str:
    """A fieldRef's value, as the kubelet reads it from the pod (a missing key: empty)."""
    mapped = _MAP_FIELD.fullmatch(path)
    if mapped is not None:
        values = (pod.get("metadata") or {}).get(mapped["map"]) or {}
        return str(values.get(mapped["key"], ""))
    if path not in _POD_FIELDS:
        raise PodSpecError(f"fieldRef.fieldPath {path!r} is not supported by the stand-in")
    section, key = _POD_FIELDS[path]
    return str((pod.get(section) or {}).get(key) or "")


def resolved_env(pod: Mapping[str, Any], container: Mapping[str, Any]) -> dict[str, str]:
    """A container's environment as the kubelet resolves it once the pod is stored and bound:
    fieldRefs read from the pod, `$(NAME)` expanded from the variables listed before."""
    if container.get("envFrom"):
        raise PodSpecError(f"containers[{container.get('name')}].envFrom is not supported")
    env: dict[str, str] = {}
    for item in container.get("env") or ():
        source = item.get("valueFrom")
        if source is None:
            env[item["name"]] = expanded(item.get("value", ""), env)
        elif "fieldRef" in source:
            env[item["name"]] = field_value(pod, source["fieldRef"]["fieldPath"])
        else:
            raise PodSpecError(f"env {item['name']}: valueFrom {sorted(source)} not supported")
    return env


@dataclass(frozen=True)
class StandInNode:
    """A node the stand-in runs pods for: `host_paths` maps a path on the node (a hostPath
    volume's, or a parent of it) to the directory standing for it; `driver_env` is what a
    process needs to reach the node's GPU driver."""

    name: str
    host_paths: Mapping[str, Path]
    driver_env: Mapping[str, str]
    labels: Mapping[str, str] = field(default_factory=dict)

    def host_dir(self, path: str, volume: str) -> Path:
        for prefix, local in sorted(self.host_paths.items(), key=lambda item: -len(item[0])):
            if path == prefix or path.startswith(prefix.rstrip("/") + "/"):
                return local / path[len(prefix) :].lstrip("/")
        raise PodSpecError(f"volumes[{volume}].hostPath.path {path!r} is not on node {self.name}")


@dataclass
class PodRun:
    """One pod's processes on the stand-in, with their output and exit codes."""

    namespace: str
    name: str
    sandbox: Path
    exit_codes: dict[str, int] = field(default_factory=dict)
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    deleted: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)
    problem: str | None = None

    def log_path(self, container: str) -> Path:
        return self.sandbox / "logs" / f"{container}.log"


class KubeletStandIn:
    """Runs the pods bound to `nodes` (see the module's docstring) until stopped; pods'
    sandboxes live under `root`. A context manager."""

    def __init__(self, kubeconfig: Path, nodes: Sequence[StandInNode], root: Path) -> None:
        self._store = KubeStore(kubeconfig)
        self._nodes = {node.name: node for node in nodes}
        self._root = root
        self._runs: dict[str, PodRun] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._follow, name="kubelet-stand-in", daemon=True)

    def __enter__(self) -> KubeletStandIn:
        for node in self._nodes.values():  # a kubelet registers its node
            with contextlib.suppress(AlreadyExistsError):
                self._store.create(_node_object(node.name, node.labels))
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        with self._lock:
            runs = list(self._runs.values())
        for run in runs:
            self._kill(run)
        self._store.close()

    # --- what tests read -----------------------------------------------------------------

    def run_of(self, namespace: str, name: str, timeout_s: float = 60.0) -> PodRun:
        """The pod's run, once the stand-in has started it."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self._lock:
                for run in self._runs.values():
                    if (run.namespace, run.name) == (namespace, name):
                        return run
            time.sleep(0.05)
        raise TimeoutError(f"the stand-in never started pod {namespace}/{name}")

    def logs(self, namespace: str, name: str, container: str) -> str:
        path = self.run_of(namespace, name).log_path(container)
        return path.read_text() if path.exists() else ""

    # --- following the pods --------------------------------------------------------------

    def _follow(self) -> None:
        version = 0
        while not self._stop.is_set():
            try:
                if version == 0:
                    pods, version = self._store.list_with_version("Pod")
                    for pod in pods:
                        self._seen(pod, deleted=False)
                for event in self._store.watch(["Pod"], version, 0.5):
                    version = max(version, event.resource_version)
                    self._seen(event.object, deleted=event.type == "DELETED")
            except StoreError as exc:  # an expired change log: list again
                log.info("kubelet stand-in: relisting pods after %s", exc)
                version = 0

    def _seen(self, pod: Mapping[str, Any], *, deleted: bool) -> None:
        uid = pod["metadata"]["uid"]
        with self._lock:
            run = self._runs.get(uid)
            if deleted:
                if run is not None:
                    run.deleted.set()
                    self._kill(run)
                return
            node = self._nodes.get((pod.get("spec") or {}).get("nodeName") or "")
            if run is not None or node is None:
                return
            run = PodRun(pod["metadata"]["namespace"], pod["metadata"]["name"], self._root / uid)
            self._runs[uid] = run
        threading.Thread(
            target=self._run_pod, args=(pod, node, run), name=f"pod-{run.name}", daemon=True
        ).start()

    # --- running one pod -----------------------------------------------------------------

    def _run_pod(self, pod: Mapping[str, Any], node: StandInNode, run: PodRun) -> None:
        try:
            fresh = self._store.get("Pod", run.name, run.namespace)
            volumes = self._volumes(fresh, node, run)
            for container in fresh["spec"].get("initContainers") or ():
                code = self._start(fresh, container, node, volumes, run).wait()
                run.exit_codes[container["name"]] = code
                if code != 0:
                    raise PodSpecError(f"init container {container['name']} exited {code}")
            started = [
                (container["name"], self._start(fresh, container, node, volumes, run))
                for container in fresh["spec"]["containers"]
            ]
            self._status(run, "Running")
            for name, process in started:
                run.exit_codes[name] = process.wait()
            failed = any(run.exit_codes[name] != 0 for name, _ in started)
            self._status(run, "Failed" if failed else "Succeeded")
        except (PodSpecError, OSError) as exc:
            run.problem = str(exc)
            if not run.deleted.is_set():
                log.warning("kubelet stand-in: pod %s/%s: %s", run.namespace, run.name, exc)
                self._status(run, "Failed", message=str(exc))
        finally:
            run.done.set()

    def _volumes(self, pod: Mapping[str, Any], node: StandInNode, run: PodRun) -> dict[str, Path]:
        volumes = {}
        for volume in pod["spec"].get("volumes") or ():
            name = volume["name"]
            if "emptyDir" in volume:
                volumes[name] = run.sandbox / "volumes" / name
                volumes[name].mkdir(parents=True)
            elif "hostPath" in volume:
                volumes[name] = node.host_dir(volume["hostPath"]["path"], name)
                if volume["hostPath"].get("type") == "DirectoryOrCreate":
                    volumes[name].mkdir(parents=True, exist_ok=True)
            else:
                raise PodSpecError(f"volumes[{name}]: only emptyDir and hostPath are supported")
        return volumes

    def _start(
        self,
        pod: Mapping[str, Any],
        container: Mapping[str, Any],
        node: StandInNode,
        volumes: Mapping[str, Path],
        run: PodRun,
    ) -> subprocess.Popen[bytes]:
        name = container["name"]
        env = resolved_env(pod, container)
        mounts = _mounts(container, volumes, env)
        given = [*container.get("command", []), *container.get("args", [])]
        argv = [expanded(arg, env) for arg in given]
        if not argv:
            raise PodSpecError(f"containers[{name}].command: the stand-in needs one")
        argv[0] = IMAGE_COMMANDS.get(argv[0], argv[0])
        process_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(run.sandbox)}
        process_env |= {key: _rewritten(value, mounts) for key, value in env.items()}
        visible = env.get("NVIDIA_VISIBLE_DEVICES")
        if visible is not None:  # the NVIDIA container runtime's part
            process_env |= {**node.driver_env, "CUDA_VISIBLE_DEVICES": visible}
        log_path = run.log_path(name)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock:
            if run.deleted.is_set():
                raise PodSpecError("the pod was deleted")
            with log_path.open("wb") as output:
                process = subprocess.Popen(
                    [_rewritten(arg, mounts) for arg in argv],
                    env=process_env,
                    cwd=run.sandbox,
                    stdin=subprocess.DEVNULL,
                    stdout=output,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            run.processes[name] = process
        return process

    def _status(self, run: PodRun, phase: str, message: str | None = None) -> None:
        status: dict[str, Any] = {"phase": phase}
        if message is not None:
            status["message"] = message
        with contextlib.suppress(NotFoundError):  # deleted meanwhile
            self._store.patch("Pod", run.name, {"status": status}, run.namespace)

    def _kill(self, run: PodRun) -> None:
        for process in run.processes.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        shutil.rmtree(run.sandbox / "volumes", ignore_errors=True)


def _node_object(name: str, labels: Mapping[str, str]) -> dict[str, Any]:
    resources = {"cpu": "16", "memory": "64Gi", "pods": "110"}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux", **labels},
        },
        "status": {
            "capacity": resources,
            "allocatable": resources,
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}],
        },
    }


def _mounts(
    container: Mapping[str, Any], volumes: Mapping[str, Path], env: Mapping[str, str]
) -> list[tuple[str, Path]]:
    """(mount path, directory behind it), longest path first, making subpath directories as
    the kubelet does."""
    mounts = []
    for mount in container.get("volumeMounts") or ():
        if mount["name"] not in volumes:
            raise PodSpecError(f"volumeMounts[{mount['name']}]: no such volume")
        local = volumes[mount["name"]]
        sub = mount.get("subPath") or expanded(mount.get("subPathExpr", ""), env)
        if sub:
            local = local / sub
            local.mkdir(parents=True, exist_ok=True)
        mounts.append((mount["mountPath"].rstrip("/"), local))
    return sorted(mounts, key=lambda mount: -len(mount[0]))


def _rewritten(value: str, mounts: Sequence[tuple[str, Path]]) -> str:
    """`value` (or each part of a `:`-separated list) with a path under a mount replaced by
    the directory behind it."""
    return ":".join(_rewritten_path(part, mounts) for part in value.split(":"))


def _rewritten_path(part: str, mounts: Sequence[tuple[str, Path]]) -> str:
    for path, local in mounts:
        if part == path or part.startswith(path + "/"):
            return str(local) + part[len(path) :]
    return part
