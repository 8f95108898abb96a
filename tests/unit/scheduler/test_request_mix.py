"""The online request mix that FragmentationAware placement weighs fragmentation by."""

from __future__ import annotations

import pytest

from tensorfusion.errors import ConfigError, FleetError
from tensorfusion.scheduler.fragmentation import MAX_CLASS_WEIGHT
from tensorfusion.scheduler.gpu_fit import GpuFitRequest
from tensorfusion.scheduler.request_mix import (
    SHARPNESS,
    VOLUME_SHARE,
    RequestClass,
    RequestMix,
)

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
    assert mix.weighted() == [(_class(500_000), 1)]
    assert mix.mix().total_weight == 1


def test_the_window_forgets_the_oldest_pods() -> None:
    mix = RequestMix(window=3)
    for number, ppm in enumerate((250_000, 250_000, 500_000, 1_000_000, 1_000_000)):
        mix.record(f"pod-{number}", _class(ppm))
    assert len(mix) == 3
    # A tenth of a 3-pod window is under one pod: every pod counts as volume.
    assert mix.weighted() == [(_class(1_000_000), 8), (_class(500_000), 1)]
    mix.record("pod-0", _class(250_000))  # forgotten, so it counts again
    assert mix.weighted()[-1] == (_class(250_000), 1)


def test_arrays_share_shapes_and_keep_the_widest_then_the_smallest_rare_classes() -> None:
    mix = RequestMix(max_classes=3)
    arrivals = [_class(500_000, cpu=1_000)] * 3 + [_class(500_000, cpu=8_000)] * 2
    arrivals += [_class(250_000, cpu=2_000), _class(1_000_000, gpus=2)]
    for number, arrival in enumerate(arrivals):
        mix.record(f"pod-{number}", arrival)
    arrays = mix.mix()
    arrays.check()
    # None reaches a tenth of the window: all weigh 1. The 2-GPU class is kept first (whole
    # nodes are kept for it), then the smallest requests; the 8-core half slice is left out.
    assert arrays.classes.weight.tolist() == [1, 1, 1]
    assert arrays.classes.gpu_count.tolist() == [2, 1, 1]
    assert arrays.classes.cpu.tolist() == [1_000, 2_000, 1_000]
    assert arrays.classes.shape.tolist() == [0, 1, 2]
    assert arrays.shapes.percent_request_ppm.tolist() == [1_000_000, 250_000, 500_000]


def test_two_classes_of_one_shape_share_it() -> None:
    mix = RequestMix(max_classes=2)
    for number, arrival in enumerate([_class(500_000, cpu=1_000), _class(500_000, cpu=8_000)]):
        mix.record(f"pod-{number}", arrival)
    arrays = mix.mix()
    assert arrays.classes.shape.tolist() == [0, 0]
    assert arrays.shapes.percent_request_ppm.tolist() == [500_000]


def test_a_class_weighs_the_gpus_its_pods_ask_for() -> None:
    mix = RequestMix(window=10, max_classes=1)
    for number in range(3):
        mix.record(f"slice-{number}", _class(250_000))
    for number in range(2):
        mix.record(f"eight-{number}", _class(1_000_000, gpus=8))
    # Demands 16 and 3 over a tenth of the window (1): weights 16**3 and 3**3.
    assert mix.weighted() == [(_class(1_000_000, gpus=8), 16**3)]
    assert mix.mix().total_weight == 16**3


def test_volume_classes_weigh_the_cube_of_their_demand_and_the_smallest_rare_ones_follow() -> None:
    """A tenth of a 100-pod window is 10 pods: 30 and 20 pods weigh (3)**3 and (2)**3; classes
    under it weigh 1, and the smallest requests among them are kept first."""
    mix = RequestMix(window=100, max_classes=4)
    arrivals = [_class(500_000)] * 30 + [_class(750_000)] * 20
    arrivals += [_class(900_000)] * 5 + [_class(600_000)] * 5 + [_class(100_000)]
    for number, arrival in enumerate(arrivals):
        mix.record(f"pod-{number}", arrival)
    assert SHARPNESS == 3
    assert VOLUME_SHARE == 10
    assert mix.weighted() == [
        (_class(500_000), 27),
        (_class(750_000), 8),
        (_class(100_000), 1),
        (_class(600_000), 1),
    ]


def test_a_weight_stays_within_what_the_kernel_takes() -> None:
    mix = RequestMix(window=19)  # a tenth of it is 1 pod: 152 GPUs weigh 152**3, over the cap
    for number in range(19):
        mix.record(f"pod-{number}", _class(1_000_000, gpus=8))
    assert mix.weighted()[0][1] == MAX_CLASS_WEIGHT
    mix.mix().check()


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
