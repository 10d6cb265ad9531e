"""An event loop from scratch (docs/design/event-loop.md): the selectors + generators loop and
asyncio serve the same line-echo protocol; a blocking handler stalls every other client on
both (the non-blocking handler is the control); bad input gets an error, never a hang."""

from __future__ import annotations

import select
import socket
import statistics
import struct
import subprocess
import sys
import threading
import time
import types

import pytest

from tests.conftest import load_snippet

echo = load_snippet("design/event_loop_echo")
SERVERS = list(echo.SERVERS)


@pytest.mark.parametrize("server", SERVERS)
def test_one_thread_serves_many_clients_at_once(server):
    # Threads counted after all 200 lines came back, with the 200 clients still connected.
    assert echo.many_clients(server, clients=200) == (200, 1)


def test_the_count_would_see_a_thread_per_connection_server():
    """The control: the same count on socketserver.ThreadingTCPServer sees 200 more threads."""
    assert echo.many_clients("thread per connection", clients=200) == (200, 201)


@pytest.mark.parametrize("server", SERVERS)
def test_a_blocking_handler_stalls_every_other_client_and_the_non_blocking_one_does_not(server):
    # Noise budget: 40 runs of this test's 7 paired rounds per server on the busy 2-core
    # machine (flake hunt running, load 4-9): median blocked / fastest free was 72x-143x
    # for our loop and 74x-130x for asyncio; single free rounds took up to 11.5 ms, but
    # the fastest free round of a run at most 0.71 ms; the median blocked round was at
    # least 51.0 ms. A review measured single rounds at load 10-13 (2 of 20 paired rounds
    # with a ratio under 5: blocked 57.8 vs free 83.1 ms, 51.0 vs 46.7 ms), which the old
    # statistic (median of 5 per-round ratios) could not absorb. The margin of 5x holds
    # because load only adds delay to an echo, so all 7 free rounds would have to take
    # over 10 ms (~0.1^7 at the review's rate), while a blocked wait is the rest of the
    # 50 ms sleep; it shrinks only if the client is descheduled after reading "sleeping",
    # and the median of 7 rounds needs that for over 40 ms in four of them.
    blocked, free = [], []
    for _ in range(7):  # paired rounds, interleaved
        blocked.append(echo.others_wait(server, blocking=True))
        free.append(echo.others_wait(server, blocking=False))
    assert statistics.median(blocked) > 5 * min(free), (blocked, free)


@pytest.mark.parametrize("server", SERVERS)
def test_bad_input_gets_an_error_and_nothing_is_lost_for_the_others(server):
    out = echo.bad_input(server)
    assert out["malformed"] == b"ERR malformed: not UTF-8"
    assert out["malformed, then"] == b"still here"  # the connection survives a bad line
    assert out["bad SLEEP"] == b"ERR malformed: SLEEP needs a number of seconds"
    assert out["oversized"] == b"ERR line too long (limit 1024 bytes)"
    assert out["oversized, then"] == "closed"
    assert out["slow"] == b"ERR timeout: no complete line in 0.2 s"
    assert out["slow, then"] == "closed"
    assert out["witness while slow waits"].endswith("lines echoed, 0 lost")
    assert int(out["witness while slow waits"][1:].split()[0]) > 0
    assert out["witness after"] == b"still served"


@pytest.mark.parametrize("server", SERVERS)
def test_both_servers_draw_the_line_limit_at_the_same_byte(server):
    with echo.SERVERS[server](False) as address:
        client = echo.Client(address)
        try:
            assert client.ask(b"y" * echo.MAX_LINE) == b"y" * echo.MAX_LINE
            assert client.ask(b"z" * (echo.MAX_LINE + 1)).startswith(b"ERR line too long")
            assert client.read() == b""  # then closed
        finally:
            client.close()


@pytest.mark.parametrize("server", SERVERS)
def test_a_client_dripping_one_byte_at_a_time_still_times_out(server):
    """Slowloris: each byte arrives well within the timeout, the line never completes.
    The deadline is per line, not per recv(), so the drip does not keep it alive."""
    with echo.SERVERS[server](False) as address:
        client = echo.Client(address)
        try:
            for _ in range(200):  # at most 200 x 0.05 s: a hang guard, never reached
                client.sock.sendall(b"a")
                if select.select([client.sock], [], [], 0.05)[0]:
                    break
            assert client.read() == b"ERR timeout: no complete line in 0.2 s"
        finally:
            client.close()


