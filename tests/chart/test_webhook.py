"""The chart's MutatingWebhookConfiguration is the object tests/kube/webhook_configuration.py
builds (what the emulator tests), but for clientConfig, which points at the controller
Service; its certificate is Helm's own, issued by the CA in caBundle for that Service's name."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from cryptography import x509

from tests.chart.render import NAMESPACE, render
from tests.kube.webhook_configuration import webhook_configuration

SERVICE = "tensor-fusion-sys-controller"


@pytest.mark.parametrize("migration", [False, True])
@pytest.mark.parametrize("policy", ["Fail", "Ignore"])
def test_webhook_configuration_is_the_tested_one(helm: Path, migration: bool, policy: str) -> None:
    out = render(
        helm,
        sets=[
            f"controller.nvidiaOperatorProgressiveMigration={str(migration).lower()}",
            f"controller.admissionWebhooks.failurePolicy={policy}",
        ],
    )
    (chart,) = out.of_kind("MutatingWebhookConfiguration")
    expected = webhook_configuration(
        "", "", release_namespace=NAMESPACE, failure_policy=policy, migration=migration
    )
    assert chart["metadata"]["name"] == expected["metadata"]["name"]
    client_configs = [hook.pop("clientConfig") for hook in chart["webhooks"]]
    for hook in expected["webhooks"]:
        hook.pop("clientConfig")
    assert chart["webhooks"] == expected["webhooks"]
    for config in client_configs:
        assert config["service"] == {
            "name": SERVICE,
            "namespace": NAMESPACE,
            "port": 9443,
            "path": "/mutate-v1-pod",
        }
    secret = out.one("Secret", "tensor-fusion-webhook-secret")
    assert {config["caBundle"] for config in client_configs} == {secret["data"]["ca.crt"]}


def test_serving_certificate_is_issued_by_the_ca_for_the_service(helm: Path) -> None:
    data = render(helm).one("Secret", "tensor-fusion-webhook-secret")["data"]
    ca, cert = (
        x509.load_pem_x509_certificate(base64.b64decode(data[key])) for key in ("ca.crt", "tls.crt")
    )
    cert.verify_directly_issued_by(ca)
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert f"{SERVICE}.{NAMESPACE}.svc" in names.get_values_for_type(x509.DNSName)
    assert b"PRIVATE KEY" in base64.b64decode(data["tls.key"])


def test_cert_manager_option_issues_the_secret_and_injects_the_ca(helm: Path) -> None:
    out = render(helm, sets=["controller.admissionWebhooks.certManager.enabled=true"])
    assert out.of_kind("Secret")
    assert not [
        s for s in out.of_kind("Secret") if s["metadata"]["name"] == "tensor-fusion-webhook-secret"
    ]
    (certificate,) = out.of_kind("Certificate")
    assert certificate["spec"]["secretName"] == "tensor-fusion-webhook-secret"
    assert f"{SERVICE}.{NAMESPACE}.svc" in certificate["spec"]["dnsNames"]
    (chart,) = out.of_kind("MutatingWebhookConfiguration")
    annotation = chart["metadata"]["annotations"]["cert-manager.io/inject-ca-from"]
    assert annotation == f"{NAMESPACE}/{certificate['metadata']['name']}"
    assert all("caBundle" not in hook["clientConfig"] for hook in chart["webhooks"])
