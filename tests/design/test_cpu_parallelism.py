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


# Each call ~200 ms of CPU (191-216 ms measured on this busy 2-core machine), a few
# hundred times the 0.4-0.8 ms a process pool added to two calls (the snippet prints that
# cost): what is timed is the work in workers started before the clock, not process
# start-up, and hardly pickling or pipes.
PURE = partial(gil.pure_python, 14 * gil.PURE_N)  # a pure-Python loop, ~200 ms
SHA = partial(gil.sha256_big, gil.BIG, 10)  # 10 hashlib calls on 32 MiB, ~220 ms
ROUNDS = 5
ATTEMPTS = 4  # measurements the gate may refuse before the test gives up (see below)


def measure_parallel() -> tuple[float, dict[str, dict[str, tuple[float, float, float]]] | None]:
    """Run in a fresh interpreter by the test below. First a calibration, apart from the
    measurement: how many cores two started processes of pure Python got (median of 3);
    the measurement only if that is enough to show parallelism (>= 1.5). Then the page's
    measurement: {work: {way: (speedup, cores busy, CPU seconds per call)}}."""
    with ProcessPoolExecutor(2) as pool:
        gil.start_workers(pool)
        calibration = statistics.median(
            cpu / wall for wall, cpu in (gil.run_twice(pool, PURE) for _ in range(3))
        )
    if calibration < 1.5:
        return calibration, None
    _, runs = gil.speedups({"pure": PURE, "sha": SHA}, rounds=ROUNDS)
    return calibration, {
        name: {way: (p.speedup, p.cores, p.cpu) for way, p in ways.items()}
        for name, ways in runs.items()
    }


def describe(calibration: float, runs: dict[str, dict[str, tuple[float, float, float]]] | None
             ) -> str:  # fmt: skip
    """The measurement in words, for every message. Each way's CPU per call is also given
    over one after another's: near 1.0 when the two CPUs run independently; well above it,
    they slowed each other (two vCPUs on one host core, a neighbour VM), which lowers
    processes' speedup below their cores busy with no start-up or pipe cost in the timing."""
    if runs is None:
        return f"calibration {calibration:.2f} cores, so the measurement did not run"
    return (
        "; ".join(
            f"{name} {way}: {s:.2f}x, {c:.2f} cores, {cpu * 1000:.0f} ms/call"
            f" ({cpu / ways['one after another'][2]:.2f} of alone)"
            for name, ways in runs.items()
            for way, (s, c, cpu) in ways.items()
        )
        + f"; calibration {calibration:.2f} cores"
    )


