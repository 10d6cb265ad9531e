"""CPU-bound parallelism and the GIL (docs/design/cpu-parallelism.md): which calls let another
thread run (a witness thread's ticks, deterministic), and threads vs processes on 2 cores
(speedups: needs the whole machine, so `exclusive`)."""

from __future__ import annotations

import os
import statistics
import sys
import sysconfig
import time
import warnings
from functools import partial
from pathlib import Path

import pytest

from tests.conftest import in_fresh_process, load_snippet
from tests.services import services_required

gil = load_snippet("design/cpu_parallelism_gil")

GIL_BUILD = not sysconfig.get_config_var("Py_GIL_DISABLED")


@pytest.mark.skipif(not GIL_BUILD, reason="on a free-threaded build nothing holds a GIL")
def test_calls_that_hold_the_gil_let_no_other_thread_run_and_calls_that_release_it_do():
    # All four calls, three times, in one fresh interpreter: a thread left in this (xdist
    # worker) process, already waiting for the GIL under the 5 ms interval, would force a
    # hand-over the witness could use — a zero made non-zero, or ticks during a call that
    # never let go. Same process for both sides: the ticks of the releasing calls and the
    # zeros of the holding ones are measured under the same conditions.
    # The zeros are deterministic: with a 10 s switch interval the interpreter never takes
    # the GIL from the main thread while these run (14-24 ms of CPU each here).
    # Noise budget (the ticks): over 30 calls each at load 7-9 (three other helpers
    # running, niced), ticks per call were 4-126 (sha256 on 32 MiB) and 157-416 (zlib),
    # while the GIL-holding calls gave 0 in all 30; the sum of three calls > 0 fails only
    # if the witness got no CPU during three whole calls of tens of ms each.
    runs = in_fresh_process(
        "snippets/design/cpu_parallelism_gil.py",
        "[tuple(m.witness_ticks(w) for w in (m.pure_python, m.sha256_small, m.sha256_big,"
        " m.compress_big)) for _ in range(3)]",
    )
    assert [(pure, small) for pure, small, _, _ in runs] == [(0, 0)] * 3, runs
    # sha256_small: 1 KiB calls < hashlib's 2047 bytes; sha256_big and zlib release it
    assert sum(big for _, _, big, _ in runs) > 0, runs
    assert sum(deflate for _, _, _, deflate in runs) > 0, runs


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
    assert usable >= 1
    assert total is None or usable <= total  # os.cpu_count() may not know


def physical_cores(cpus: set[int]) -> int:
    """How many distinct cores the CPUs we may use are on, as Linux sysfs reports them: two
    logical CPUs that are hyperthreads of one core share its execution units. Inside a VM
    this is the guest's topology only. len(cpus) where sysfs is missing."""
    cores = set()
    for cpu in cpus:
        siblings = Path(f"/sys/devices/system/cpu/cpu{cpu}/topology/thread_siblings_list")
        cores.add(siblings.read_text().strip() if siblings.exists() else str(cpu))
    return len(cores)


# Each call 0.2-0.3 s of CPU (pure Python 194-324 ms, hashing 212-224 ms in the 16 quiet
# runs below: the host's CPU speed varies between runs, not within one), a few hundred
# times the 0.4-0.9 ms a process pool added to two calls (the snippet prints that cost):
# what is timed is the work in workers started before the clock, not process start-up,
# and hardly pickling or pipes.
PURE = partial(gil.pure_python, 14 * gil.PURE_N)  # a pure-Python loop, 0.2-0.3 s
SHA = partial(gil.sha256_big, gil.BIG, 10)  # 10 hashlib calls on 32 MiB, ~0.22 s
ROUNDS = 5
GATE = 1.7  # cores two bare busy processes must get for a measurement to count (below)
ATTEMPTS = 5  # measurements the gate may refuse before the test gives up (below)
WAIT = 40  # probes (0.25 s each) an attempt waits for free cores before its first round


