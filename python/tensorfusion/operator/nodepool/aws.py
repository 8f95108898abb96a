"""GPU instances on AWS EC2 through boto3: launch one instance per claim (instance types in
order of preference, each in the requested zones in turn), terminate, and list a pool's
instances by tag.

A launch never makes two instances for one claim: the claim's name is the request's
ClientToken (EC2 answers a repeated call with the instance it already made), and an instance
already tagged with the claim is returned instead of launching again.

Credentials: authType serviceAccountRole uses boto3's default chain, which on EKS picks up
the pod's IAM role (IRSA: the pod identity webhook injects AWS_ROLE_ARN and
AWS_WEB_IDENTITY_TOKEN_FILE), so no key is stored in the cluster; authType accessKey reads
the key pair from the files `params.accessKeyPath` and `params.secretKeyPath` (a mounted
Secret)."""

from __future__ import annotations

import functools
import hashlib
import json
import shlex
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import boto3  # type: ignore[import-untyped]
from botocore.exceptions import (  # type: ignore[import-untyped]
    BotoCoreError,
    ClientError,
    CredentialRetrievalError,
    NoCredentialsError,
    PartialCredentialsError,
)

from tensorfusion.api.cluster import ComputingVendor
from tensorfusion.errors import CloudError, ConfigError
from tensorfusion.operator.nodepool.cloud import (
    CLAIM_TAG,
    POOL_TAG,
    CloudProvider,
    Instance,
    LaunchRequest,
    LaunchResult,
)
from tensorfusion.operator.nodepool.config import CloudFactory

_KINDS_BY_CODE = {
    "InsufficientInstanceCapacity": "capacity",
    "InsufficientCapacity": "capacity",
    "Unsupported": "capacity",
    "SpotMaxPriceTooLow": "capacity",
    "RequestLimitExceeded": "throttled",
    "Throttling": "throttled",
    "ThrottlingException": "throttled",
    "AuthFailure": "credentials",
    "UnauthorizedOperation": "credentials",
    "InvalidClientTokenId": "credentials",
    "ExpiredToken": "credentials",
    "InvalidParameterValue": "invalid",
}
_INVALID_PREFIXES = ("InvalidAMIID.", "InvalidKeyPair.")
_LIVE_STATES = ("pending", "running", "shutting-down", "stopping", "stopped")
"""Every state but terminated: an instance in any of these still costs or may come back."""


def cloud_error(exc: Exception) -> CloudError:
    """The CloudError a boto3 failure means (see the module's kinds)."""
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code") or "Unknown")
        kind = _KINDS_BY_CODE.get(code)
        if kind is None:
            kind = "invalid" if code.startswith(_INVALID_PREFIXES) else "other"
        return CloudError(kind, code, str(error.get("Message") or exc))
    if isinstance(exc, (NoCredentialsError, PartialCredentialsError, CredentialRetrievalError)):
        return CloudError("credentials", type(exc).__name__, str(exc))
    return CloudError("other", type(exc).__name__, str(exc))


def client_token(claim: str) -> str:
    """The claim's name as EC2's idempotency token (at most 64 characters: a longer name is
    replaced by its digest)."""
    return claim if len(claim) <= 64 else hashlib.sha256(claim.encode()).hexdigest()


def user_data(request: LaunchRequest) -> str:
    """A boot script that makes the kubelet register the node with the pool's labels: it sets
    `--node-labels` in the kubelet's extra arguments (the environment file that kubeadm's and
    EKS's kubelet units read) and restarts the kubelet."""
    labels = ",".join(f"{key}={value}" for key, value in sorted(request.labels.items()))
    return "\n".join(
        (
            "#!/bin/bash",
            f"# Joins GPU pool {request.pool} as the node of claim {request.claim}.",
            "set -euo pipefail",
            f"echo KUBELET_EXTRA_ARGS={shlex.quote('--node-labels=' + labels)}"
            " >> /etc/default/kubelet",
            "systemctl restart kubelet || true",
            "",
        )
    )


def _instance_profile(profile: str) -> dict[str, str]:
    """An instance profile given by ARN, by name, or (as `computingVendor.params.iamRole`
    usually is) by its role's ARN: AWS names a role's instance profile after the role."""
    if profile.startswith("arn:") and ":instance-profile/" in profile:
        return {"Arn": profile}
    return {"Name": profile.rsplit("/", 1)[-1]}


def _instance(raw: Mapping[str, Any]) -> Instance:
    tags = {tag["Key"]: tag["Value"] for tag in raw.get("Tags") or []}
    return Instance(
        instance_id=raw["InstanceId"],
        instance_type=raw["InstanceType"],
        zone=(raw.get("Placement") or {}).get("AvailabilityZone", ""),
        state=(raw.get("State") or {}).get("Name", ""),
        claim=tags.get(CLAIM_TAG),
    )