@pytest.mark.parametrize("server", SERVERS)
def test_break_it_without_a_deadline_a_slow_client_holds_its_connection(server, monkeypatch):
    def slow_client_answered(wait: float) -> bool:
        with echo.SERVERS[server](False) as address:
            client = echo.Client(address)
            try:
                client.sock.sendall(b"half a li")
                return bool(select.select([client.sock], [], [], wait)[0])
            finally:
                client.close()

    assert slow_client_answered(wait=5.0)  # the control: answered after 0.2 s
    monkeypatch.setattr(echo, "LINE_TIMEOUT", 3600.0)  # "no deadline"
    # Five times the normal timeout without an answer; the server still stops cleanly.
    assert not slow_client_answered(wait=5 * 0.2)


@pytest.mark.parametrize("server", SERVERS)
def test_an_idle_connection_is_closed_after_the_idle_timeout(server, monkeypatch):
    monkeypatch.setattr(echo, "IDLE_TIMEOUT", 0.2)  # 5 s in the snippet; shortened here
    with echo.SERVERS[server](False) as address:
        client = echo.Client(address)
        try:
            assert client.ask(b"one line") == b"one line"
            assert client.read() == b"ERR timeout: idle for 0.2 s"  # then nothing sent
            assert client.read() == b""
        finally:
            client.close()


def test_a_crashing_handler_does_not_stop_the_loop():
    def broken():
        yield ("sleep", 0.0)
        raise RuntimeError("bug in one handler")

    loop = echo.Loop()
    loop.spawn(broken())
    results = []

    def fine():
        yield ("sleep", 0.0)
        results.append("ran")
        loop.stop()

    loop.spawn(fine())
    loop.run()
    loop.waker_r.close()
    loop.waker_w.close()
    assert (loop.crashed, results) == (1, ["ran"])


# --- bad input beyond one line: descriptors running out, a client that does not read ---

SERVE_WITH_FEW_DESCRIPTORS = """
import importlib.util, resource, sys
spec = importlib.util.spec_from_file_location("echo", sys.argv[1])
echo = importlib.util.module_from_spec(spec)
sys.modules["echo"] = echo
spec.loader.exec_module(echo)
if sys.argv[3] == "no guard":  # the Break it: accept() errors end the accept task
    def accept(loop, listener, blocking):
        while True:
            yield ("read", listener, None)
            sock, _ = listener.accept()
            sock.setblocking(False)
            loop.spawn(echo.handle(sock, blocking))
    echo.accept = accept
resource.setrlimit(resource.RLIMIT_NOFILE, (40, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
with echo.SERVERS[sys.argv[2]](False) as address:
    print(address[1], flush=True)
    sys.stdin.read()  # until the test closes our stdin
"""


@pytest.mark.parametrize(
    ("server", "guard"),
    [("from scratch", "guard"), ("asyncio", "guard"), ("from scratch", "no guard")],
)
def test_running_out_of_descriptors_pauses_accepting_and_recovers(server, guard):
    """The server process may hold 40 descriptors; 60 clients connect at once. accept()
    fails with EMFILE: the server logs it, and serves a new client once descriptors free.
    Without the guard around accept() (the Break it), our loop never accepts again."""
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVE_WITH_FEW_DESCRIPTORS, echo.__file__, server, guard],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    log, emfile_logged = [], threading.Event()

    def drain_stderr() -> None:  # a full pipe would block the server's logging, and its loop
        for line in proc.stderr:
            log.append(line)
            if b"Too many open files" in line:
                emfile_logged.set()

    drainer = threading.Thread(target=drain_stderr)
    drainer.start()
    try:
        port = int(proc.stdout.readline())
        crowd = [echo.Client(("127.0.0.1", port)) for _ in range(60)]  # the backlog holds them
        # The waits below are hang guards (20 s, 15 s), not budgets: a run takes ~2 s here.
        assert emfile_logged.wait(20), b"".join(log)  # EMFILE really happened, and was logged
        for client in crowd:
            client.close()  # the server sees each end of stream and frees its descriptor
        fresh = echo.Client(("127.0.0.1", port))  # connects: the kernel's backlog has room
        try:
            if guard == "guard":
                fresh.sock.settimeout(15)  # the servers retry accept() after 1 s
                assert fresh.ask(b"hello") == b"hello"
            else:  # the accept task died: nobody will ever read this client
                fresh.sock.sendall(b"hello\n")
                assert not select.select([fresh.sock], [], [], 3)[0]
        finally:
            fresh.close()
        proc.stdin.close()
        assert proc.wait(timeout=15) == 0, b"".join(log)  # and it still stops cleanly
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        drainer.join()
        proc.stdout.close()
        proc.stderr.close()


