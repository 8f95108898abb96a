"""Tests for tensorfusion.api.annotations: the pod label and annotations of COMPAT.md
("Pod label and annotations") read into a typed WorkloadRequest."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tensorfusion.api import annotations as ann
from tensorfusion.api.annotations import (
    ANNOTATION_KEYS,
    COMPUTE_PERCENT_LIMIT,
    COMPUTE_PERCENT_REQUEST,
    DISABLE_FEATURES,
    ENABLED_LABEL,
    ENABLED_REPLICAS,
    GANG_ANNOTATION_KEYS,
    GANG_MIN_MEMBERS,
    GANG_TIMEOUT,
    GPU_COUNT,
    GPU_IDS,
    GPU_MODEL,
    GPU_POOL,
    INJECT_CONTAINER,
    IS_LOCAL_GPU,
    QOS,
    TFLOPS_LIMIT,
    TFLOPS_REQUEST,
    VRAM_LIMIT,
    VRAM_REQUEST,
    WORKLOAD_PROFILE,
    GangRequest,
    WorkloadRequest,
    parse_workload_request,
    read_gang_request,
    read_workload_request,
    unknown_annotation_keys,
)
from tensorfusion.api.common import QoSLevel
from tensorfusion.api.quantity import Quantity
from tensorfusion.errors import AnnotationError

Mi, Gi = 1024**2, 1024**3
ENABLED = {ENABLED_LABEL: "true"}

# The annotation names listed in COMPAT.md, plus gpu-ids, which the scheduler writes.
COMPAT_ANNOTATION_NAMES = (
    "tflops-request",
    "tflops-limit",
    "vram-request",
    "vram-limit",
    "compute-percent-request",
    "compute-percent-limit",
    "gpu-count",
    "gpupool",
    "qos",
    "gpu-model",
    "is-local-gpu",
    "workload-profile",
    "enabled-replicas",
    "inject-container",
    "disable-features",
    "gpu-ids",
)


def read(
    annotations: Mapping[str, str],
    labels: Mapping[str, str] | None = None,
    containers: Sequence[str] | None = None,
) -> tuple[WorkloadRequest | None, list[AnnotationError]]:
    return read_workload_request(labels if labels is not None else {}, annotations, containers)


def ok(
    annotations: Mapping[str, str],
    labels: Mapping[str, str] | None = None,
    containers: Sequence[str] | None = None,
) -> WorkloadRequest:
    """Read annotations that must be valid; fail the test with the problems otherwise."""
    request, problems = read(annotations, labels, containers)
    assert problems == [], [str(p) for p in problems]
    assert request is not None
    return request


def only_problem(
    annotations: Mapping[str, str],
    labels: Mapping[str, str] | None = None,
    containers: Sequence[str] | None = None,
) -> AnnotationError:
    """Read annotations with exactly one problem; return it."""
    request, problems = read(annotations, labels, containers)
    assert request is None
    assert len(problems) == 1, [str(p) for p in problems]
    return problems[0]


# --- key constants ---------------------------------------------------------------------------


def test_annotation_keys_are_the_compat_names_under_the_prefix_each_once() -> None:
    assert ann.PREFIX == "tensor-fusion.ai/"
    assert len(ANNOTATION_KEYS) == len(set(ANNOTATION_KEYS))
    assert set(ANNOTATION_KEYS) == {f"tensor-fusion.ai/{name}" for name in COMPAT_ANNOTATION_NAMES}


@pytest.mark.parametrize(
    ("constant", "name"),
    [
        (TFLOPS_REQUEST, "tflops-request"),
        (TFLOPS_LIMIT, "tflops-limit"),
        (VRAM_REQUEST, "vram-request"),
        (VRAM_LIMIT, "vram-limit"),
        (COMPUTE_PERCENT_REQUEST, "compute-percent-request"),
        (COMPUTE_PERCENT_LIMIT, "compute-percent-limit"),
        (GPU_COUNT, "gpu-count"),
        (GPU_POOL, "gpupool"),
        (QOS, "qos"),
        (GPU_MODEL, "gpu-model"),
        (IS_LOCAL_GPU, "is-local-gpu"),
        (WORKLOAD_PROFILE, "workload-profile"),
        (ENABLED_REPLICAS, "enabled-replicas"),
        (INJECT_CONTAINER, "inject-container"),
        (DISABLE_FEATURES, "disable-features"),
        (GPU_IDS, "gpu-ids"),
    ],
)
def test_each_annotation_constant_is_its_compat_key_and_listed_once(
    constant: str, name: str
) -> None:
    assert constant == f"tensor-fusion.ai/{name}"
    assert ANNOTATION_KEYS.count(constant) == 1


def test_enabled_is_a_label_key_not_an_annotation() -> None:
    assert ENABLED_LABEL == "tensor-fusion.ai/enabled"
    assert ENABLED_LABEL not in ANNOTATION_KEYS


# --- R9 example and defaulting ---------------------------------------------------------------


def test_r9_annotations_give_exact_values_and_high_qos() -> None:
    request = ok(
        {
            TFLOPS_REQUEST: "100",
            VRAM_REQUEST: "16Gi",
            TFLOPS_LIMIT: "100",
            VRAM_LIMIT: "16Gi",
        },
        labels=ENABLED,
    )
    assert request.enabled is True
    assert request.tflops_request == Quantity.from_int(100)
    assert request.tflops_limit == Quantity.from_int(100)
    assert request.tflops_request is not None
    assert request.tflops_request.exact == 100
    assert request.vram_request == 17179869184
    assert request.vram_limit == 17179869184
    assert request.effective_qos() == "high"
    # Nothing else was asked for.
    assert request.compute_percent_request is None
    assert request.compute_percent_limit is None
    assert request.gpu_count == 1
    assert request.qos is None


def test_no_label_means_not_enabled() -> None:
    assert ok({}).enabled is False
    assert ok({}, labels={ENABLED_LABEL: "false"}).enabled is False


def test_request_defaults_to_limit_when_only_limit_given() -> None:
    request = ok({TFLOPS_LIMIT: "20", VRAM_LIMIT: "4Gi", COMPUTE_PERCENT_LIMIT: "30"})
    assert request.tflops_request == Quantity.from_int(20)
    assert request.tflops_limit == Quantity.from_int(20)
    assert request.vram_request == 4 * Gi
    assert request.vram_limit == 4 * Gi
    # TFLOPS win over percent, so check the percent pair on its own.
    percent = ok({COMPUTE_PERCENT_LIMIT: "30"})
    assert percent.compute_percent_request == Fraction(30)
    assert percent.compute_percent_limit == Fraction(30)


def test_limit_defaults_to_request_when_only_request_given() -> None:
    request = ok({TFLOPS_REQUEST: "7.5", VRAM_REQUEST: "512Mi"})
    assert request.tflops_request == Quantity.parse("7.5")
    assert request.tflops_limit == Quantity.parse("7.5")
    assert request.vram_request == 512 * Mi
    assert request.vram_limit == 512 * Mi
    percent = ok({COMPUTE_PERCENT_REQUEST: "25"})
    assert percent.compute_percent_request == Fraction(25)
    assert percent.compute_percent_limit == Fraction(25)


def test_nothing_given_leaves_amounts_unset() -> None:
    request = ok({}, labels=ENABLED)
    assert request.tflops_request is None
    assert request.tflops_limit is None
    assert request.vram_request is None
    assert request.vram_limit is None
    assert request.compute_percent_request is None
    assert request.compute_percent_limit is None


def test_tflops_may_be_fractional() -> None:
    request = ok({TFLOPS_REQUEST: "500m", TFLOPS_LIMIT: "1.5"})
    assert request.tflops_request is not None
    assert request.tflops_limit is not None
    assert request.tflops_request.exact == Fraction(1, 2)
    assert request.tflops_limit.exact == Fraction(3, 2)


# --- QoS default rule ------------------------------------------------------------------------

GUARANTEED = {TFLOPS_REQUEST: "10", TFLOPS_LIMIT: "10", VRAM_REQUEST: "1Gi", VRAM_LIMIT: "1Gi"}
BURSTABLE = {TFLOPS_REQUEST: "10", TFLOPS_LIMIT: "20", VRAM_REQUEST: "1Gi", VRAM_LIMIT: "2Gi"}


@pytest.mark.parametrize("explicit", ["low", "medium", "high", "critical"])
def test_explicit_qos_wins(explicit: QoSLevel) -> None:
    for amounts in (GUARANTEED, BURSTABLE, {}):
        request = ok({**amounts, QOS: explicit})
        assert request.qos == explicit
        assert request.effective_qos() == explicit
        assert request.effective_qos(pool_default="low") == explicit


def test_request_equal_limit_for_tflops_and_vram_is_high_over_pool_default() -> None:
    request = ok(GUARANTEED)
    assert request.effective_qos() == "high"
    assert request.effective_qos(pool_default="low") == "high"


def test_limits_alone_are_high_because_requests_default_to_them() -> None:
    assert ok({TFLOPS_LIMIT: "10", VRAM_LIMIT: "1Gi"}).effective_qos(pool_default="low") == "high"


def test_equal_written_differently_is_still_high() -> None:
    request = ok(
        {TFLOPS_REQUEST: "1", TFLOPS_LIMIT: "1000m", VRAM_REQUEST: "1Gi", VRAM_LIMIT: "1073741824"}
    )
    assert request.effective_qos() == "high"


@pytest.mark.parametrize("pool_default", ["low", "medium", "high", "critical"])
def test_burstable_takes_the_pool_default(pool_default: QoSLevel) -> None:
    assert ok(BURSTABLE).effective_qos(pool_default=pool_default) == pool_default


def test_burstable_without_pool_default_is_medium() -> None:
    assert ok(BURSTABLE).effective_qos() == "medium"
    assert ok(BURSTABLE).effective_qos(None) == "medium"


def test_nothing_asked_is_pool_default_else_medium() -> None:
    assert ok({}).effective_qos() == "medium"
    assert ok({}).effective_qos(pool_default="critical") == "critical"


def test_only_tflops_equal_with_vram_burst_is_not_high() -> None:
    request = ok({TFLOPS_REQUEST: "10", TFLOPS_LIMIT: "10", VRAM_REQUEST: "1Gi", VRAM_LIMIT: "2Gi"})
    assert request.effective_qos() == "medium"
    assert request.effective_qos(pool_default="low") == "low"


def test_only_vram_equal_with_tflops_burst_is_not_high() -> None:
    request = ok({TFLOPS_REQUEST: "10", TFLOPS_LIMIT: "20", VRAM_REQUEST: "1Gi", VRAM_LIMIT: "1Gi"})
    assert request.effective_qos() == "medium"


def test_tflops_equal_without_any_vram_is_not_high() -> None:
    assert ok({TFLOPS_REQUEST: "10", TFLOPS_LIMIT: "10"}).effective_qos() == "medium"
    assert ok({VRAM_REQUEST: "1Gi", VRAM_LIMIT: "1Gi"}).effective_qos() == "medium"


# --- compute-percent alternative -------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"), [("50", Fraction(50)), ("12.5", Fraction(25, 2)), ("100", Fraction(100))]
)
def test_compute_percent_valid_values(text: str, value: Fraction) -> None:
    request = ok({COMPUTE_PERCENT_REQUEST: text, COMPUTE_PERCENT_LIMIT: text})
    assert request.compute_percent_request == value
    assert request.compute_percent_limit == value
    assert request.tflops_request is None
    assert request.tflops_limit is None


@pytest.mark.parametrize("text", ["0", "100.5", "-1", "abc", "1/2", "101"])
@pytest.mark.parametrize("key", [COMPUTE_PERCENT_REQUEST, COMPUTE_PERCENT_LIMIT])
def test_compute_percent_out_of_bounds_or_malformed_is_rejected(key: str, text: str) -> None:
    problem = only_problem({key: text})
    assert problem.key == key
    assert repr(text) in str(problem)


def test_compute_percent_limit_below_request_is_rejected() -> None:
    problem = only_problem({COMPUTE_PERCENT_REQUEST: "50", COMPUTE_PERCENT_LIMIT: "20"})
    assert problem.key == COMPUTE_PERCENT_LIMIT


@pytest.mark.parametrize(
    "tflops",
    [{TFLOPS_REQUEST: "10"}, {TFLOPS_LIMIT: "10"}, {TFLOPS_REQUEST: "5", TFLOPS_LIMIT: "10"}],
)
def test_tflops_win_over_compute_percent(tflops: dict[str, str]) -> None:
    request = ok({**tflops, COMPUTE_PERCENT_REQUEST: "20", COMPUTE_PERCENT_LIMIT: "40"})
    assert request.compute_percent_request is None
    assert request.compute_percent_limit is None
    assert request.tflops_limit == Quantity.from_int(10)


# --- integer, boolean, enum and name annotations ---------------------------------------------


@pytest.mark.parametrize(("text", "count"), [("1", 1), ("2", 2), ("8", 8), ("128", 128)])
def test_gpu_count_in_range(text: str, count: int) -> None:
    assert ok({GPU_COUNT: text}).gpu_count == count


def test_gpu_count_defaults_to_one() -> None:
    assert ok({}).gpu_count == 1


@pytest.mark.parametrize("text", ["0", "129", "two", "1.5", "", "-1", " "])
def test_gpu_count_out_of_range_or_not_whole_is_rejected(text: str) -> None:
    assert only_problem({GPU_COUNT: text}).key == GPU_COUNT


# Digits of other scripts pass str.isdigit() but are not numbers to Kubernetes; they must be
# reported on the key, neither read as a number nor raised as a bare ValueError.
@pytest.mark.parametrize("key", [GPU_COUNT, ENABLED_REPLICAS])
@pytest.mark.parametrize("text", ["\u00b2", "\u0661", "\uff11", "1\u00b2"])
def test_non_ascii_digits_are_reported_on_the_key(key: str, text: str) -> None:
    problem = only_problem({key: text})
    assert problem.key == key
    assert repr(text) in str(problem)


@pytest.mark.parametrize(("text", "replicas"), [("0", 0), ("1", 1), ("250", 250)])
def test_enabled_replicas_non_negative(text: str, replicas: int) -> None:
    assert ok({ENABLED_REPLICAS: text}).enabled_replicas == replicas


def test_enabled_replicas_unset_is_none() -> None:
    assert ok({}).enabled_replicas is None


@pytest.mark.parametrize("text", ["-1", "abc", "1.0", ""])
def test_enabled_replicas_invalid_is_rejected(text: str) -> None:
    assert only_problem({ENABLED_REPLICAS: text}).key == ENABLED_REPLICAS


@pytest.mark.parametrize(("text", "value"), [("true", True), ("false", False)])
def test_is_local_gpu_true_false(text: str, value: bool) -> None:
    assert ok({IS_LOCAL_GPU: text}).is_local_gpu is value


@pytest.mark.parametrize("text", ["True", "FALSE", "yes", "1", "0", ""])
def test_is_local_gpu_other_text_is_rejected(text: str) -> None:
    assert only_problem({IS_LOCAL_GPU: text}).key == IS_LOCAL_GPU


@pytest.mark.parametrize("level", ["low", "medium", "high", "critical"])
def test_qos_levels_accepted(level: str) -> None:
    assert ok({QOS: level}).qos == level


@pytest.mark.parametrize("text", ["High", "urgent", "guaranteed", ""])
def test_qos_outside_enum_is_rejected(text: str) -> None:
    assert only_problem({QOS: text}).key == QOS


@pytest.mark.parametrize("pool", ["default", "pool-a", "a", "p1", "x" * 63])
def test_gpupool_rfc1123_label_accepted(pool: str) -> None:
    assert ok({GPU_POOL: pool}).pool == pool


@pytest.mark.parametrize("pool", ["Pool", "pool_a", "-pool", "pool-", "a.b", "x" * 64, ""])
def test_gpupool_not_rfc1123_label_is_rejected(pool: str) -> None:
    assert only_problem({GPU_POOL: pool}).key == GPU_POOL


@pytest.mark.parametrize("value", ["True", "yes", "1", "", "enabled"])
def test_enabled_label_must_be_true_or_false(value: str) -> None:
    assert only_problem({}, labels={ENABLED_LABEL: value}).key == ENABLED_LABEL


def test_free_text_annotations_are_carried() -> None:
    request = ok({GPU_MODEL: "H100", WORKLOAD_PROFILE: "llm-small"})
    assert request.gpu_model == "H100"
    assert request.workload_profile == "llm-small"


# --- limits, zero, whole bytes ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("request_key", "limit_key", "request_text", "limit_text"),
    [
        (TFLOPS_REQUEST, TFLOPS_LIMIT, "100", "50"),
        (TFLOPS_REQUEST, TFLOPS_LIMIT, "1", "999m"),
        (VRAM_REQUEST, VRAM_LIMIT, "16Gi", "8Gi"),
        (VRAM_REQUEST, VRAM_LIMIT, "1Gi", "1073741823"),
    ],
)
def test_limit_below_request_names_the_limit_key(
    request_key: str, limit_key: str, request_text: str, limit_text: str
) -> None:
    problem = only_problem({request_key: request_text, limit_key: limit_text})
    assert problem.key == limit_key
    assert str(problem).startswith(limit_key + ":")
    with pytest.raises(AnnotationError) as caught:
        parse_workload_request({}, {request_key: request_text, limit_key: limit_text})
    assert caught.value.key == limit_key


@pytest.mark.parametrize("limit_key", [TFLOPS_LIMIT, VRAM_LIMIT])
@pytest.mark.parametrize("zero", ["0", "0Gi", "0m"])
def test_zero_limit_is_an_error(limit_key: str, zero: str) -> None:
    problem = only_problem({limit_key: zero})
    assert problem.key == limit_key


@pytest.mark.parametrize(
    ("request_key", "limit_key"), [(TFLOPS_REQUEST, TFLOPS_LIMIT), (VRAM_REQUEST, VRAM_LIMIT)]
)
def test_zero_request_below_a_positive_limit_is_fine(request_key: str, limit_key: str) -> None:
    request = ok({request_key: "0", limit_key: "1"})
    if request_key == TFLOPS_REQUEST:
        assert request.tflops_request == Quantity.from_int(0)
    else:
        assert request.vram_request == 0


@pytest.mark.parametrize("key", [VRAM_REQUEST, VRAM_LIMIT])
@pytest.mark.parametrize("text", ["0.5", "1.5", "1500m", "0.1Ki"])
def test_vram_must_be_whole_bytes(key: str, text: str) -> None:
    problem = only_problem({key: text})
    assert problem.key == key
    assert repr(text) in str(problem)


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("1.5Gi", 1610612736),
        ("16Gi", 17179869184),
        ("1000m", 1),
        ("1e3", 1000),
        ("512Mi", 512 * Mi),
    ],
)
def test_vram_whole_bytes_accepted(text: str, size: int) -> None:
    request = ok({VRAM_LIMIT: text})
    assert request.vram_limit == size
    assert request.vram_request == size


# --- error messages --------------------------------------------------------------------------


@pytest.mark.parametrize("key", [TFLOPS_REQUEST, TFLOPS_LIMIT, VRAM_REQUEST, VRAM_LIMIT])
@pytest.mark.parametrize("text", ["abc", "16GB", "1.2.3", "10 Gi", "-5", "-1Gi", "1e"])
def test_bad_quantity_names_the_key_and_quotes_the_text(key: str, text: str) -> None:
    problem = only_problem({key: text})
    assert problem.key == key
    assert str(problem).startswith(key + ":")
    assert repr(text) in str(problem)


@pytest.mark.parametrize("key", [TFLOPS_REQUEST, VRAM_LIMIT, GPU_MODEL, WORKLOAD_PROFILE, QOS])
@pytest.mark.parametrize("text", ["", "   "])
def test_empty_annotation_is_rejected(key: str, text: str) -> None:
    assert only_problem({key: text}).key == key


# --- several problems ------------------------------------------------------------------------

SEVERAL_BAD = {
    TFLOPS_REQUEST: "lots",
    VRAM_LIMIT: "0.5",
    GPU_COUNT: "0",
    QOS: "urgent",
    GPU_POOL: "Bad_Pool",
    IS_LOCAL_GPU: "yes",
}


def test_read_reports_every_problem() -> None:
    request, problems = read(SEVERAL_BAD, labels={ENABLED_LABEL: "on"})
    assert request is None
    assert all(isinstance(p, AnnotationError) for p in problems)
    assert sorted(p.key for p in problems) == sorted([ENABLED_LABEL, *SEVERAL_BAD])


def test_parse_raises_the_first_problem_with_its_key() -> None:
    labels = {ENABLED_LABEL: "on"}
    _, problems = read(SEVERAL_BAD, labels=labels)
    with pytest.raises(AnnotationError) as caught:
        parse_workload_request(labels, SEVERAL_BAD)
    assert caught.value.key == problems[0].key
    assert str(caught.value) == str(problems[0])
    assert isinstance(caught.value, ValueError)


def test_parse_returns_the_request_when_valid() -> None:
    annotations = {TFLOPS_LIMIT: "10", VRAM_LIMIT: "1Gi"}
    assert parse_workload_request(ENABLED, annotations) == ok(annotations, labels=ENABLED)


def test_parse_single_problem_key() -> None:
    with pytest.raises(AnnotationError) as caught:
        parse_workload_request({}, {GPU_COUNT: "two"})
    assert caught.value.key == GPU_COUNT
    assert "'two'" in str(caught.value)


# --- inject-container ------------------------------------------------------------------------


def test_inject_container_required_for_enabled_multi_container_pod() -> None:
    problem = only_problem({}, labels=ENABLED, containers=["app", "sidecar"])
    assert problem.key == INJECT_CONTAINER


def test_inject_container_names_an_existing_container() -> None:
    request = ok({INJECT_CONTAINER: "app"}, labels=ENABLED, containers=["app", "sidecar"])
    assert request.inject_containers == ("app",)


def test_inject_container_unknown_name_is_rejected() -> None:
    problem = only_problem(
        {INJECT_CONTAINER: "worker"}, labels=ENABLED, containers=["app", "sidecar"]
    )
    assert problem.key == INJECT_CONTAINER
    assert "'worker'" in str(problem)


def test_inject_container_comma_separated_list() -> None:
    request = ok(
        {INJECT_CONTAINER: "app, trainer"}, labels=ENABLED, containers=["app", "trainer", "log"]
    )
    assert request.inject_containers == ("app", "trainer")


def test_inject_container_list_with_one_unknown_name_is_rejected() -> None:
    problem = only_problem(
        {INJECT_CONTAINER: "app,ghost"}, labels=ENABLED, containers=["app", "trainer"]
    )
    assert problem.key == INJECT_CONTAINER
    assert "'ghost'" in str(problem)


def test_inject_container_not_required_for_single_container_pod() -> None:
    assert ok({}, labels=ENABLED, containers=["app"]).inject_containers == ()


def test_inject_container_not_required_when_container_names_unknown() -> None:
    assert ok({}, labels=ENABLED).inject_containers == ()
    assert ok({INJECT_CONTAINER: "anything"}, labels=ENABLED).inject_containers == ("anything",)


def test_inject_container_not_required_when_not_enabled() -> None:
    ok({}, containers=["app", "sidecar"])
    ok({}, labels={ENABLED_LABEL: "false"}, containers=["app", "sidecar"])


# --- lists -----------------------------------------------------------------------------------


def test_disable_features_is_a_comma_separated_set() -> None:
    request = ok({DISABLE_FEATURES: "gpu-limiter, gpu-opt,memory-manager"})
    assert request.disabled_features == frozenset({"gpu-limiter", "gpu-opt", "memory-manager"})


def test_gpu_ids_is_a_comma_separated_list_in_order() -> None:
    request = ok({GPU_IDS: "gpu-b,gpu-a, gpu-c"})
    assert request.gpu_ids == ("gpu-b", "gpu-a", "gpu-c")


def test_single_item_lists() -> None:
    request = ok({DISABLE_FEATURES: "gpu-opt", GPU_IDS: "gpu-0"})
    assert request.disabled_features == frozenset({"gpu-opt"})
    assert request.gpu_ids == ("gpu-0",)


def test_lists_default_to_empty() -> None:
    request = ok({})
    assert request.disabled_features == frozenset()
    assert request.gpu_ids == ()
    assert request.inject_containers == ()


@pytest.mark.parametrize("key", [DISABLE_FEATURES, GPU_IDS, INJECT_CONTAINER])
@pytest.mark.parametrize("text", ["a,,b", "a,", ",a", "a, ,b", ",", ""])
def test_lists_with_empty_items_are_rejected(key: str, text: str) -> None:
    assert only_problem({key: text}).key == key


# --- unknown keys ----------------------------------------------------------------------------


def test_unknown_key_is_found_with_a_suggestion() -> None:
    found = unknown_annotation_keys({"tensor-fusion.ai/tflop-limit": "10", TFLOPS_REQUEST: "5"})
    assert found == [
        ("tensor-fusion.ai/tflop-limit", "did you mean 'tensor-fusion.ai/tflops-limit'?")
    ]


def test_unknown_keys_ignore_other_prefixes_and_known_keys() -> None:
    annotations = {
        "kubernetes.io/tflop-limit": "1",
        "example.com/vram": "1Gi",
        "tflops-limit": "1",
        "tensor-fusion.io/tflops-limit": "1",
        **dict.fromkeys(ANNOTATION_KEYS, "x"),
        **dict.fromkeys(GANG_ANNOTATION_KEYS, "x"),
    }
    assert unknown_annotation_keys(annotations) == []


def test_unknown_key_without_close_match_has_no_suggestion() -> None:
    assert unknown_annotation_keys({"tensor-fusion.ai/zzzzzzzzzzzzzzzzzzzzzz": "1"}) == [
        ("tensor-fusion.ai/zzzzzzzzzzzzzzzzzzzzzz", "not a known key")
    ]


def test_enabled_label_written_as_annotation_is_pointed_to_labels() -> None:
    (found,) = unknown_annotation_keys({ENABLED_LABEL: "true"})
    assert found == (ENABLED_LABEL, "it is a label, not an annotation: move it to labels")


@pytest.mark.parametrize("text", ["1_0", " 50", "5e1", "+50", ".5.", "50%"])
def test_compute_percent_accepts_plain_decimals_only(text: str) -> None:
    _, problems = read_workload_request({}, {COMPUTE_PERCENT_LIMIT: text})
    assert [p.key for p in problems] == [COMPUTE_PERCENT_LIMIT]


def test_lone_zero_request_is_an_error_on_the_request() -> None:
    _, problems = read_workload_request({}, {TFLOPS_REQUEST: "0"})
    assert [(p.key, p.message) for p in problems] == [
        (TFLOPS_REQUEST, "the limit must be greater than 0")
    ]


def test_request_above_zero_limit_reports_the_zero_once() -> None:
    _, problems = read_workload_request({}, {TFLOPS_REQUEST: "5", TFLOPS_LIMIT: "0"})
    assert [(p.key, p.message) for p in problems] == [
        (TFLOPS_LIMIT, "the limit must be greater than 0")
    ]


# --- property --------------------------------------------------------------------------------

MAX_UNITS = 2**63 - 1
MAX_MI = MAX_UNITS // Mi  # the largest Mi count that is still a valid quantity


@st.composite
def ordered_pair(draw: st.DrawFn, high: int) -> tuple[int, int]:
    """(request, limit) with 0 <= request <= limit and limit >= 1 (a zero limit is an error)."""
    limit = draw(st.integers(min_value=1, max_value=high))
    request = draw(st.integers(min_value=0, max_value=limit))
    return request, limit


@given(tflops=ordered_pair(MAX_UNITS), vram=ordered_pair(MAX_MI))
def test_property_request_within_limit_parses_exactly(
    tflops: tuple[int, int], vram: tuple[int, int]
) -> None:
    annotations = {
        TFLOPS_REQUEST: str(tflops[0]),
        TFLOPS_LIMIT: str(tflops[1]),
        VRAM_REQUEST: f"{vram[0]}Mi",
        VRAM_LIMIT: f"{vram[1]}Mi",
    }
    request, problems = read(annotations)
    assert problems == []
    assert request is not None
    assert request.tflops_request == Quantity.from_int(tflops[0])
    assert request.tflops_limit == Quantity.from_int(tflops[1])
    assert request.vram_request == vram[0] * Mi
    assert request.vram_limit == vram[1] * Mi


@given(
    resource=st.sampled_from(["tflops", "vram"]),
    limit=st.integers(min_value=1, max_value=MAX_MI - 1),
    extra=st.integers(min_value=1, max_value=10**6),
)
def test_property_request_above_limit_is_one_error_on_the_limit_key(
    resource: str, limit: int, extra: int
) -> None:
    request = min(limit + extra, MAX_MI)
    if resource == "tflops":
        annotations = {TFLOPS_REQUEST: str(request), TFLOPS_LIMIT: str(limit)}
        limit_key = TFLOPS_LIMIT
    else:
        annotations = {VRAM_REQUEST: f"{request}Mi", VRAM_LIMIT: f"{limit}Mi"}
        limit_key = VRAM_LIMIT
    parsed, problems = read(annotations)
    assert parsed is None
    assert [p.key for p in problems] == [limit_key]


# --- gang scheduling ------------------------------------------------------------------------


def test_gang_keys_are_upstreams_and_not_among_the_compat_keys() -> None:
    assert GANG_MIN_MEMBERS == "tensor-fusion.ai/gang-min-members"
    assert GANG_TIMEOUT == "tensor-fusion.ai/gang-timeout"
    assert GANG_ANNOTATION_KEYS == (GANG_MIN_MEMBERS, GANG_TIMEOUT)
    assert not set(GANG_ANNOTATION_KEYS) & set(ANNOTATION_KEYS)


def test_a_misspelt_gang_key_is_pointed_to_the_right_one() -> None:
    found = unknown_annotation_keys({"tensor-fusion.ai/gang-min-member": "2"})
    assert found == [("tensor-fusion.ai/gang-min-member", f"did you mean {GANG_MIN_MEMBERS!r}?")]


@pytest.mark.parametrize(
    ("annotations", "expected"),
    [
        ({}, None),
        ({TFLOPS_REQUEST: "10"}, None),
        ({GANG_MIN_MEMBERS: "4"}, GangRequest(min_members=4)),
        ({GANG_MIN_MEMBERS: "0"}, GangRequest(min_members=0)),
        (
            {GANG_MIN_MEMBERS: "2", GANG_TIMEOUT: "5m"},
            GangRequest(min_members=2, timeout=timedelta(minutes=5)),
        ),
        ({GANG_MIN_MEMBERS: "2", GANG_TIMEOUT: "0"}, GangRequest(min_members=2)),
        ({GANG_MIN_MEMBERS: "2", GANG_TIMEOUT: "0s"}, GangRequest(min_members=2)),
        ({GANG_TIMEOUT: "1h30m"}, GangRequest(timeout=timedelta(hours=1, minutes=30))),
    ],
)
def test_gang_annotations_are_read(
    annotations: dict[str, str], expected: GangRequest | None
) -> None:
    assert read_gang_request(annotations) == (expected, [])


@pytest.mark.parametrize(
    ("annotations", "key", "message"),
    [
        ({GANG_MIN_MEMBERS: "two"}, GANG_MIN_MEMBERS, "must be a whole number, got 'two'"),
        ({GANG_MIN_MEMBERS: "-1"}, GANG_MIN_MEMBERS, "must be a whole number"),
        ({GANG_MIN_MEMBERS: "2147483648"}, GANG_MIN_MEMBERS, "must be 0..2147483647"),
        ({GANG_MIN_MEMBERS: " "}, GANG_MIN_MEMBERS, "must not be empty"),
        ({GANG_MIN_MEMBERS: "2", GANG_TIMEOUT: "soon"}, GANG_TIMEOUT, "is not a duration"),
        ({GANG_MIN_MEMBERS: "2", GANG_TIMEOUT: "-5m"}, GANG_TIMEOUT, "is not a duration"),
    ],
)
def test_malformed_gang_annotations_name_the_key(
    annotations: dict[str, str], key: str, message: str
) -> None:
    gang, problems = read_gang_request(annotations)
    assert gang is None
    assert [problem.key for problem in problems] == [key]
    assert message in str(problems[0])
    assert str(problems[0]).startswith(f"{key}: ")


def test_every_malformed_gang_annotation_is_reported() -> None:
    _, problems = read_gang_request({GANG_MIN_MEMBERS: "x", GANG_TIMEOUT: "y"})
    assert [problem.key for problem in problems] == [GANG_MIN_MEMBERS, GANG_TIMEOUT]
