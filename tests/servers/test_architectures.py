"""Server architectures (docs/servers/architectures.md): the orderings the table shows,
and every architecture answering bad input like a real server."""

from __future__ import annotations

import asyncio
import email.utils
import multiprocessing
import resource
import socket
import statistics
import time

import pytest

from tests.conftest import load_snippet, trickle
from tests.services import services_required

arch_servers = load_snippet("servers/arch_servers")


def dated(reply: bytes) -> bytes:
    """The reply, once checked for one Date header field in IMF-fixdate (GMT): RFC 9110
    §6.6.1, a MUST in 2xx-4xx responses from a server with a clock."""
    fields = reply.split(b"\r\n\r\n")[0].lower().split(b"\r\n")[1:]
    dates = [f.partition(b":")[2].strip() for f in fields if f.startswith(b"date:")]
    assert len(dates) == 1 and dates[0].endswith(b" gmt"), reply[:200]
    sent = email.utils.parsedate_to_datetime(dates[0].decode()).timestamp()
    assert abs(sent - time.time()) < 60, dates
    return reply


def exchange(address: tuple[str, int], raw: bytes, timeout: float = 5.0) -> bytes:
    """Send raw bytes, read until the server closes."""
    with socket.create_connection(address, timeout=timeout) as sock:
        sock.sendall(raw)
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
        return dated(reply)


@pytest.mark.parametrize("architecture", list(arch_servers.ARCHITECTURES))
def test_every_architecture_serves_and_refuses_bad_input(architecture, monkeypatch):
    monkeypatch.setattr(arch_servers, "READ_TIMEOUT", 0.3)  # the forked server inherits it
    with arch_servers.running(architecture) as address:
        assert exchange(address, b"GET /io HTTP/1.1\r\nHost: x\r\n\r\n").startswith(
            b"HTTP/1.1 200 OK\r\n"
        )
        assert exchange(address, b"GET /nope HTTP/1.1\r\n\r\n").startswith(b"HTTP/1.1 404 ")
        assert exchange(address, b"HELLO\r\n\r\n").startswith(b"HTTP/1.1 400 ")
        assert exchange(address, b"GET /io SPDY/3\r\n\r\n").startswith(b"HTTP/1.1 400 ")
        huge = b"GET /io HTTP/1.1\r\nX-Padding: " + b"a" * 9000  # no end of head in sight
        assert exchange(address, huge).startswith(b"HTTP/1.1 431 ")
        # A client that starts a request and goes silent gets 408, not a thread forever.
        assert exchange(address, b"GET /io HTTP/1.1\r\n", timeout=3).startswith(b"HTTP/1.1 408 ")


@pytest.mark.parametrize("architecture", list(arch_servers.ARCHITECTURES))
def test_a_client_trickling_its_head_gets_408_at_the_deadline(architecture, monkeypatch):
    """READ_TIMEOUT bounds the whole head: a byte every 0.1 s would never let a 0.4 s
    timeout per recv() expire (slowloris), but the deadline does."""
    monkeypatch.setattr(arch_servers, "READ_TIMEOUT", 0.4)  # the forked server inherits it
    with (
        arch_servers.running(architecture) as address,
        socket.create_connection(address, timeout=5) as sock,
    ):
        start = time.perf_counter()
        sock.sendall(b"GET /io HTTP/1.1\r\n")
        reply, ended = trickle(sock, pace=0.1)  # 4.8 s of trickling at most
        took = ended - start
    assert reply.startswith(b"HTTP/1.1 408 "), f"after {took:.1f} s of trickling: {reply[:40]!r}"
    # Noise budget: observed 0.348-0.573 s over 10 runs of all six (4 runs with two busy-loop
    # processes). The server's deadline starts at accept(), which can come before our
    # `start`, so the lower bound sits below 0.4 s; the upper one is 3x the worst seen.
    assert 0.25 < took < 2.0, took


def test_pool_and_pre_fork_bound_concurrency_to_their_size():
    async def bodies(address: tuple[str, int]) -> list[bytes]:
        replies = await asyncio.gather(*(arch_servers.fetch(address, "/io") for _ in range(16)))
        return [r.split(b"\r\n\r\n", 1)[1] for r in replies]

    with arch_servers.running("thread pool (4)") as address:
        threads = {b.split(b"pid ")[1] for b in asyncio.run(bodies(address))}
    with arch_servers.running("pre-fork (4 processes)") as address:
        pids = {b.split(b"pid ")[1].split()[0] for b in asyncio.run(bodies(address))}
    assert len(threads) > 1 and len(threads) <= 4  # one process, at most 4 worker threads
    assert len(pids) > 1 and len(pids) <= 4  # 4 processes sharing one listening socket


def interleaved(architectures: list[str], workload: str, rounds: int, duration: float) -> dict:
    """architecture -> one Result per round; rounds interleave, so all see the same load."""
    runs: dict[str, list] = {a: [] for a in architectures}
    for _ in range(rounds):
        for arch in architectures:
            result = arch_servers.measure(arch, [workload], duration)
            assert result.errors == 0
            runs[arch].append(result)
    return runs


