"""The AWS provider against moto (a stand-in for the EC2 and IAM APIs, in process): what a
launch asks EC2 for, the next instance type or zone when one lacks capacity, the vendor's
refusals as CloudError kinds, and the pool's instances by tag. Refusals moto cannot produce
are injected on the client's own request path (a botocore before-call handler)."""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3  # type: ignore[import-untyped]
import pytest
from botocore.exceptions import ClientError, NoCredentialsError  # type: ignore[import-untyped]
from moto import mock_aws

from tensorfusion.api.cluster import ComputingVendor
from tensorfusion.errors import CloudError, ConfigError
from tensorfusion.operator.nodepool.aws import (
    AwsProvider,
    aws_provider,
    cloud_error,
    cloud_provider,
)
from tensorfusion.operator.nodepool.cloud import CLAIM_TAG, POOL_TAG, LaunchRequest

REGION = "us-east-1"
IMAGE = "ami-12c6146b"
"""An image moto knows."""


@pytest.fixture(autouse=True)
def fake_aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Fake credentials and no config file, so that nothing could reach AWS."""
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_CONFIG_FILE": "/nonexistent",
        "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent",
    }.items():
        monkeypatch.setenv(key, value)
    with mock_aws():
        yield


@pytest.fixture
def ec2() -> Any:
    return boto3.client("ec2", region_name=REGION)


def request(**changes: Any) -> LaunchRequest:
    fields: dict[str, Any] = {
        "claim": "shared-1-0",
        "pool": "shared",
        "instance_types": ("g6.xlarge", "g6.12xlarge"),
        "zones": ("us-east-1b", "us-east-1c"),
        "image_id": IMAGE,
        "labels": {"tensor-fusion.ai/gpupool": "shared", "tensor-fusion.ai/vendor": "nvidia"},
    }
    fields.update(changes)
    return LaunchRequest(**fields)


def refuse(
    client: Any, code: str, when: Callable[[dict[str, Any]], bool] = lambda params: True
) -> list[dict[str, Any]]:
    """Make RunInstances fail with `code` for the calls `when` picks; returns every call's
    parameters (as sent: `Placement.AvailabilityZone`)."""
    calls: list[dict[str, Any]] = []

    def handler(params: dict[str, Any], **_: Any) -> None:
        calls.append(params["body"])
        if when(params["body"]):
            raise ClientError({"Error": {"Code": code, "Message": "refused"}}, "RunInstances")

    client.meta.events.register("before-call.ec2.RunInstances", handler)
    return calls


def described(client: Any, instance_id: str) -> dict[str, Any]:
    found: dict[str, Any] = client.describe_instances(InstanceIds=[instance_id])["Reservations"][0][
        "Instances"
    ][0]
    return found


def test_launch_tags_places_and_registers_the_node(ec2: Any) -> None:
    boto3.client("iam").create_instance_profile(InstanceProfileName="tensor-fusion")
    provider = AwsProvider(ec2)
    result = provider.launch(
        request(
            key_pair="ec2-ssh-key-pair",
            instance_profile="arn:aws:iam::123456789012:role/tensor-fusion",
        )
    )
    instance = result.instance
    assert (instance.instance_type, instance.zone) == ("g6.xlarge", "us-east-1b")
    assert instance.claim == "shared-1-0"
    assert result.passed_over == ()
    raw = described(ec2, instance.instance_id)
    tags = {t["Key"]: t["Value"] for t in raw["Tags"]}
    assert tags == {CLAIM_TAG: "shared-1-0", POOL_TAG: "shared", "Name": "shared-1-0"}
    assert raw["KeyName"] == "ec2-ssh-key-pair"
    assert raw["ImageId"] == IMAGE
    assert raw["IamInstanceProfile"]["Arn"].endswith("instance-profile/tensor-fusion")
    assert raw["ClientToken"] == "shared-1-0"
    assert "InstanceLifecycle" not in raw  # on-demand
    script = base64.b64decode(
        ec2.describe_instance_attribute(InstanceId=instance.instance_id, Attribute="userData")[
            "UserData"
        ]["Value"]
    ).decode()
    assert "--node-labels=tensor-fusion.ai/gpupool=shared,tensor-fusion.ai/vendor=nvidia" in script


def honour_client_tokens(client: Any) -> list[str]:
    """A stand-in for EC2's idempotency, which moto lacks: a RunInstances call repeating an
    earlier call's ClientToken is answered with that call's instances, not new ones. Returns
    the ClientToken of every call."""
    tokens: list[str] = []
    answers: dict[str, Any] = {}

    def before(params: dict[str, Any], **_: Any) -> Any:
        token = params["body"]["ClientToken"]
        tokens.append(token)
        return answers.get(token)

    def after(http_response: Any, parsed: dict[str, Any], **_: Any) -> None:
        answers.setdefault(tokens[-1], (http_response, parsed))

    client.meta.events.register("before-call.ec2.RunInstances", before)
    client.meta.events.register("after-call.ec2.RunInstances", after)
    return tokens


def test_a_launch_the_listing_does_not_show_yet_is_not_repeated(
    ec2: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DescribeInstances is eventually consistent: right after a launch it may not list the
    instance, and then only the ClientToken keeps a second launch from making another."""
    tokens = honour_client_tokens(ec2)
    provider = AwsProvider(ec2)
    monkeypatch.setattr(provider, "_claimed", lambda request: None)
    first = provider.launch(request())
    again = provider.launch(request())
    assert tokens == ["shared-1-0", "shared-1-0"]
    assert again.instance.instance_id == first.instance.instance_id
    assert [i.instance_id for i in provider.instances("shared")] == [first.instance.instance_id]
    provider.launch(request(claim="shared-1-1"))
    assert len(provider.instances("shared")) == 2  # another claim, another instance