def free_cores(seconds: float = 0.25) -> float:
    """How many cores two busy processes get right now, measured apart from the snippet's
    code: two forked children each spin a bare loop for `seconds` of wall time; their CPU
    time (rusage from wait4, microseconds) over the wall time. 2.0 on two free cores."""
    start = time.perf_counter()
    pids = []
    for _ in range(2):
        pid = os.fork()
        if pid == 0:  # the child: spin, then leave without running any cleanup
            end = time.perf_counter() + seconds
            while time.perf_counter() < end:
                pass
            os._exit(0)
        pids.append(pid)
    cpu = 0.0
    for pid in pids:
        _, _, usage = os.wait4(pid, 0)
        cpu += usage.ru_utime + usage.ru_stime
    return cpu / (time.perf_counter() - start)


def stolen_seconds() -> float | None:
    """CPU seconds the hypervisor gave to something else while this machine's CPUs were
    ready to run (the steal column of /proc/stat, all CPUs); None where there is none
    (not Linux)."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()
    except OSError:
        return None
    if fields[0] != "cpu" or len(fields) < 9:
        return None
    return int(fields[8]) / os.sysconf("SC_CLK_TCK")


Summary = dict[str, dict[str, tuple[float, float, float]]]  # work: way: (speedup, cores, cpu)


def measure_parallel() -> tuple[list[float], float | None, Summary | None]:
    """Run in a fresh interpreter by the test below. The snippet's measurement, one round
    at a time, with the free cores probed before the first round and after each (the
    gate). The first round waits for a probe of at least GATE, up to WAIT probes (~10 s:
    a busy spell of seconds must not close all the attempts, back to back); without one,
    it stops there. Returns the probes, the cores stolen by
    the hypervisor on average during the rounds (None: not Linux), and {work: {way:
    (speedup, cores busy, CPU seconds per call)}} from the medians of the rounds, as the
    snippet computes them."""
    waited = []
    while len(waited) < WAIT and (not waited or waited[-1] < GATE):
        waited.append(free_cores())  # a readiness signal: two cores free now
    if waited[-1] < GATE:
        return waited, None, None
    probes = waited[-1:]
    works = {"pure": PURE, "sha": SHA}
    rounds: dict[str, dict[str, list[tuple[float, float]]]] = {name: {} for name in works}
    stolen, start = stolen_seconds(), time.perf_counter()
    for _ in range(ROUNDS):
        _, one = gil.speedups(works, rounds=1)  # pools started afresh, outside the clock
        for name, ways in one.items():
            for way, p in ways.items():  # one round: cores = CPU / wall, cpu = CPU / 2
                rounds[name].setdefault(way, []).append((2 * p.cpu / p.cores, 2 * p.cpu))
        probes.append(free_cores())
    after = stolen_seconds()
    steal = (
        None
        if stolen is None or after is None
        else (after - stolen) / (time.perf_counter() - start)
    )
    summary: Summary = {}
    for name, ways in rounds.items():
        alone = statistics.median(wall for wall, _ in ways["one after another"])
        summary[name] = {}
        for way, r in ways.items():
            wall, cpu = statistics.median(w for w, _ in r), statistics.median(c for _, c in r)
            summary[name][way] = (alone / wall, cpu / wall, cpu / 2)
    return probes, steal, summary


def gate(probes: list[float]) -> float:
    """The free cores the measurement had: the second-lowest probe (one dip is allowed;
    the claims use medians of 5 rounds)."""
    return sorted(probes)[1] if len(probes) > 1 else probes[0]


def describe(probes: list[float], steal: float | None, runs: Summary | None) -> str:
    """The measurement in words, for every message. Each way's CPU per call is also given
    over one after another's: near 1.0 when the two CPUs run independently; well above it,
    they slowed each other (two vCPUs on one host core, a neighbour VM), which lowers
    processes' speedup below their cores busy with no start-up or pipe cost in the timing."""
    free = "free cores (2 bare busy processes) " + ", ".join(f"{c:.2f}" for c in probes)
    stolen = "" if steal is None else f"; stolen by the hypervisor {steal:.2f} cores"
    if runs is None:
        return (
            f"free cores (2 bare busy processes) under {GATE} in {len(probes)} probes"
            f" ({min(probes):.2f}-{max(probes):.2f}), so the measurement did not run"
        )
    return (
        "; ".join(
            f"{name} {way}: {s:.2f}x, {c:.2f} cores, {cpu * 1000:.0f} ms/call"
            f" ({cpu / ways['one after another'][2]:.2f} of alone)"
            for name, ways in runs.items()
            for way, (s, c, cpu) in ways.items()
        )
        + f"; {free}{stolen}"
    )


