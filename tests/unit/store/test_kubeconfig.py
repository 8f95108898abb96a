"""Where KubeStore finds its API server: an explicit kubeconfig, then KUBECONFIG, then the
pod's service account; each failure names the source."""

from __future__ import annotations

from pathlib import Path

import pytest

from tensorfusion.errors import ConfigError
from tensorfusion.store.kubeconfig import KUBECONFIG_ENV, client_configuration


def write_kubeconfig(path: Path, server: str) -> Path:
    path.write_text(
        f"""
apiVersion: v1
kind: Config
clusters:
- name: c
  cluster: {{server: "{server}", insecure-skip-tls-verify: true}}
users:
- name: u
  user: {{token: secret-token}}
contexts:
- name: x
  context: {{cluster: c, user: u}}
current-context: x
"""
    )
    return path


@pytest.fixture(autouse=True)
def no_ambient_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(KUBECONFIG_ENV, raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)


def test_an_explicit_file_comes_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    given = write_kubeconfig(tmp_path / "given", "https://given.example:6443")
    env = write_kubeconfig(tmp_path / "env", "https://env.example:6443")
    monkeypatch.setenv(KUBECONFIG_ENV, str(env))
    configuration = client_configuration(given)
    assert configuration.host == "https://given.example:6443"
    assert configuration.auth_settings()["BearerToken"]["value"] == "Bearer secret-token"


def test_the_environment_comes_next(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = write_kubeconfig(tmp_path / "env", "https://env.example:6443")
    monkeypatch.setenv(KUBECONFIG_ENV, str(env))
    assert client_configuration().host == "https://env.example:6443"


def test_outside_a_cluster_without_a_file_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"^kubeconfig: none given, KUBECONFIG is not set"):
        client_configuration()


@pytest.mark.parametrize("path", ["", 5, b"config"])
def test_a_bad_path_is_refused(path: object) -> None:
    with pytest.raises(ConfigError, match=r"^kubeconfig: must be a file path"):
        client_configuration(path)  # type: ignore[arg-type]


def test_a_missing_file_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match=r"^kubeconfig: no such file: .*nowhere$"):
        client_configuration(tmp_path / "nowhere")
    monkeypatch.setenv(KUBECONFIG_ENV, str(tmp_path / "gone"))
    with pytest.raises(ConfigError, match=r"^KUBECONFIG: no such file: .*gone$"):
        client_configuration()


@pytest.mark.parametrize(
    "text", ["clusters: [unclosed", "just text", "apiVersion: v1\nkind: Config\n"]
)
def test_a_file_that_is_not_a_kubeconfig_is_refused(tmp_path: Path, text: str) -> None:
    path = tmp_path / "config"
    path.write_text(text)
    with pytest.raises(ConfigError, match=r"^kubeconfig: .*config is not a usable kubeconfig"):
        client_configuration(path)
