"""The online request mix that FragmentationAware placement weighs fragmentation by."""

from __future__ import annotations

import pytest

from tensorfusion.errors import ConfigError, FleetError
from tensorfusion.scheduler.gpu_fit import GpuFitRequest
from tensorfusion.scheduler.request_mix import RequestClass, RequestMix

GIB = 1024**3


def _class(ppm: int, gpus: int = 1, cpu: int = 1_000) -> RequestClass:
    request = GpuFitRequest(
        tflops_request=0,
        tflops_limit=0,
        vram_request=ppm * 16 * GIB // 1_000_000,
        vram_limit=ppm * 16 * GIB // 1_000_000,
        percent_request_ppm=ppm,
        percent_limit_ppm=ppm,
        gpu_count=gpus,
    )
    return RequestClass.of(request, cpu, 4 * GIB)


def test_a_pod_counts_once_however_often_it_is_retried() -> None:
    mix = RequestMix()
    for _ in range(3):
        mix.record("pod-a", _class(500_000))
    mix.record("pod-b", _class(500_000))
    assert mix.weighted() == [(_class(500_000), 2)]
    assert mix.mix().total_weight == 2


def test_the_window_forgets_the_oldest_pods() -> None:
    mix = RequestMix(window=3)
    for number, ppm in enumerate((250_000, 250_000, 500_000, 1_000_000, 1_000_000)):
        mix.record(f"pod-{number}", _class(ppm))
    assert len(mix) == 3
    assert mix.weighted() == [(_class(1_000_000), 2), (_class(500_000), 1)]
    mix.record("pod-0", _class(250_000))  # forgotten, so it counts again
    assert mix.weighted()[-1] == (_class(250_000), 1)


def test_arrays_share_shapes_and_keep_the_most_frequent_classes() -> None:
    mix = RequestMix(max_classes=2)
    arrivals = [_class(500_000, cpu=1_000)] * 3 + [_class(500_000, cpu=8_000)] * 2
    arrivals += [_class(1_000_000, gpus=2)]
    for number, arrival in enumerate(arrivals):
        mix.record(f"pod-{number}", arrival)
    arrays = mix.mix()
    arrays.check()
    assert arrays.classes.weight.tolist() == [3, 2]
    assert arrays.classes.cpu.tolist() == [1_000, 8_000]
    assert arrays.classes.shape.tolist() == [0, 0]  # one shape, two classes
    assert arrays.shapes.percent_request_ppm.tolist() == [500_000]


def test_a_class_weighs_the_gpus_its_pods_ask_for() -> None:
    mix = RequestMix(max_classes=1)
    for number in range(3):
        mix.record(f"slice-{number}", _class(250_000))
    for number in range(2):
        mix.record(f"eight-{number}", _class(1_000_000, gpus=8))
    assert mix.weighted() == [(_class(1_000_000, gpus=8), 16)]
    assert mix.mix().total_weight == 16


def test_the_mix_is_rebuilt_only_after_a_new_arrival() -> None:
    mix = RequestMix()
    mix.record("pod-a", _class(500_000))
    first = mix.mix()
    assert mix.mix() is first
    mix.record("pod-a", _class(500_000))
    assert mix.mix() is first
    mix.record("pod-b", _class(250_000))
    assert mix.mix() is not first


def test_an_empty_mix_weighs_nothing() -> None:
    arrays = RequestMix().mix()
    arrays.check()
    assert arrays.total_weight == 0
    assert len(arrays.shapes.tflops_request) == 0


@pytest.mark.parametrize(
    ("arguments", "field"),
    [({"window": 0}, "window"), ({"window": 10**7}, "window"), ({"max_classes": 0}, "max_classes")],
)
def test_bad_settings_name_the_field(arguments: dict[str, int], field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        RequestMix(**arguments)


def test_a_checked_mix_rejects_a_weight_out_of_range() -> None:
    mix = RequestMix()
    mix.record("pod-a", _class(500_000))
    arrays = mix.mix()
    arrays.classes.weight[0] = -1
    with pytest.raises(FleetError, match="weight"):
        arrays.check()
