"""How a GPU connects to the other GPUs of its node (NVLink, PCIe tiers), as upstream's
agent reports it. The scheduler reads NVLink peers from `status.nvlinkPeers` instead."""

from __future__ import annotations

from pydantic import Field

from tensorfusion.api.base import ApiModel


class NVLinkPeer(ApiModel):
    peer_uuid: str = Field(alias="peerUUID")
    link_count: int | None = Field(default=None, alias="linkCount")
    link_version: int | None = Field(default=None, alias="linkVersion")
    bandwidth_mbps: int | None = Field(default=None, alias="bandwidthMBps")


class NVLinkInfo(ApiModel):
    peer_count: int | None = Field(default=None, alias="peerCount")
    total_link_count: int | None = Field(default=None, alias="totalLinkCount")
    total_bandwidth_mbps: int | None = Field(default=None, alias="totalBandwidthMBps")
    peers: list[NVLinkPeer] = Field(default_factory=list)


class TopologyPeer(ApiModel):
    peer_gpu_uuid: str = Field(alias="peerGPUUUID")
    tier: int
    """Lower is closer: the same board, switch, NUMA node, then the rest."""
    link_type: str | None = Field(default=None, alias="linkType")
    bandwidth: int | None = None


class GPUTopology(ApiModel):
    peers: list[TopologyPeer] = Field(default_factory=list)