def test_a_repeated_launch_returns_the_claims_instance(ec2: Any) -> None:
    calls = refuse(ec2, "Unused", when=lambda params: False)
    provider = AwsProvider(ec2)
    first = provider.launch(request())
    again = provider.launch(request())
    assert again.instance.instance_id == first.instance.instance_id
    assert [c["ClientToken"] for c in calls] == ["shared-1-0"]  # one RunInstances only
    assert len(provider.instances("shared")) == 1


def test_spot_launch_asks_for_the_spot_market(ec2: Any) -> None:
    instance = AwsProvider(ec2).launch(request(capacity_type="spot")).instance
    assert described(ec2, instance.instance_id)["InstanceLifecycle"] == "spot"


def test_no_capacity_tries_the_next_zone_then_the_next_type(ec2: Any) -> None:
    calls = refuse(
        ec2, "InsufficientInstanceCapacity", when=lambda p: p["InstanceType"] == "g6.xlarge"
    )
    result = AwsProvider(ec2).launch(request())
    tried = [(c["InstanceType"], c["Placement.AvailabilityZone"]) for c in calls]
    assert tried == [
        ("g6.xlarge", "us-east-1b"),
        ("g6.xlarge", "us-east-1c"),
        ("g6.12xlarge", "us-east-1b"),
    ]
    assert result.instance.instance_type == "g6.12xlarge"
    assert result.passed_over == (
        (
            "g6.xlarge",
            "InsufficientInstanceCapacity in us-east-1b, "
            "InsufficientInstanceCapacity in us-east-1c",
        ),
    )


def test_a_zone_without_capacity_is_passed_for_the_next(ec2: Any) -> None:
    refuse(
        ec2,
        "InsufficientInstanceCapacity",
        when=lambda p: p["Placement.AvailabilityZone"] == "us-east-1b",
    )
    result = AwsProvider(ec2).launch(request())
    assert (result.instance.instance_type, result.instance.zone) == ("g6.xlarge", "us-east-1c")


def test_no_capacity_anywhere_is_a_capacity_error_naming_each_type(ec2: Any) -> None:
    refuse(ec2, "InsufficientInstanceCapacity")
    with pytest.raises(CloudError) as caught:
        AwsProvider(ec2).launch(request(zones=()))
    assert (caught.value.kind, caught.value.code, caught.value.retryable) == (
        "capacity",
        "InsufficientInstanceCapacity",
        True,
    )
    assert "g6.xlarge: InsufficientInstanceCapacity" in str(caught.value)
    assert "g6.12xlarge: InsufficientInstanceCapacity" in str(caught.value)
    assert AwsProvider(ec2).instances("shared") == []


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        ("RequestLimitExceeded", "throttled"),
        ("Throttling", "throttled"),
        ("UnauthorizedOperation", "credentials"),
        ("AuthFailure", "credentials"),
        ("InvalidAMIID.NotFound", "invalid"),
        ("InvalidKeyPair.NotFound", "invalid"),
        ("InvalidParameterValue", "invalid"),
        ("InternalError", "other"),
    ],
)
def test_refusals_other_than_capacity_stop_the_launch(ec2: Any, code: str, kind: str) -> None:
    calls = refuse(ec2, code)
    with pytest.raises(CloudError) as caught:
        AwsProvider(ec2).launch(request())
    assert (caught.value.kind, caught.value.code) == (kind, code)
    assert len(calls) == 1  # no other type or zone is tried


