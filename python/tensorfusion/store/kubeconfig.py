"""How the Kubernetes store finds its API server: an explicit kubeconfig (`--kubeconfig`), then
the `KUBECONFIG` environment variable, then the service account of the pod it runs in."""

from __future__ import annotations

import os
from pathlib import Path

import yaml
from kubernetes import client as kube_client
from kubernetes import config as kube_config

from tensorfusion.errors import ConfigError

KUBECONFIG_ENV = "KUBECONFIG"


def client_configuration(kubeconfig: str | Path | None = None) -> kube_client.Configuration:
    """The client settings from the first source present; a ConfigError names the source
    that was chosen and why it cannot be used."""
    if kubeconfig is not None and (not isinstance(kubeconfig, str | Path) or not str(kubeconfig)):
        raise ConfigError("kubeconfig", f"must be a file path, got {kubeconfig!r}")
    configuration = kube_client.Configuration()
    if kubeconfig is not None:
        _load_file("kubeconfig", str(kubeconfig), configuration)
    elif os.environ.get(KUBECONFIG_ENV):
        _load_file(KUBECONFIG_ENV, os.environ[KUBECONFIG_ENV], configuration)
    else:
        try:
            kube_config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
        except kube_config.ConfigException as error:
            raise ConfigError(
                "kubeconfig",
                f"none given, {KUBECONFIG_ENV} is not set, and this is not a pod in a cluster "
                f"({error})",
            ) from None
    return configuration


def _load_file(field: str, path: str, configuration: kube_client.Configuration) -> None:
    # The loader skips files that are missing, which would leave a vaguer message.
    missing = [part for part in path.split(os.pathsep) if part and not Path(part).is_file()]
    if missing:
        raise ConfigError(field, f"no such file: {missing[0]}")
    try:
        kube_config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=path, client_configuration=configuration, persist_config=False
        )
    except (kube_config.ConfigException, OSError, yaml.YAMLError, TypeError) as error:
        raise ConfigError(field, f"{path} is not a usable kubeconfig: {error}") from None
