"""A stand-in for what happens on an EC2 GPU instance after launch, for tests: no instance
boots here (moto only records them), so this registers, for each running instance of a pool
that has no Node yet, the Node its kubelet would register (named after the instance's
private DNS name, labelled from the `--node-labels` its user data sets, providerID
`aws:///<zone>/<instance id>`) and the GPU objects the node agent would report for its
instance type. GPUs of nodes that are gone go with them, as their agent does.

Also the guide's R15 cluster: TensorFusion's own node pool on AWS."""

from __future__ import annotations

import base64
import re
from collections.abc import Sequence
from typing import Any

from tensorfusion.api.base import API_VERSION
from tensorfusion.api.gpu_links import gpu_node_name
from tensorfusion.operator.nodepool.cloud import POOL_TAG
from tensorfusion.operator.nodepool.instance_types import CATALOG, INSTANCE_TYPE_KEY
from tensorfusion.store.interface import ClusterStore
from tests.kube.instance_node import register_instance_node

REGION = "us-east-1"
ZONES = ["us-east-1b", "us-east-1c", "us-east-1d"]
IMAGE = "ami-12c6146b"
"""An image moto knows."""
NODE_LABELS = {"tensor-fusion.ai/arch": "Ampere", "tensor-fusion.ai/vendor": "nvidia"}


def r15_cluster(
    capacity: dict[str, Any],
    *,
    name: str = "tf",
    vendor: dict[str, Any] | None = None,
    instance_types: Sequence[str] = ("g6.xlarge", "g6.12xlarge"),
) -> dict[str, Any]:
    """The guide's R15 cluster: computing vendor aws (serviceAccountRole, defaultRegion,
    iamRole, keyPairName) and a default pool `shared` in provisioningMode Provisioned
    (`instance_types`, by default g6.xlarge then g6.12xlarge; on-demand; three zones; node
    class `tf-node-class`)."""
    computing_vendor = {
        "authType": "serviceAccountRole",
        "enable": True,
        "name": "aws-irsa-connection",
        "params": {
            "defaultRegion": REGION,
            "iamRole": "arn:aws:iam::123456789012:role/tensor-fusion",
            "extraParams": {"keyPairName": "ec2-ssh-key-pair"},
        },
        "type": "aws",
    }
    requirements = [
        ("karpenter.sh/capacity-type", ["on-demand", "spot"]),
        (INSTANCE_TYPE_KEY, list(instance_types)),
        ("topology.kubernetes.io/region", [REGION]),
        ("topology.kubernetes.io/zone", ZONES),
        ("kubernetes.io/os", ["linux"]),
    ]
    spec: dict[str, Any] = {
        "gpuPools": [
            {
                "name": "shared",
                "isDefault": True,
                "specTemplate": {
                    "capacityConfig": capacity,
                    "nodeManagerConfig": {
                        "provisioningMode": "Provisioned",
                        "nodeProvisioner": {
                            "gpuNodeLabels": NODE_LABELS,
                            "gpuNodeAnnotations": {"tensor-fusion.ai/provisioned": "true"},
                            "gpuRequirements": [
                                {"key": key, "operator": "In", "values": values}
                                for key, values in requirements
                            ],
                            "nodeClass": "tf-node-class",
                        },
                        "nodeCompaction": {"period": "5m"},
                    },
                },
            }
        ],
        "computingVendor": computing_vendor if vendor is None else vendor,
    }
    if not spec["computingVendor"]:
        del spec["computingVendor"]
    return {
        "apiVersion": API_VERSION,
        "kind": "TensorFusionCluster",
        "metadata": {"name": name},
        "spec": spec,
    }


def node_class(image: str = IMAGE) -> dict[str, Any]:
    """The pool's GPUNodeClass `tf-node-class`: the image its nodes boot."""
    return {
        "apiVersion": API_VERSION,
        "kind": "GPUNodeClass",
        "metadata": {"name": "tf-node-class"},
        "spec": {"osImageSelectorTerms": [{"id": image}]},
    }


def _node_labels(ec2: Any, instance_id: str) -> dict[str, str]:
    """The labels the user data passes the kubelet (`--node-labels=k=v,...`)."""
    attribute = ec2.describe_instance_attribute(InstanceId=instance_id, Attribute="userData")
    script = base64.b64decode(attribute["UserData"]["Value"]).decode()
    found = re.search(r"--node-labels=([^'\s]*)", script)
    assert found, f"the user data of {instance_id} sets no node labels:\n{script}"
    return dict(pair.split("=", 1) for pair in found.group(1).split(","))


def register_instance_nodes(store: ClusterStore, ec2: Any, pool: str) -> list[str]:
    """Register a Node (and its GPUs) for every running instance of `pool` without one;
    returns the names of the nodes registered."""
    registered = []
    pages = ec2.get_paginator("describe_instances").paginate(
        Filters=[
            {"Name": f"tag:{POOL_TAG}", "Values": [pool]},
            {"Name": "instance-state-name", "Values": ["running"]},
        ]
    )
    known = {node["metadata"]["name"] for node in store.list("Node")}
    for page in pages:
        for reservation in page["Reservations"]:
            for instance in reservation["Instances"]:
                name = instance["PrivateDnsName"]
                if name in known:
                    continue
                _register(store, ec2, instance, name, pool)
                registered.append(name)
    return registered


def _register(
    store: ClusterStore, ec2: Any, instance: dict[str, Any], name: str, pool: str
) -> None:
    shape = CATALOG[instance["InstanceType"]]
    zone = instance["Placement"]["AvailabilityZone"]
    labels = {**_node_labels(ec2, instance["InstanceId"]), "topology.kubernetes.io/zone": zone}
    register_instance_node(
        store,
        name,
        shape,
        pool=pool,
        labels=labels,
        cpu_cores=4,
        uuid_stem=instance["InstanceId"],
        spec={"providerID": f"aws:///{zone}/{instance['InstanceId']}"},
    )


def forget_gone_nodes(store: ClusterStore) -> list[str]:
    """Delete the GPU objects of nodes that no longer exist; returns those GPUs' names."""
    nodes = {node["metadata"]["name"] for node in store.list("Node")}
    gone = [gpu for gpu in store.list("GPU") if gpu_node_name(gpu) not in nodes]
    for gpu in gone:
        store.delete("GPU", gpu["metadata"]["name"])
    return [gpu["metadata"]["name"] for gpu in gone]