def test_missing_credentials_are_a_credentials_error(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(key)
    session = boto3.session.Session(region_name=REGION)
    client = session.client("ec2")
    with pytest.raises(CloudError) as caught:
        AwsProvider(client).instances("shared")
    assert (caught.value.kind, caught.value.retryable) == ("credentials", False)
    assert cloud_error(NoCredentialsError()).kind == "credentials"


def test_a_launch_without_an_image_names_where_to_set_it(ec2: Any) -> None:
    with pytest.raises(CloudError) as caught:
        AwsProvider(ec2).launch(request(image_id=None))
    assert caught.value.kind == "invalid"
    assert "nodeProvisioner.nodeClass" in str(caught.value)
    assert "extraParams.imageId" in str(caught.value)


def test_instances_lists_the_pools_live_ones_and_terminate_ends_them(ec2: Any) -> None:
    provider = AwsProvider(ec2)
    mine = provider.launch(request(claim="shared-1-0")).instance
    other = provider.launch(request(claim="shared-1-1")).instance
    provider.launch(request(claim="other-1-0", pool="other"))
    assert {i.instance_id for i in provider.instances("shared")} == {
        mine.instance_id,
        other.instance_id,
    }
    provider.terminate([mine.instance_id])
    assert [i.instance_id for i in provider.instances("shared")] == [other.instance_id]
    provider.terminate([])  # nothing to do, no call


def test_terminating_an_unknown_instance_is_an_invalid_request(ec2: Any) -> None:
    with pytest.raises(CloudError) as caught:
        AwsProvider(ec2).terminate(["i-0123456789abcdef0"])
    assert caught.value.code.startswith("InvalidInstanceID")


def vendor(**params: Any) -> ComputingVendor:
    body: dict[str, Any] = {"type": "aws", "params": params}
    if "accessKeyPath" in params:
        body["authType"] = "accessKey"
    return ComputingVendor.model_validate(body)


def test_the_provider_for_a_vendor_needs_its_region() -> None:
    with pytest.raises(ConfigError) as caught:
        aws_provider(vendor())
    assert caught.value.field == "computingVendor.params.defaultRegion"


def test_service_account_role_signs_in_with_the_pods_web_identity(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """What the pod identity webhook injects on EKS (IRSA): a role and a token file."""
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(key, raising=False)
    (tmp_path / "token").write_text("eyJ-token")
    monkeypatch.setenv("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/tensor-fusion")
    monkeypatch.setenv("AWS_WEB_IDENTITY_TOKEN_FILE", str(tmp_path / "token"))
    provider = aws_provider(vendor(defaultRegion="eu-west-1"))
    assert provider.client.meta.region_name == "eu-west-1"
    credentials = provider.client._request_signer._credentials
    assert credentials.method == "assume-role-with-web-identity"


def test_access_keys_come_from_the_mounted_files(tmp_path: Path) -> None:
    (tmp_path / "id").write_text("AKIDEXAMPLE\n")
    (tmp_path / "secret").write_text("s3cr3t\n")
    provider = aws_provider(
        vendor(
            defaultRegion=REGION,
            accessKeyPath=str(tmp_path / "id"),
            secretKeyPath=str(tmp_path / "secret"),
        )
    )
    credentials = provider.client._request_signer._credentials
    assert (credentials.access_key, credentials.secret_key) == ("AKIDEXAMPLE", "s3cr3t")


def test_an_unreadable_key_file_names_its_field(tmp_path: Path) -> None:
    (tmp_path / "id").write_text("AKIDEXAMPLE")
    with pytest.raises(ConfigError) as caught:
        aws_provider(
            vendor(
                defaultRegion=REGION,
                accessKeyPath=str(tmp_path / "id"),
                secretKeyPath=str(tmp_path / "missing"),
            )
        )
    assert caught.value.field == "computingVendor.params.secretKeyPath"


def test_a_vendors_provider_is_built_once_and_anew_when_its_settings_change() -> None:
    built: list[dict[str, Any]] = []

    def factory(settings: Any) -> AwsProvider:
        built.append(dict(settings))
        return AwsProvider(boto3.client("ec2", region_name=REGION))

    clouds = {"aws": factory}
    first = cloud_provider(vendor(defaultRegion=REGION), clouds)
    assert cloud_provider(vendor(defaultRegion=REGION), clouds) is first
    moved = cloud_provider(vendor(defaultRegion="eu-west-1"), clouds)
    assert moved is not first
    assert [b["params"]["defaultRegion"] for b in built] == [REGION, "eu-west-1"]


def test_a_provider_that_cannot_be_built_is_tried_again() -> None:
    calls: list[str] = []

    def factory(settings: Any) -> AwsProvider:
        calls.append("built")
        raise ConfigError("computingVendor.params.secretKeyPath", "cannot read it")

    for _ in range(2):
        with pytest.raises(ConfigError):
            cloud_provider(vendor(defaultRegion=REGION), {"aws": factory})
    assert calls == ["built", "built"]


def test_the_built_in_providers_serve_aws_only() -> None:
    assert isinstance(cloud_provider(vendor(defaultRegion=REGION), None), AwsProvider)
    gcp = ComputingVendor.model_validate({"type": "gcp", "params": {"defaultRegion": "x"}})
    with pytest.raises(ConfigError) as caught:
        cloud_provider(gcp, None)
    assert caught.value.field == "computingVendor.type"