class AwsProvider:
    """The CloudProvider protocol over an EC2 client of one region."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def launch(self, request: LaunchRequest) -> LaunchResult:
        if not request.image_id:
            raise CloudError(
                "invalid",
                "MissingImage",
                "no image to launch: set the pool's nodeProvisioner.nodeClass (a GPUNodeClass "
                "with osImageSelectorTerms id) or computingVendor.params.extraParams.imageId",
            )
        if not request.instance_types:
            raise CloudError("invalid", "NoInstanceType", "no instance type to launch")
        existing = self._claimed(request)
        if existing is not None:
            return LaunchResult(existing)
        passed_over: list[tuple[str, str]] = []
        code = ""
        for instance_type in request.instance_types:
            refusals: list[str] = []
            for zone in request.zones or (None,):
                try:
                    return LaunchResult(self._run(request, instance_type, zone), tuple(passed_over))
                except (ClientError, BotoCoreError) as exc:
                    error = cloud_error(exc)
                    if error.kind != "capacity":
                        raise error from exc
                    code = error.code
                    refusals.append(f"{code} in {zone}" if zone else code)
            passed_over.append((instance_type, ", ".join(refusals)))
        tried = "; ".join(f"{t}: {why}" for t, why in passed_over)
        raise CloudError("capacity", code, f"no instance type could be launched ({tried})")

    def _claimed(self, request: LaunchRequest) -> Instance | None:
        found = self._describe([{"Name": f"tag:{CLAIM_TAG}", "Values": [request.claim]}])
        return found[0] if found else None

    def _run(self, request: LaunchRequest, instance_type: str, zone: str | None) -> Instance:
        tags = [
            {"Key": CLAIM_TAG, "Value": request.claim},
            {"Key": POOL_TAG, "Value": request.pool},
            {"Key": "Name", "Value": request.claim},
        ]
        params: dict[str, Any] = {
            "ImageId": request.image_id,
            "InstanceType": instance_type,
            "MinCount": 1,
            "MaxCount": 1,
            "ClientToken": client_token(request.claim),
            "UserData": user_data(request),
            "TagSpecifications": [
                {"ResourceType": "instance", "Tags": tags},
                {"ResourceType": "volume", "Tags": tags},
            ],
        }
        if zone:
            params["Placement"] = {"AvailabilityZone": zone}
        if request.capacity_type == "spot":
            params["InstanceMarketOptions"] = {
                "MarketType": "spot",
                "SpotOptions": {"SpotInstanceType": "one-time"},
            }
        if request.key_pair:
            params["KeyName"] = request.key_pair
        if request.instance_profile:
            params["IamInstanceProfile"] = _instance_profile(request.instance_profile)
        response = self.client.run_instances(**params)
        return _instance(response["Instances"][0])

    def terminate(self, instance_ids: Sequence[str]) -> None:
        if not instance_ids:
            return
        try:
            self.client.terminate_instances(InstanceIds=list(instance_ids))
        except (ClientError, BotoCoreError) as exc:
            raise cloud_error(exc) from exc

    def instances(self, pool: str) -> list[Instance]:
        return self._describe([{"Name": f"tag:{POOL_TAG}", "Values": [pool]}])

    def _describe(self, filters: list[dict[str, Any]]) -> list[Instance]:
        live = {"Name": "instance-state-name", "Values": list(_LIVE_STATES)}
        try:
            pages = self.client.get_paginator("describe_instances").paginate(
                Filters=[*filters, live]
            )
            return [
                _instance(raw)
                for page in pages
                for reservation in page.get("Reservations") or []
                for raw in reservation.get("Instances") or []
            ]
        except (ClientError, BotoCoreError) as exc:
            raise cloud_error(exc) from exc


def aws_provider(vendor: ComputingVendor) -> AwsProvider:
    """The provider for a cluster's `computingVendor` of type aws."""
    region = vendor.params.default_region
    if not region:
        raise ConfigError(
            "computingVendor.params.defaultRegion", "missing: the AWS region to launch nodes in"
        )
    if vendor.auth_type == "serviceAccountRole":
        return AwsProvider(boto3.client("ec2", region_name=region))
    access_key = _secret(vendor.params.access_key_path, "computingVendor.params.accessKeyPath")
    secret_key = _secret(vendor.params.secret_key_path, "computingVendor.params.secretKeyPath")
    return AwsProvider(
        boto3.client(
            "ec2",
            region_name=region,
            aws_access_key_id=access_key,
            aws_secret_access_key=secret_key,
        )
    )


def _secret(path: str | None, field: str) -> str:
    if not path:
        raise ConfigError(field, "missing: authType accessKey reads the key from this file")
    try:
        value = Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(field, f"cannot read {path}: {exc.strerror or exc}") from exc
    if not value:
        raise ConfigError(field, f"{path} is empty")
    return value


def _aws_factory(vendor: Mapping[str, Any]) -> CloudProvider:
    return aws_provider(ComputingVendor.model_validate(vendor))


BUILTIN_CLOUDS: Mapping[str, CloudFactory] = {"aws": _aws_factory}
"""The providers used when `NodePoolConfig.clouds` is None, per `computingVendor.type`."""


def served_clouds(clouds: Mapping[str, CloudFactory] | None) -> Mapping[str, CloudFactory]:
    """The vendors' factories in use: `clouds` when given, else the built-in ones."""
    return BUILTIN_CLOUDS if clouds is None else clouds


def cloud_provider(
    vendor: ComputingVendor, clouds: Mapping[str, CloudFactory] | None
) -> CloudProvider:
    """The provider of `vendor` from `clouds` (or the built-in ones); ConfigError naming
    `computingVendor.type` when none serves its type."""
    factories = served_clouds(clouds)
    factory = factories.get(vendor.type or "")
    if factory is None:
        served = ", ".join(sorted(factories)) or "none"
        raise ConfigError(
            "computingVendor.type", f"{vendor.type!r} cannot provision nodes (served: {served})"
        )
    return _provider(factory, vendor.model_dump_json(by_alias=True, exclude_none=True))


@functools.lru_cache(maxsize=16)
def _provider(factory: CloudFactory, vendor_json: str) -> CloudProvider:
    """One provider per factory and vendor settings, built once: building one makes a boto3
    client (credentials, endpoints), too slow for every reconcile. Changed settings are a new
    key; a failed build is not kept."""
    return factory(json.loads(vendor_json))
