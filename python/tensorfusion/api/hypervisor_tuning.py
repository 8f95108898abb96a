"""A SchedulingConfigTemplate's settings for the hypervisor on each GPU node: freezing idle
workloads and resuming them (autoFreezeAndResume), and the tuning of its rate limiter and of
its queue of processes sharing a GPU. Numbers are kept as upstream writes them (strings)."""

from __future__ import annotations

from pydantic import Field

from tensorfusion.api.base import ApiModel
from tensorfusion.api.common import FreeForm, QoSLevel


class AutoFreeze(ApiModel):
    """Idle workloads of `qos` are frozen to memory, then to disk, after these idle times."""

    qos: QoSLevel | None = None
    enable: bool | None = None
    freeze_to_mem_ttl: str | None = Field(default=None, alias="freezeToMemTTL")
    freeze_to_disk_ttl: str | None = Field(default=None, alias="freezeToDiskTTL")


class IntelligenceWarmup(ApiModel):
    """Resume frozen workloads ahead of predicted use."""

    enable: bool | None = None
    model: str | None = None
    history_data_period: str | None = Field(default=None, alias="historyDataPeriod")
    prediction_period: str | None = Field(default=None, alias="predictionPeriod")


class AutoFreezeAndResume(ApiModel):
    auto_freeze: list[AutoFreeze] = Field(default_factory=list, alias="autoFreeze")
    intelligence_warmup: IntelligenceWarmup | None = Field(default=None, alias="intelligenceWarmup")


class ElasticRateLimitParameters(ApiModel):
    max_refill_rate: str | None = Field(default=None, alias="maxRefillRate")
    min_refill_rate: str | None = Field(default=None, alias="minRefillRate")
    filter_alpha: str | None = Field(default=None, alias="filterAlpha")
    kp: str | None = None
    ki: str | None = None
    kd: str | None = None
    integral_decay_factor: str | None = Field(default=None, alias="integralDecayFactor")
    burst_window: str | None = Field(default=None, alias="burstWindow")
    capacity_min: str | None = Field(default=None, alias="capacityMin")
    capacity_max: str | None = Field(default=None, alias="capacityMax")


class MultiProcessQueuingParameters(ApiModel):
    coefficient_low: str | None = Field(default=None, alias="coefficientLow")
    coefficient_medium: str | None = Field(default=None, alias="coefficientMedium")
    coefficient_high: str | None = Field(default=None, alias="coefficientHigh")
    computing_threshold_for_preempt: str | None = Field(
        default=None, alias="computingThresholdForPreempt"
    )
    computing_threshold_for_resume: str | None = Field(
        default=None, alias="computingThresholdForResume"
    )
    slow_start_ratio: str | None = Field(default=None, alias="slowStartRatio")
    trigger_preempt_duration: str | None = Field(default=None, alias="triggerPreemptDuration")
    trigger_resume_duration: str | None = Field(default=None, alias="triggerResumeDuration")


class HypervisorScheduling(ApiModel):
    auto_freeze_and_resume: AutoFreezeAndResume | None = Field(
        default=None, alias="autoFreezeAndResume"
    )
    elastic_rate_limit_parameters: ElasticRateLimitParameters | None = Field(
        default=None, alias="elasticRateLimitParameters"
    )
    multi_process_queuing_parameters: MultiProcessQueuingParameters | None = Field(
        default=None, alias="multiProcessQueuingParameters"
    )


class ReBalanceThreshold(ApiModel):
    match_any: FreeForm | None = Field(default=None, alias="matchAny")


class ReBalancer(ApiModel):
    """Moving workers between GPUs when load drifts apart."""

    enable: bool | None = None
    interval: str | None = None
    re_balance_cool_down_time: str | None = Field(default=None, alias="reBalanceCoolDownTime")
    threshold: ReBalanceThreshold | None = None