@pytest.mark.exclusive  # needs both cores: runs alone, after the parallel phase of `make test`
@pytest.mark.timeout(480)  # up to ATTEMPTS measurements, each a hang guard of 120 s
@pytest.mark.skipif(not GIL_BUILD, reason="states what the GIL does to threads")
def test_threads_do_not_run_python_in_parallel_but_processes_and_gil_free_calls_do():
    # In a fresh interpreter: this worker's leftover threads must not share the process.
    # 11-17 s on an idle machine (5 rounds of 2 x 200 ms calls, 3 ways, 2 works).
    # The gate: parallelism needs a free second core. Whether we had one is measured apart
    # from the claims (the calibration) and during the run (the processes' own cores, for
    # each work: a busy run had 1.65 cores in calibration and 1.52 for pure Python, then
    # 1.07 while hashing, where threads got 1.11); when other work fills the machine no
    # way can show parallelism: say so instead. A quiet VM loses its second vCPU for a few
    # seconds at times (3 of 16 quiet runs here: 1.28-1.45 cores, the host's other
    # guests): a closed gate measures again, up to ATTEMPTS times, and never passes a claim.
    for _attempt in range(ATTEMPTS):
        calibration, runs = in_fresh_process("tests/design/test_cpu_parallelism.py",
                                             "m.measure_parallel()")  # fmt: skip
        free = min([calibration] + [ways["2 processes"][1] for ways in (runs or {}).values()])
        why = describe(calibration, runs)
        if free >= 1.5:
            break
    else:
        reason = (
            f"2 processes got only {free:.2f} cores in {ATTEMPTS} tries: too busy to show"
            f" parallelism (the last: {why})"
        )
        if services_required():  # CI runs this alone on an idle machine: it must not skip
            pytest.fail(reason)
        pytest.skip(reason)
    assert runs is not None
    speedup = {name: {way: s for way, (s, _, _) in ways.items()} for name, ways in runs.items()}
    cores = {name: {way: c for way, (_, c, _) in ways.items()} for name, ways in runs.items()}
    print(why)  # the lead's quiet-machine runs read it with -rA
    # The claims, each relative to what processes got in the same run:
    # 1. The GIL: two threads of Python bytecode never run at once, so their CPU time
    #    adds up to at most the wall time, while two processes used over 1.5 cores.
    assert cores["pure"]["2 threads"] < 1.1, why
    # 2. hashlib on a large buffer releases it: two threads hashing were on two CPUs at
    #    once (CPU time over wall time > 1 is possible only then, hyperthreads or not).
    assert cores["sha"]["2 threads"] > 1.3, why
    # 3. Throughput: on two real cores, GIL-bound threads gain clearly less than processes
    #    and than GIL-free threads. Hyperthreads of one core (a common 2-vCPU VM) give
    #    processes only ~1.1-1.3x, too close to threads' ~1x to compare: not asserted there.
    #    Inside a VM sysfs shows only the guest's topology: two vCPUs on one host core
    #    look like two cores here; each call's CPU "of alone" in the message shows them.
    if physical_cores(os.sched_getaffinity(0)) >= 2:
        assert speedup["pure"]["2 threads"] < 0.8 * speedup["pure"]["2 processes"], why
        assert speedup["sha"]["2 threads"] > 1.2 * speedup["pure"]["2 threads"], why
    # Noise budget: derived from the mechanism and from busy-machine runs, then checked
    # against a quiet machine's spread (the end of this comment). What is timed: two calls of
    # ~200 ms of CPU (191-198 ms pure Python, 212-216 ms hashing, 3 runs here) in
    # workers started before the clock; the pool's own cost for two calls, measured with
    # a no-op, 0.4-0.8 ms (0.07-0.2 ms on threads): under 0.5% of a call, so neither
    # start-up (outside the clock) nor pipes can move a speedup by more than that. The
    # earlier version (45 ms calls, 3 rounds, workers also warmed before timing) failed
    # claim 3 in about one quiet run in eight: threads 1.02x, processes 1.23x with >= 1.5
    # cores busy, so each call cost ~1.22x or more of its CPU alone (cores / speedup):
    # the two CPUs slowed each other, which no start-up cost explains; describe() now
    # prints that ratio. On the busy machine (load 5-10: a flake hunt and another helper,
    # all niced) the calibration gave 0.22-0.97 cores in 18 of 19 runs; in the 19th it
    # passed and the processes then got 0.67: skipped each time (failed under
    # REQUIRE_SERVICES=1, as meant). Two runs with the gate forced open
    # (busy): each call's CPU on 2 workers was 1.00-1.02 of alone; one passed the old gate
    # (1.65 cores in calibration, 1.52 for pure Python) but hashing got 1.07 and claim 2
    # failed, so the gate now takes each work's processes. The margins from first
    # principles: past the gate (>= 1.5 cores for processes), processes gain ~1.5-2x and
    # GIL-bound threads <= ~1x (ratio <= 0.67 < 0.8) unless each call costs more CPU
    # beside the other than alone (processes' speedup ~ cores busy / that ratio: at 1.9
    # cores a ratio over ~1.5 fails claim 3, at 1.5 cores one over ~1.2); GIL-free
    # threads get about what processes got (>= 1.5 cores, asserted > 1.3; speedup >=
    # ~1.5x vs ~1x: > 1.2x).
    # Quiet-machine spread (2026-12-02, nothing else running, 16 runs of this test): the
    # gate closed in 3 (calibration below 1.5 once; processes 1.45 and 1.28 cores), hence
    # the retries. In the 13 past the gate: pure-Python threads 0.77-1.00 cores (claim 1:
    # < 1.1); hashing threads 1.77-1.97 cores (claim 2: > 1.3); threads' speedup over
    # processes' 0.45-0.65 (claim 3: < 0.8); hashing threads over pure-Python threads
    # 1.81-2.84x (> 1.2); each call's CPU beside the other 0.94-1.23 of alone.
