"""VRAM paging through the shim on the mock driver (tests/mockcuda), each figure against a
baseline measured in the same process:
- page-out plus page-in bandwidth against a plain device<->host copy of the same size, with the
  mock's copies costing bytes / bandwidth on its timeline (so the copies, not the CPU, set the
  pace, as on a GPU);
- what paging adds to a kernel launch when everything is resident: launches on a paging
  device against launches on a device without paging, alternated in one process.
Figures only: timing is not asserted. Run with
`python -m pytest bench/test_bench_paging.py --benchmark-only`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from pytest_benchmark.fixture import BenchmarkFixture
from tests.mockcuda_build import MockCuda, build_mockcuda
from tests.native.mockcuda_run import run_program, with_program
from tests.native.test_shim import child_env

Figure = Callable[[str], None]  # the record_figure fixture
PROGRAM = "paging_bench"
MiB = 1 << 20

# `move <MiB> <rounds>`: allocations A and B of that size on a device whose VRAM budget holds
# one of them; per round, a plain copy of the resident one out and back in through a pinned
# buffer, then a 1-byte set on the other: one page-out and one page-in of that size. Medians.
# `launch <calls>`: mock_fill launches with three parameters, one a resident paged allocation,
# on device 0 (paging) and device 1 (no paging), in alternating bursts.
SOURCE = r"""
#define _POSIX_C_SOURCE 199309L
#include <string.h>
#include <time.h>

#include "common.h"

#define BURST 1000

static long long now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int by_value(const void* a, const void* b) {
    const long long x = *(const long long*)a, y = *(const long long*)b;
    return (x > y) - (x < y);
}

static long long median(long long* values, int count) {
    qsort(values, (size_t)count, sizeof *values, by_value);
    return values[count / 2];
}

static int move(size_t bytes, int rounds) {
    long long out[64], in[64], swap[64];
    CUstream stream;
    void* host;
    CUdeviceptr a, b;
    setup();
    CHECK(cuStreamCreate(&stream, CU_STREAM_NON_BLOCKING));
    CHECK(cuMemHostAlloc(&host, bytes, 0));
    CHECK(cuMemAlloc(&a, bytes));
    CHECK(cuMemAlloc(&b, bytes)); /* A goes to the host to make room */
    for (int r = 0; r < rounds && r < 64; ++r) {
        const CUdeviceptr resident = r % 2 == 0 ? b : a, away = r % 2 == 0 ? a : b;
        long long t = now_ns();
        CHECK(cuMemcpyDtoHAsync(host, resident, bytes, stream));
        CHECK(cuStreamSynchronize(stream));
        out[r] = now_ns() - t;
        t = now_ns();
        CHECK(cuMemcpyHtoDAsync(resident, host, bytes, stream));
        CHECK(cuStreamSynchronize(stream));
        in[r] = now_ns() - t;
        t = now_ns();
        CHECK(cuMemsetD8(away, 0, 1)); /* the resident one out, the other back in whole */
        swap[r] = now_ns() - t;
    }
    printf("copy_out_ns=%lld\ncopy_in_ns=%lld\n", median(out, rounds), median(in, rounds));
    printf("swap_ns=%lld\n", median(swap, rounds));
    return 0;
}

static int launch(long calls) {
    CUcontext ctx[2];
    CUfunction f[2];
    CUdeviceptr target[2];
    unsigned long long zero = 0;
    unsigned int value = 1;
    long long took[2] = {0, 0};
    CHECK(cuInit(0));
    for (int d = 0; d < 2; ++d) {
        CHECK(cuCtxCreate(&ctx[d], 0, d));
        CHECK(cuMemAlloc(&target[d], 1 << 20));
        f[d] = kernel("mock_fill");
    }
    for (long done = 0; done < calls; done += BURST) {
        for (int d = 0; d < 2; ++d) {
            void* params[] = {&target[d], &zero, &value};
            CHECK(cuCtxSetCurrent(ctx[d]));
            const long long t = now_ns();
            for (int i = 0; i < BURST; ++i) {
                CHECK(cuLaunchKernel(f[d], 1, 1, 1, 32, 1, 1, 0, NULL, params, NULL));
            }
            took[d] += now_ns() - t;
        }
    }
    printf("paging_ns=%.3f\nplain_ns=%.3f\n", (double)took[0] / calls, (double)took[1] / calls);
    return 0;
}

