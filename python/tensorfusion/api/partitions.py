"""GPU partitions (MIG-style slices made from a provider's virtualization templates): which
pod holds which slice of a GPU."""

from __future__ import annotations

from pydantic import Field

from tensorfusion.api.base import ApiModel


class AllocatedPartition(ApiModel):
    template_id: str = Field(alias="templateId")
    pod_uid: str = Field(alias="podUid")
    pod_name: str = Field(alias="podName")
    namespace: str
    allocated_at: str = Field(alias="allocatedAt")
    isolation_group_id: int | None = Field(default=None, alias="isolationGroupId")
    allocated_slot_start: int | None = Field(default=None, alias="allocatedSlotStart")
    allocated_slot_end: int | None = Field(default=None, alias="allocatedSlotEnd")
