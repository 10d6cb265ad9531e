"""CPU-bound parallelism and the GIL (docs/design/cpu-parallelism.md): which calls let another
thread run (a witness thread's ticks, deterministic), and threads vs processes on 2 cores
(speedups: needs the whole machine, so `exclusive`)."""

from __future__ import annotations

import sys
import sysconfig

import pytest

from tests.conftest import in_fresh_process, load_snippet
from tests.services import services_required

gil = load_snippet("design/cpu_parallelism_gil")

GIL_BUILD = not sysconfig.get_config_var("Py_GIL_DISABLED")


@pytest.mark.skipif(not GIL_BUILD, reason="on a free-threaded build nothing holds a GIL")
def test_calls_that_hold_the_gil_let_no_other_thread_run():
    # Deterministic: with a 10 s switch interval the interpreter never takes the GIL from
    # the main thread while these run (~0.03 s of CPU each), so the witness cannot run.
    for _ in range(3):
        assert gil.witness_ticks(gil.pure_python) == 0
        assert gil.witness_ticks(gil.sha256_small) == 0  # 1 KiB < hashlib's 2047 bytes


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


@pytest.mark.exclusive  # needs both cores: runs after the parallel phase of `make test`
@pytest.mark.skipif(not GIL_BUILD, reason="states what the GIL does to threads")
def test_threads_do_not_run_python_in_parallel_but_processes_and_gil_free_calls_do():
    # In a fresh interpreter: this worker's leftover threads must not share the process.
    runs = in_fresh_process(
        "snippets/design/cpu_parallelism_gil.py",
        "{name: {way: (p.speedup, p.cores) for way, p in ways.items()} for name, ways in"
        " m.speedups({'pure': __import__('functools').partial(m.pure_python, 3 * m.PURE_N),"
        " 'sha': m.sha256_big}, rounds=3).items()}",
    )
    speedup = {name: {way: s for way, (s, _) in ways.items()} for name, ways in runs.items()}
    cores = {name: {way: c for way, (_, c) in ways.items()} for name, ways in runs.items()}
    # The GIL: two threads of Python bytecode never run at once, so their CPU time adds
    # up to at most the wall time. Holds on any load (load only lowers it).
    assert cores["pure"]["2 threads"] < 1.1, runs
    # Parallel speedup needs a free second core: the processes' cores tell whether we had
    # one. When other work fills the machine no way can show it; say so instead.
    free = cores["pure"]["2 processes"]
    if free < 1.5:
        reason = f"2 processes got only {free:.2f} cores: too busy to show a speedup"
        if services_required():  # CI runs this alone on an idle machine: it must not skip
            pytest.fail(reason)
        pytest.skip(reason)
    # Noise budget: not measured on a quiet machine — while this page was written a flake
    # hunt and three other helpers kept both cores busy (2 processes got 0.3-0.6 cores), so
    # this part skipped; it is checked where `make test` runs it alone. The margins: on
    # 2 free cores processes and GIL-free threads approach 2x and GIL-bound threads stay
    # near 1x, so 1.3x and 1.15x leave room for a core that is 35% busy.
    assert speedup["pure"]["2 processes"] > 1.3, runs
    assert speedup["sha"]["2 threads"] > 1.3, runs
    assert speedup["pure"]["2 threads"] < 1.15, runs
