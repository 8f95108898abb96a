"""The pod webhook's MutatingWebhookConfiguration as the Helm chart installs it (the chart's
template must render this same object, so that what the emulator tests is what a cluster
gets), and the controller serving that webhook over HTTPS for the emulator to call.

Unlike upstream, no pod of kube-system or of the release namespace is ever sent to a webhook:
both webhooks carry a namespaceSelector on `kubernetes.io/metadata.name`, the label
kube-apiserver puts on every namespace, so that a webhook that is down cannot stop the
cluster's own pods, even with progressive migration, where pods without the enabled label go
to a second webhook."""

from __future__ import annotations

import base64
import copy
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import kubernetes
import trustme

from tensorfusion.api.annotations import ENABLED_LABEL
from tensorfusion.webhook.admission_review import WEBHOOK_PATH
from tensorfusion.webhook.serving_certs import CERT_FILE, KEY_FILE
from tests.controller.cluster import RunningController, running_controller

CONFIGURATION_NAME: Final = "tensor-fusion-pod"
WEBHOOK_NAME: Final = "mutate-pod.tensor-fusion.ai"
NATIVE_WEBHOOK_NAME: Final = "mutate-native-pod.tensor-fusion.ai"
NAMESPACE_NAME_LABEL: Final = "kubernetes.io/metadata.name"
SYSTEM_NAMESPACE: Final = "kube-system"
FAILURE_POLICIES: Final = ("Fail", "Ignore")
TIMEOUT_S: Final = 10
# The webhook counts enabled-replicas slots, but not for a dry-run request.
SIDE_EFFECTS: Final = "NoneOnDryRun"


def webhook_configuration(
    url: str,
    ca_bundle: str,
    *,
    release_namespace: str,
    failure_policy: str = "Fail",
    migration: bool = False,
) -> dict[str, Any]:
    """`mutate-pod` for pods labelled enabled, under `failure_policy` (the chart's
    `controller.admissionWebhooks.failurePolicy`); with `migration` (progressive migration)
    `mutate-native-pod` too, for every other pod, under Ignore. ValueError names a bad
    argument."""
    if failure_policy not in FAILURE_POLICIES:
        raise ValueError(
            f"failurePolicy: must be one of {', '.join(FAILURE_POLICIES)}, got {failure_policy!r}"
        )
    if not release_namespace:
        raise ValueError("release_namespace: required, the namespace the chart is installed in")
    common = {
        "admissionReviewVersions": ["v1"],
        "sideEffects": SIDE_EFFECTS,
        "timeoutSeconds": TIMEOUT_S,
        "clientConfig": {"url": url, "caBundle": ca_bundle},
        "namespaceSelector": {
            "matchExpressions": [
                {
                    "key": NAMESPACE_NAME_LABEL,
                    "operator": "NotIn",
                    "values": sorted({SYSTEM_NAMESPACE, release_namespace}),
                }
            ]
        },
        "rules": [
            {
                "operations": ["CREATE"],
                "apiGroups": [""],
                "apiVersions": ["v1"],
                "resources": ["pods"],
            }
        ],
    }
    webhooks = [
        {
            "name": WEBHOOK_NAME,
            "failurePolicy": failure_policy,
            "objectSelector": {"matchLabels": {ENABLED_LABEL: "true"}},
            **common,
        }
    ]
    if migration:
        # NotIn selects pods without the label too.
        not_enabled = {"key": ENABLED_LABEL, "operator": "NotIn", "values": ["true"]}
        webhooks.append(
            {
                "name": NATIVE_WEBHOOK_NAME,
                "failurePolicy": "Ignore",
                "objectSelector": {"matchExpressions": [not_enabled]},
                **copy.deepcopy(common),
            }
        )
    return {"metadata": {"name": CONFIGURATION_NAME}, "webhooks": webhooks}


def register(api_client: kubernetes.client.ApiClient, configuration: dict[str, Any]) -> None:
    """Create `configuration` in the cluster, as installing the chart does."""
    registrations: Any = kubernetes.client.AdmissionregistrationV1Api(api_client)
    registrations.create_mutating_webhook_configuration(configuration)


@dataclass(frozen=True)
class ServedWebhook:
    running: RunningController
    url: str
    """`/mutate-v1-pod` on the controller's HTTPS server."""
    ca_bundle: str
    """The CA that issued its certificate, as `clientConfig.caBundle` takes it."""


@contextmanager
def served_webhook(kubeconfig: Path, work_dir: Path, **flags: Any) -> Iterator[ServedWebhook]:
    """The controller (`running_controller`, with `flags`) serving its pod webhook on
    127.0.0.1 under a certificate from a fresh CA, until the end."""
    ca = trustme.CA()
    certs = work_dir / "certs"
    certs.mkdir()
    issued = ca.issue_cert("127.0.0.1")
    issued.cert_chain_pems[0].write_to_path(str(certs / CERT_FILE))
    issued.private_key_pem.write_to_path(str(certs / KEY_FILE))
    with running_controller(
        kubeconfig, work_dir / "state", webhook_cert_dir=certs, **flags
    ) as running:
        assert running.webhook is not None
        bundle = base64.b64encode(ca.cert_pem.bytes()).decode()
        yield ServedWebhook(running, running.webhook.url + WEBHOOK_PATH, bundle)