def dropped_while_reading_slowly(address: tuple[str, int], guard: float) -> bool:
    """Send whole lines without pause and read only one byte when the server will take no
    more: True once the server drops the connection, False if it still holds it at `guard`."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)  # fill up sooner
    sock.connect(address)
    sock.setblocking(False)
    line, pending = b"r" * 1000 + b"\n", b""
    give_up = time.monotonic() + guard
    try:
        while time.monotonic() < give_up:
            if select.select([], [sock], [], 0.05)[1]:
                pending = pending or line  # whole lines only: a cut one would be too long
                pending = pending[sock.send(pending) :]
            else:
                sock.recv(1)  # the slow reader: one byte per 50 ms
            state = struct.unpack("B", sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 1))
            if state[0] == 7:  # TCP_CLOSE (Linux tcp_states.h): reset by the server
                return True
        return False
    except (ConnectionResetError, BrokenPipeError):
        return True
    finally:
        sock.close()


@pytest.mark.parametrize("server", SERVERS)
def test_a_client_that_reads_too_slowly_is_dropped_after_the_write_deadline(server, monkeypatch):
    # Noise budget: 10 runs per server at load ~4-5 dropped the client after 0.67-1.04 s
    # (ours) and 0.55-0.68 s (asyncio); the guard of 30 s only stops a hang. The Break it
    # needs no margin: with an hour's deadline nothing drops the client in the 2 s watched.
    monkeypatch.setattr(echo, "WRITE_TIMEOUT", 0.3)  # 5 s in the snippet; shortened here
    with echo.SERVERS[server](False) as address:
        assert dropped_while_reading_slowly(address, guard=30.0)  # ~0.7 s here
    # Break it: with no write deadline the same client holds its connection.
    monkeypatch.setattr(echo, "WRITE_TIMEOUT", 3600.0)
    with echo.SERVERS[server](False) as address:
        assert not dropped_while_reading_slowly(address, guard=2.0)


def test_the_write_deadline_is_one_per_reply_not_one_per_wait(monkeypatch):
    """A client that takes a byte now and then must not push the deadline back each time."""
    clock = iter(range(1000))
    monkeypatch.setattr(echo, "time", types.SimpleNamespace(monotonic=lambda: next(clock)))

    class TakesOneByte:
        def send(self, data: memoryview) -> int:
            return 1

    waits = list(echo.send_all(TakesOneByte(), b"abc"))
    assert [deadline for _, _, deadline in waits] == [echo.WRITE_TIMEOUT] * 3


def test_stale_deadlines_do_not_pile_up_in_the_timer_heap():
    """Every wait below ends by its socket, never its deadline: each leaves a stale timer."""
    loop = echo.Loop()
    readable, other = socket.socketpair()
    other.send(b"x")  # never read: `readable` stays readable
    heap_sizes = []

    def waiter():
        for _ in range(5000):
            yield ("read", readable, time.monotonic() + 60)
            heap_sizes.append(len(loop.timers))
        loop.stop()

    loop.spawn(waiter())
    try:
        loop.run()
    finally:
        for sock in (readable, other, loop.waker_r, loop.waker_w):
            sock.close()
    assert len(heap_sizes) == 5000 and max(heap_sizes) <= 101, max(heap_sizes)


@pytest.mark.parametrize("server", SERVERS)
def test_a_loop_that_does_not_stop_is_reported_not_leaked(server, monkeypatch):
    # Noise budget: none needed: the loop's thread sleeps 1 s after answering "sleeping",
    # and stop() is asked to finish in 0.1 s, which no scheduling can make possible.
    monkeypatch.setattr(echo, "STOP_TIMEOUT", 0.1)
    stopping = echo.SERVERS[server](True)  # blocking handlers
    with pytest.raises(RuntimeError, match="did not stop"), stopping as address:
        client = echo.Client(address)
        try:
            assert client.ask(b"SLEEP 1.0") == b"sleeping"  # the loop's thread sleeps 1 s
        finally:
            client.close()
    for thread in threading.enumerate():  # the loop ends once its sleep is over
        if thread.name in ("scratch-loop", "asyncio-loop"):
            thread.join(15)
            assert not thread.is_alive()