@pytest.mark.exclusive  # needs both cores: runs alone, after the parallel phase of `make test`
@pytest.mark.timeout(600)  # up to ATTEMPTS measurements, each a hang guard of 120 s
@pytest.mark.skipif(not GIL_BUILD, reason="states what the GIL does to threads")
def test_threads_do_not_run_python_in_parallel_but_processes_and_gil_free_calls_do():
    # In a fresh interpreter: this worker's leftover threads must not share the process.
    # ~15 s on an idle machine (5 rounds of 2 x 0.2-0.3 s calls, 3 ways, 2 works, and 6
    # probes of 0.25 s); at most ATTEMPTS x (WAIT probes + a measurement), ~2 min.
    # The gate: parallelism needs a free second core. Whether we had one is measured apart
    # from the claims, with none of the snippet's code: two forked bare loops, before the
    # first round and after each; all but one of those probes must see >= GATE cores.
    # When other work fills the machine no way can show parallelism: say so instead. On a
    # quiet VM the second vCPU is at times not there for seconds (probably the host's
    # other guests: the message gives the steal column of /proc/stat for the run): a
    # closed gate measures again, up to ATTEMPTS times, and never passes a claim.
    for attempt in range(ATTEMPTS):
        probes, steal, runs = in_fresh_process("tests/design/test_cpu_parallelism.py",
                                               "m.measure_parallel()")  # fmt: skip
        why = describe(probes, steal, runs)
        print(f"attempt {attempt + 1}: {why}")  # every attempt, closed gates too (-rA)
        if runs is not None and gate(probes) >= GATE:
            break
    else:
        reason = (
            f"two busy processes got under {GATE} cores in {ATTEMPTS} tries: too busy to"
            f" show parallelism (the last: {why})"
        )
        if services_required():  # CI runs this alone on an idle machine: it must not skip
            pytest.fail(reason)
        pytest.skip(reason)
    assert runs is not None
    speedup = {name: {way: s for way, (s, _, _) in ways.items()} for name, ways in runs.items()}
    cores = {name: {way: c for way, (_, c, _) in ways.items()} for name, ways in runs.items()}
    # The claims, each relative to what processes got in the same run:
    # 0. Processes side-step the GIL: two processes did the two calls at once, each work.
    assert cores["pure"]["2 processes"] >= 1.5, why
    assert cores["sha"]["2 processes"] >= 1.5, why
    # 1. The GIL: two threads of Python bytecode never run at once, so their CPU time
    #    adds up to at most the wall time, while the processes used over 1.5 cores.
    assert cores["pure"]["2 threads"] < 1.1, why
    # 2. hashlib on a large buffer releases it: two threads hashing were on two CPUs at
    #    once (CPU time over wall time > 1 is possible only then, hyperthreads or not).
    assert cores["sha"]["2 threads"] > 1.3, why
    # 3. Throughput: on two cores, GIL-bound threads gain clearly less than processes and
    #    than GIL-free threads. Not asserted where sysfs reports the two CPUs as
    #    hyperthreads of one core (they share its execution units, so processes gain less
    #    than their cores busy): said in a warning. Inside a VM sysfs shows only the
    #    guest's topology: two vCPUs on one host core look like two cores here; each
    #    call's CPU "of alone" in the message shows them.
    if physical_cores(os.sched_getaffinity(0)) >= 2:
        assert speedup["pure"]["2 threads"] < 0.8 * speedup["pure"]["2 processes"], why
        assert speedup["sha"]["2 threads"] > 1.2 * speedup["pure"]["2 threads"], why
    else:
        warnings.warn(f"claim 3 not checked: sysfs reports hyperthreads of one core ({why})",
                      stacklevel=1)  # fmt: skip
    # Noise budget. What is timed: two calls of 0.2-0.3 s of CPU in workers started
    # before the clock; the pool's own cost for two calls, measured with a no-op,
    # 0.4-0.9 ms (0.07-0.2 ms on threads): under 0.5% of a call, so neither start-up
    # (outside the clock) nor pipes can move a speedup by more than that.
    # Claim 3's margin, by arithmetic: threads' speedup over processes' is processes'
    # wall time over threads' (the one-after-another baseline cancels) = (processes' CPU
    # per call / threads') x (threads' cores / processes' cores). Threads' cores <= 1
    # (the GIL); processes get about what the probes got, >= GATE = 1.7; with processes'
    # calls costing up to 1.25x the threads' CPU, the ratio is <= 1.25 / 1.7 = 0.74 < 0.8.
    # (At the old gate of 1.5 it was 0.83: a run could pass the gate and fail claim 3.)
    # Observed, 16 quiet runs: processes' CPU per call over threads' 0.89-1.13; the
    # largest "of alone", 1.23, was both ways' calls beside another vs a fast baseline
    # (194 ms alone, 238 ms on threads and on processes): it cancels, the ratio was 0.55.
    # Hashing threads over pure-Python threads: hashing threads get about the probes'
    # cores (>= 1.7) at ~1.0x their CPU alone, pure threads <= ~1.1x: >= ~1.5 > 1.2.
    # Claims 0-2 are cores, physically bounded: processes >= 1.5 vs the gate's 1.7 (a dip
    # over most rounds' process slots shows in at least two probes and closes the gate);
    # threads <= 1.0 + timer noise vs < 1.1; hashing threads ~ the probes vs > 1.3.
    # Quiet-machine spread (2026-12-02, nothing else running, 16 runs of the previous
    # version: calibration in the snippet's process pool, gate 1.5, no probes between
    # rounds): pure-Python threads 0.77-1.00 cores (claim 1: < 1.1); hashing threads
    # 1.77-1.97 cores (claim 2: > 1.3); processes 1.28-1.98 cores (claim 0: >= 1.5;
    # the 1.28 and 1.45 were runs the gate of 1.7 would have to close); threads' speedup
    # over processes' 0.45-0.65 (claim 3: < 0.8); hashing threads over pure-Python threads
    # 1.81-2.84x (> 1.2); calibration 1.68-1.97 in 15, under 1.5 in one.
    # The gate's closure rate: 4 of those 16 runs had under 1.7 cores in calibration or
    # for processes (under 1.5, 1.45, 1.28, 1.68), so ~25% per attempt (rule of three on
    # 16 runs: at most ~50%); five closed attempts in a row: ~0.1% (at 50%: 3%). That
    # takes attempts independent of each other: each waits up to WAIT probes (~10 s) for
    # free cores, so five span a minute or more, not one dip of seconds (without the wait,
    # five closed first probes took 5.9 s on the busy machine). On a busy machine (the
    # lead's suite) the gate closes much more often: CI fails, others skip.
    # This version, 2 runs on the busy machine (the lead's suite at normal priority, this
    # test niced): one passed at its first attempt (probes 1.91-1.98; pure-Python
    # processes 1.65 cores, 1.36x, their calls 1.21x their CPU alone and threads' 1.11x,
    # so threads/processes 0.66; hashing threads 1.95 cores), one at its second (the
    # first attempt's message was not kept; the second: probes 1.92-1.98, processes 1.73
    # cores, threads/processes 0.54); steal 0.00 cores in both. Pure-Python processes got
    # up to 0.3 cores less than the bare probes (1.65 vs 1.91-1.98): at 1.65 cores and
    # 1.25x CPU the ratio is 0.76 < 0.8, the thinnest case; seen so far: 1.13x at most.
    # This version on the quiet machine (2026-12-02 10:48-11:05, nothing else running, 12
    # runs): all passed at their first attempt; processes 1.62-1.90 cores (claim 0);
    # pure-Python threads 0.88-1.00 (claim 1); hashing threads 1.72-1.98 (claim 2);
    # threads/processes 0.47-0.66 (claim 3), the 0.66 with processes' calls at 1.43x
    # their CPU alone and threads' at 1.24x (both rose with the host's speed, so the ratio
    # moved less); hashing threads over pure-Python threads 1.92-2.48x.