int main(int argc, char** argv) {
    if (argc == 4 && strcmp(argv[1], "move") == 0) {
        return move((size_t)atol(argv[2]) << 20, atoi(argv[3]));
    }
    if (argc == 3 && strcmp(argv[1], "launch") == 0) {
        return launch(atol(argv[2]));
    }
    fprintf(stderr, "usage: paging_bench move <MiB> <rounds> | launch <calls>\n");
    return 2;
}
"""

MOVE_MIB = 64
MOVE_ROUNDS = 7
COPY_GBPS = 2.0  # slow enough that the timeline, not the mock's CPU work, sets the pace
LAUNCHES = 400_000
LAUNCH_ROUNDS = 5


@pytest.fixture(scope="module")
def mock(tmp_path_factory: pytest.TempPathFactory) -> MockCuda:
    return with_program(build_mockcuda(), PROGRAM, SOURCE, tmp_path_factory.mktemp(PROGRAM))


@pytest.mark.benchmark(group="paging bandwidth (mock timeline)")
def test_page_bandwidth_against_a_plain_copy(
    benchmark: BenchmarkFixture, record_figure: Figure, mock: MockCuda, tmp_path: Path
) -> None:
    size = MOVE_MIB * MiB
    env = child_env(
        mock,
        tmp_path,
        TF_VRAM_LIMIT=str(2 * size),
        TF_VRAM_HOST_LIMIT=str(size),
        MOCKCUDA_COPY_GBPS=str(COPY_GBPS),
    )
    out = benchmark.pedantic(
        run_program,
        (mock, PROGRAM, "move", str(MOVE_MIB), str(MOVE_ROUNDS)),
        {"env": env},
        rounds=1,
        iterations=1,
    )
    plain = int(out["copy_out_ns"]) + int(out["copy_in_ns"])
    swap = int(out["swap_ns"])
    record_figure(
        f"paging bandwidth, {MOVE_MIB} MiB out and {MOVE_MIB} MiB in at {COPY_GBPS:g} GB/s, "
        f"median of {MOVE_ROUNDS}: a swap takes {swap / 1e6:.1f} ms "
        f"({2 * size / swap:.2f} GB/s), a plain copy out then in {plain / 1e6:.1f} ms: "
        f"{plain / swap:.0%} of a plain copy's bandwidth [target >= 80%]"
    )
    assert swap > 0


@pytest.mark.benchmark(group="paging cost per launch (native loop on the mock)")
def test_launch_overhead_with_everything_resident(
    benchmark: BenchmarkFixture, record_figure: Figure, mock: MockCuda, tmp_path: Path
) -> None:
    env = child_env(
        mock,
        tmp_path,
        MOCKCUDA_DEVICES="2",
        TF_VRAM_LIMIT="64Mi",
        TF_VRAM_HOST_LIMIT_0="32Mi",  # device 0 pages, device 1 does not
    )
    samples: list[tuple[float, float]] = []

    def one_round() -> None:
        out = run_program(mock, PROGRAM, "launch", str(LAUNCHES), env=env)
        samples.append((float(out["paging_ns"]), float(out["plain_ns"])))

    benchmark.pedantic(one_round, rounds=LAUNCH_ROUNDS, iterations=1)
    paging = sorted(p for p, _ in samples)[len(samples) // 2]
    plain = sorted(q for _, q in samples)[len(samples) // 2]
    added = sorted(p - q for p, q in samples)[len(samples) // 2]
    record_figure(
        f"paging cost per launch, everything resident, median of {LAUNCH_ROUNDS} runs of "
        f"{LAUNCHES:,}: paging {paging:.1f} ns, no paging {plain:.1f} ns, "
        f"{added:+.1f} ns added [target <= 50 ns]"
    )
    assert len(samples) == LAUNCH_ROUNDS