def test_iterative_is_slowest_under_concurrent_io_bound_load(monkeypatch):
    # A 50 ms wait instead of the page's 10 ms: overlapping waits only shows while the wait
    # outlasts each request's CPU, and on a machine whose cores are shared many times over a
    # request's few ms of CPU stretch past 10 ms of wall time (the forked servers inherit it).
    monkeypatch.setattr(arch_servers, "IO_SECONDS", 0.05)
    runs = interleaved(list(arch_servers.ARCHITECTURES), "/io", rounds=3, duration=0.25)
    rate = {a: statistics.median(r.requests_per_second() for r in rs) for a, rs in runs.items()}
    iterative = rate.pop("iterative")
    for arch, value in rate.items():
        # 8 clients waiting 50 ms each: ~8x (4x for the pool and pre-fork of 4) in theory.
        # Noise budget: with the page's 10 ms wait the smallest ratio (median of 3 rounds)
        # was 2.3-3.5 over 10 runs (5 with two busy-loop processes) and fell to 1.3 at a
        # load average of 20 on the 2 cores; with 50 ms it was 3.1-3.8 over 3 runs at a load
        # average of 14-17. 2x stays well below that.
        assert value > 2 * iterative, f"{arch}: {value:.0f} req/s vs iterative {iterative:.0f}"


def spin(seconds: float) -> None:
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        pass


def free_cores(seconds: float = 0.2, processes: int = 4) -> float:
    """CPU-seconds per second that 4 busy processes (as many as the pre-fork server has)
    get right now: ~2.0 on an idle 2-core machine, ~1.0 or less when other work already
    fills the cores."""
    fork = multiprocessing.get_context("fork")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    spinners = [fork.Process(target=spin, args=(seconds,)) for _ in range(processes)]
    for p in spinners:
        p.start()
    for p in spinners:
        p.join(timeout=10)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime) / wall


def wait_for_free_cores(at_least: float, probes: int = 40) -> float:
    """free_cores() until it reaches `at_least` or `probes` tries (~10 s) have passed: a
    quiet VM can lose its second vCPU for seconds (the host's other guests: /proc/stat's
    steal column was ~33% over one such spell here). The last value."""
    free = 0.0
    for _ in range(probes):
        free = free_cores()
        if free >= at_least:
            break
    return free


ATTEMPTS = 5  # measurements whose free cores may fall short before the test gives up


@pytest.mark.exclusive  # needs both cores: runs after the parallel phase of `make test`
@pytest.mark.timeout(600)  # up to ATTEMPTS x (10 s waiting for cores + ~5 s measuring)
def test_threads_do_not_speed_up_cpu_bound_python_but_processes_do():
    archs = ["thread per connection", "pre-fork (4 processes)"]
    seen = []
    for _attempt in range(ATTEMPTS):
        free_before = wait_for_free_cores(1.5)
        runs = interleaved(archs, "/cpu", rounds=5, duration=0.25)
        free = min(free_before, free_cores())
        seen.append(round(free, 2))
        threads, processes = runs.values()
        # The GIL: however many threads, one computes at a time, so at most ~1 core is
        # busy, in every attempt whatever the machine had. Noise budget: thread cores
        # 0.14-0.50 over 10 runs on the shared machine (5 with two busy-loop processes);
        # more than 1.1 would need two threads computing at once.
        assert statistics.median(r.cores() for r in threads) < 1.1
        # Parallel speedup needs a free second core, measured apart from the servers
        # before and after. When other work fills the machine no server can show it: only
        # this precondition is measured again, never the claim below.
        if free >= 1.5:
            break
    else:
        reason = f"cores free for 4 busy processes in {ATTEMPTS} tries: {seen}: too busy"
        if services_required():  # CI runs this alone on an idle machine: it must not skip
            pytest.fail(reason)
        pytest.skip(reason)
    # Processes compute in parallel: on 2 cores, up to ~2x the requests per second.
    # Noise budget: alone on the machine (2026-12-02, 8 runs, 1.86-1.93 cores free) pre-fork
    # over threads was 1.69-2.39; on the busy shared machine (free cores 0.08-0.43 over 10
    # runs) this part never ran. A CI run failed its gate once (0.9 cores free, a helper
    # running beside it): hence waiting for free cores and measuring again.
    speedup = statistics.median(
        p.requests_per_second() / t.requests_per_second()
        for p, t in zip(processes, threads, strict=True)
    )
    print(f"free cores {seen}, pre-fork / threads = {speedup:.2f}")  # read with -rA
    assert speedup > 1.3, f"pre-fork / threads = {speedup:.2f}"


def test_one_blocking_call_in_the_event_loop_delays_requests_that_never_block():
    """Counted, not a p99 (a 0.2 s run has tens of /io requests): the share of /io requests
    that took at least a whole blocking call (100 ms, 10x their own wait), with the loop
    clean and with 1 request in 20 blocking, interleaved. /io never blocks, yet while a
    /block sleeps no other coroutine runs: the 7 other clients' requests all wait it out."""
    block = arch_servers.BLOCK_SECONDS
    extra = []
    for _ in range(5):
        clean, blocked = arch_servers.blocking_in_the_loop(duration=0.2)
        assert clean.errors == blocked.errors == 0
        assert blocked.latencies["/block"], "some requests did block the loop"
        extra.append(
            blocked.share_slower_than(block, "/io") - clean.share_slower_than(block, "/io")
        )
    # Noise budget: by construction ~0.6 (the 7 /io requests in flight with each /block wait
    # it out: ~14 of ~23). Medians of 3 rounds were 0.61 in all of 7 runs, 4 of them with
    # two busy-loop processes (single rounds 0.41-0.64). An earlier mix, with the /block 9th,
    # sometimes sent no /block at all in 0.2 s on a starved machine, and its medians fell to
    # 0.15 (single rounds -0.55 to 1.0); hence /block first, and 5 rounds. Bound: 0.1.
    assert statistics.median(extra) > 0.1, extra
