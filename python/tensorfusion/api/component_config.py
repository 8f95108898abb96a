"""A pool's components (client, worker, hypervisor, node discovery): their images, pod
templates and the patches applied to the pods they join; and their rollout status."""

from __future__ import annotations

from pydantic import Field

from tensorfusion.api.base import ApiModel
from tensorfusion.api.common import FreeForm


class ClientConfig(ApiModel):
    """The client side injected into workload pods; the patches are strategic-merge patches."""

    image: str | None = None
    operator_endpoint: str | None = Field(default=None, alias="operatorEndpoint")
    remote_mode_image: str | None = Field(default=None, alias="remoteModeImage")
    embedded_mode_image: str | None = Field(default=None, alias="embeddedModeImage")
    patch_to_pod: FreeForm | None = Field(default=None, alias="patchToPod")
    patch_to_container: FreeForm | None = Field(default=None, alias="patchToContainer")
    patch_embedded_worker_to_pod: FreeForm | None = Field(
        default=None, alias="patchEmbeddedWorkerToPod"
    )
    patch_to_embedded_worker_container: FreeForm | None = Field(
        default=None, alias="patchToEmbeddedWorkerContainer"
    )


class PodComponent(ApiModel):
    """A component run as its own pods: the image and the pod template."""

    image: str | None = None
    pod_template: FreeForm | None = Field(default=None, alias="podTemplate")


class HypervisorConfig(ApiModel):
    image: str | None = None
    pod_template: FreeForm | None = Field(default=None, alias="podTemplate")
    port_number: int = Field(default=8000, ge=0, le=65535, alias="portNumber")
    enable_vector: bool | None = Field(default=None, alias="enableVector")
    vector_image: str | None = Field(default=None, alias="vectorImage")


class ComponentConfig(ApiModel):
    client: ClientConfig | None = None
    worker: PodComponent | None = None
    hypervisor: HypervisorConfig | None = None
    node_discovery: PodComponent | None = Field(default=None, alias="nodeDiscovery")


class ComponentStatus(ApiModel):
    """Per component: the version running, whether its config is synced, rollout percent."""

    client: str | None = None
    client_config_synced: bool | None = Field(default=None, alias="clientConfigSynced")
    client_update_progress: int | None = Field(default=None, alias="clientUpdateProgress")
    worker: str | None = None
    worker_config_synced: bool | None = Field(default=None, alias="workerConfigSynced")
    worker_update_progress: int | None = Field(default=None, alias="workerUpdateProgress")
    hypervisor: str | None = None
    hypervisor_config_synced: bool | None = Field(default=None, alias="hypervisorConfigSynced")
    hypervisor_update_progress: int | None = Field(default=None, alias="hypervisorUpdateProgress")
