"""CPU-bound parallelism and the GIL (docs/design/cpu-parallelism.md): which calls let another
thread run (a witness thread's ticks, deterministic), and threads vs processes on 2 cores
(speedups: needs the whole machine, so `exclusive`)."""

from __future__ import annotations

import os
import statistics
import sys
import sysconfig
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from pathlib import Path

import pytest

from tests.conftest import in_fresh_process, load_snippet
from tests.services import services_required

gil = load_snippet("design/cpu_parallelism_gil")

GIL_BUILD = not sysconfig.get_config_var("Py_GIL_DISABLED")


@pytest.mark.skipif(not GIL_BUILD, reason="on a free-threaded build nothing holds a GIL")
def test_calls_that_hold_the_gil_let_no_other_thread_run():
    # Deterministic: with a 10 s switch interval the interpreter never takes the GIL from
    # the main thread while these run (~15 ms of CPU each), so the witness cannot run.
    # In a fresh interpreter: a thread left in this (xdist worker) process, already
    # waiting for the GIL under the 5 ms interval, would force a hand-over the witness
    # could use.
    ticks = in_fresh_process(
        "snippets/design/cpu_parallelism_gil.py",
        "[(m.witness_ticks(m.pure_python), m.witness_ticks(m.sha256_small)) for _ in range(3)]",
    )
    assert ticks == [(0, 0)] * 3  # sha256_small: 1 KiB calls < hashlib's 2047 bytes


def test_hashlib_on_a_large_buffer_and_zlib_compress_release_the_gil():
    # Each call takes tens of ms of CPU with the GIL released; the witness needs the OS to
    # run it once in that time. Noise budget: over 30 calls each at load 7-9 (flake hunt
    # and three other helpers running, niced), ticks per call were 4-126 (sha256) and
    # 157-416 (zlib), while the GIL-holding calls gave 0 in all 30; the sum of three calls
    # > 0 fails only if the witness got no CPU during three whole calls.
    assert sum(gil.witness_ticks(gil.sha256_big) for _ in range(3)) > 0
    assert sum(gil.witness_ticks(gil.compress_big) for _ in range(3)) > 0


def test_the_control_the_witness_runs_during_pure_python_when_the_gil_is_handed_over():
    """The zero above is the GIL, not a witness that could not run: at the default 5 ms
    switch interval the interpreter hands the GIL over mid-loop and the witness ticks."""
    ticks = gil.witness_ticks(lambda: gil.pure_python(5 * gil.PURE_N), switch_interval=0.005)
    # Noise budget: 5-30 ticks over 10 runs at load 7-9; the loop holds the GIL for ~0.15 s
    # of CPU, over 30 switch intervals, and each hand-over lets the waiting witness count.
    assert ticks > 0
    assert sys.getswitchinterval() == pytest.approx(0.005)  # restored


def test_the_page_reports_the_build_it_ran_on():
    info = gil.build()
    assert info["free-threaded build"] is (not GIL_BUILD)
    usable, total = gil.cores()
    assert 1 <= usable <= (total or usable)


def physical_cores(cpus: set[int]) -> int:
    """How many distinct cores the CPUs we may use are on (Linux sysfs): two logical CPUs
    that are hyperthreads of one core share its execution units, so two processes on
    them report 2 cores busy but gain only ~1.1-1.3x. len(cpus) where sysfs is missing."""
    cores = set()
    for cpu in cpus:
        siblings = Path(f"/sys/devices/system/cpu/cpu{cpu}/topology/thread_siblings_list")
        cores.add(siblings.read_text().strip() if siblings.exists() else str(cpu))
    return len(cores)


def measure_parallel() -> tuple[float, dict[str, dict[str, tuple[float, float]]]]:
    """Run in a fresh interpreter by the test below. First a calibration, apart from the
    measurement: how many cores two processes of pure Python got (median of 3). Then the
    page's measurement: {work: {way: (speedup, cores busy)}}."""
    pure = partial(gil.pure_python, 3 * gil.PURE_N)  # ~45 ms of CPU per call here
    with ProcessPoolExecutor(2) as pool:
        gil.run_twice(pool, pure)  # warm up: both workers started
        calibration = statistics.median(
            cpu / wall for wall, cpu in (gil.run_twice(pool, pure) for _ in range(3))
        )
    runs = gil.speedups({"pure": pure, "sha": gil.sha256_big}, rounds=3)
    return calibration, {
        name: {way: (p.speedup, p.cores) for way, p in ways.items()} for name, ways in runs.items()
    }


@pytest.mark.exclusive  # needs both cores: runs alone, after the parallel phase of `make test`
@pytest.mark.skipif(not GIL_BUILD, reason="states what the GIL does to threads")
def test_threads_do_not_run_python_in_parallel_but_processes_and_gil_free_calls_do():
    # In a fresh interpreter: this worker's leftover threads must not share the process.
    calibration, runs = in_fresh_process("tests/design/test_cpu_parallelism.py",
                                         "m.measure_parallel()")  # fmt: skip
    speedup = {name: {way: s for way, (s, _) in ways.items()} for name, ways in runs.items()}
    cores = {name: {way: c for way, (_, c) in ways.items()} for name, ways in runs.items()}
    # The gate: parallelism needs a free second core. Whether we had one is measured apart
    # from the claims (the calibration) and during the run (the processes' own cores);
    # when other work fills the machine no way can show parallelism: say so instead.
    free = min(calibration, cores["pure"]["2 processes"])
    if free < 1.5:
        reason = (
            f"2 processes got only {free:.2f} cores (calibration {calibration:.2f}): too "
            f"busy to show parallelism ({runs})"
        )
        if services_required():  # CI runs this alone on an idle machine: it must not skip
            pytest.fail(reason)
        pytest.skip(reason)
    # The claims, each relative to what processes got in the same run:
    # 1. The GIL: two threads of Python bytecode never run at once, so their CPU time
    #    adds up to at most the wall time, while two processes used over 1.5 cores.
    assert cores["pure"]["2 threads"] < 1.1, (calibration, runs)
    # 2. hashlib on a large buffer releases it: two threads hashing were on two CPUs at
    #    once (CPU time over wall time > 1 is possible only then, hyperthreads or not).
    assert cores["sha"]["2 threads"] > 1.3, (calibration, runs)
    # 3. Throughput: on two real cores, GIL-bound threads gain clearly less than processes
    #    and than GIL-free threads. Hyperthreads of one core (a common 2-vCPU VM) give
    #    processes only ~1.1-1.3x, too close to threads' ~1x to compare: not asserted there.
    if physical_cores(os.sched_getaffinity(0)) >= 2:
        assert speedup["pure"]["2 threads"] < 0.8 * speedup["pure"]["2 processes"], runs
        assert speedup["sha"]["2 threads"] > 1.2 * speedup["pure"]["2 threads"], runs
    # Noise budget: NOT measured on a quiet machine. While this was written a flake hunt
    # and other helpers kept both cores busy (2 processes got 0.2-0.6 cores), so this test
    # skipped there; the lead runs it alone on a quiet machine. The margins from first
    # principles: past the gate (>= 1.5 cores for processes), processes gain ~1.5-2x and
    # GIL-bound threads <= ~1x (ratio <= 0.67 < 0.8); GIL-free threads get about what
    # processes got (>= 1.5 cores, asserted > 1.3; speedup >= ~1.5x vs ~1x: > 1.2x).
