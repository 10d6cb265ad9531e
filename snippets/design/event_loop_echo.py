"""An event loop from scratch (selectors + generators) serving a line-echo server, beside asyncio.

Run: python snippets/design/event_loop_echo.py
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import heapq
import itertools
import logging
import select
import selectors
import socket
import socketserver
import statistics
import threading
import time
from collections import deque
from collections.abc import Callable, Generator, Iterator
from contextlib import contextmanager
from typing import Any

MAX_LINE = 1024  # bytes in one line, newline excluded; a longer line is refused
IDLE_TIMEOUT = 5.0  # seconds a connection may wait between lines (keep-alive)
LINE_TIMEOUT = 0.2  # seconds from a line's first byte to its newline (slowloris)
WRITE_TIMEOUT = 5.0  # seconds a client has to take in one reply (one that never reads)
MAX_SLEEP = 1.0  # the longest SLEEP a client may ask for
ACCEPT_RETRY_DELAY = 1.0  # out of descriptors: wait this long before accepting again
STOP_TIMEOUT = 5.0  # seconds a server's thread has to end after stop()
log = logging.getLogger("event_loop_echo")

# --8<-- [start:loop]
# A task is a generator. It yields what it waits for; the loop resumes it when that happens:
#   ("read", sock, deadline)   until sock is readable (TimeoutError thrown in at the deadline)
#   ("write", sock, deadline)  until sock is writable
#   ("sleep", seconds)         until the time has passed
Task = Generator[tuple, Any, None]


class Loop:
    def __init__(self) -> None:
        self.selector = selectors.DefaultSelector()
        self.ready: deque[tuple[Task, BaseException | None]] = deque()
        self.timers: list[tuple[float, int, Task]] = []  # a heap, earliest first (some stale)
        self.waiting: dict[Task, tuple[int, socket.socket | None]] = {}  # wait id, socket
        self.ids = itertools.count()
        self.waker_r, self.waker_w = socket.socketpair()  # stop() writes here to wake select
        self.selector.register(self.waker_r, selectors.EVENT_READ, None)
        self.stopping = False
        self.crashed = 0  # handlers that raised: counted, never fatal to the loop

    def spawn(self, task: Task) -> None:
        self.ready.append((task, None))

    def _step(self, task: Task, error: BaseException | None) -> None:
        """Run one task until it yields what it waits for, then register that wait."""
        try:
            what = task.throw(error) if error else task.send(None)
        except StopIteration:
            return
        except Exception:
            self.crashed += 1  # one broken handler must not take every client down
            log.exception("a task crashed; the loop goes on")
            return
        wait_id = next(self.ids)
        if what[0] == "sleep":
            self.waiting[task] = (wait_id, None)
            heapq.heappush(self.timers, (time.monotonic() + what[1], wait_id, task))
            return
        kind, sock, deadline = what
        events = selectors.EVENT_READ if kind == "read" else selectors.EVENT_WRITE
        self.selector.register(sock, events, (task, wait_id))
        self.waiting[task] = (wait_id, sock)
        if deadline is not None:
            heapq.heappush(self.timers, (deadline, wait_id, task))

    def _wake(self, task: Task, wait_id: int, timed_out: bool) -> None:
        current = self.waiting.get(task)
        if current is None or current[0] != wait_id:
            return  # a stale timer: the socket woke this task first (or the reverse)
        del self.waiting[task]
        sock = current[1]
        if sock is not None:
            self.selector.unregister(sock)
        # A socket wait that reached its deadline gets TimeoutError; a sleep just resumes.
        self.ready.append((task, TimeoutError() if timed_out and sock is not None else None))

    def run(self) -> None:
        while not self.stopping:
            while self.ready:  # run everything that can run, one task at a time
                self._step(*self.ready.popleft())
            timeout = max(0.0, self.timers[0][0] - time.monotonic()) if self.timers else None
            for key, _ in self.selector.select(timeout):  # the only place the loop waits
                if key.data is None:
                    self.waker_r.recv(64)
                else:
                    self._wake(*key.data, timed_out=False)
            now = time.monotonic()
            while self.timers and self.timers[0][0] <= now:
                _, wait_id, task = heapq.heappop(self.timers)
                self._wake(task, wait_id, timed_out=True)
            self._purge_timers()
        for task in [*self.waiting, *(t for t, _ in self.ready)]:
            task.close()  # GeneratorExit in each task: its finally closes its socket
        self.selector.close()

    def _purge_timers(self) -> None:
        """A socket that woke its task first leaves that wait's deadline in the heap (stale).
        Each task has at most one live timer, so once stale entries are over half the heap,
        rebuild it from the live ones (asyncio does the same with cancelled TimerHandles)."""
        if len(self.timers) > 100 and len(self.timers) > 2 * len(self.waiting):
            live = [(at, i, t) for at, i, t in self.timers if self.waiting.get(t, (None,))[0] == i]
            heapq.heapify(live)
            self.timers = live

    def stop(self) -> None:
        self.stopping = True
        self.waker_w.send(b"x")


# --8<-- [end:loop]


# --8<-- [start:server]
def read_line(sock: socket.socket, buffer: bytearray) -> Generator[tuple, Any, bytes | None]:
    """One line without its newline; None at end of stream. ValueError past MAX_LINE bytes,
    TimeoutError when idle too long or when a started line is not finished in time."""
    deadline = time.monotonic() + (LINE_TIMEOUT if buffer else IDLE_TIMEOUT)
    while b"\n" not in buffer:
        if len(buffer) > MAX_LINE:
            raise ValueError("line too long")
        try:
            yield ("read", sock, deadline)
        except TimeoutError:
            raise TimeoutError("line" if buffer else "idle") from None
        try:
            chunk = sock.recv(65536)
        except BlockingIOError:
            continue  # a spurious wake-up: wait again
        if not chunk:
            return None  # the client closed (a partial last line is dropped)
        if not buffer:
            deadline = time.monotonic() + LINE_TIMEOUT  # the line has started
        buffer += chunk
    line, _, rest = bytes(buffer).partition(b"\n")
    buffer[:] = rest
    if len(line) > MAX_LINE:
        raise ValueError("line too long")
    return line


def send_all(sock: socket.socket, data: bytes) -> Generator[tuple, Any, None]:
    """TimeoutError if the client has not taken the whole reply within WRITE_TIMEOUT: one
    deadline per reply, so reading a byte now and then does not hold the connection."""
    view, deadline = memoryview(data), time.monotonic() + WRITE_TIMEOUT
    while view:
        yield ("write", sock, deadline)
        with contextlib.suppress(BlockingIOError):
            view = view[sock.send(view) :]


def refuse(sock: socket.socket, message: bytes) -> Generator[tuple, Any, None]:
    """Send the error, end our side, and read what the client still sends until it closes
    (a bounded wait): closing with unread input would make the kernel send a reset, and the
    client could lose the error message (NGINX's lingering_close does the same)."""
    yield from send_all(sock, message)
    sock.shutdown(socket.SHUT_WR)
    deadline = time.monotonic() + LINE_TIMEOUT
    with contextlib.suppress(TimeoutError, BlockingIOError):
        while True:
            yield ("read", sock, deadline)
            if not sock.recv(65536):
                return


def timeout_message(which: str) -> bytes:
    if which == "idle":
        return b"ERR timeout: idle for %.1f s\n" % IDLE_TIMEOUT
    return b"ERR timeout: no complete line in %.1f s\n" % LINE_TIMEOUT


def handle(sock: socket.socket, blocking: bool) -> Task:
    buffer = bytearray()
    try:
        while True:
            try:
                line = yield from read_line(sock, buffer)
            except ValueError:
                yield from refuse(sock, b"ERR line too long (limit %d bytes)\n" % MAX_LINE)
                return
            except TimeoutError as timeout:
                yield from refuse(sock, timeout_message(str(timeout)))
                return
            if line is None:
                return
            reply = respond(line)
            if isinstance(reply, float):  # SLEEP: the handler's slow work
                yield from send_all(sock, b"sleeping\n")
                if blocking:
                    time.sleep(reply)  # blocks the only thread: every other client waits
                else:
                    yield ("sleep", reply)  # suspends this task only
                reply = b"slept\n"
            yield from send_all(sock, reply)
    except OSError:  # reset, not connected, or a write that timed out
        return  # the client went away or stopped reading: drop it, keep serving others
    finally:
        sock.close()


def respond(line: bytes) -> bytes | float:
    """The protocol: UTF-8 lines; 'SLEEP <seconds>' works that long; anything else is echoed."""
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        return b"ERR malformed: not UTF-8\n"
    if text.startswith("SLEEP "):
        try:
            seconds = float(text[6:])
        except ValueError:
            return b"ERR malformed: SLEEP needs a number of seconds\n"
        if not 0 <= seconds <= MAX_SLEEP:
            return b"ERR malformed: SLEEP between 0 and %.1f s\n" % MAX_SLEEP
        return seconds
    return line + b"\n"


def accept(loop: Loop, listener: socket.socket, blocking: bool) -> Task:
    while True:
        yield ("read", listener, None)
        try:
            sock, _ = listener.accept()
        except (BlockingIOError, InterruptedError, ConnectionAbortedError):
            continue  # nothing to accept after all, or the client left before we took it
        except OSError as error:
            if error.errno not in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                log.warning("accept() failed (%s): skipped", error)  # Linux: a network error
                continue  # of that one connection (accept(2) says to retry)
            # Out of descriptors or memory: the client waits in the kernel's backlog. Log it,
            # stop accepting for a while (selecting again at once would spin), then retry.
            log.error("accept() failed (%s): retrying in %.1f s", error, ACCEPT_RETRY_DELAY)
            yield ("sleep", ACCEPT_RETRY_DELAY)
            continue
        sock.setblocking(False)
        loop.spawn(handle(sock, blocking))


# --8<-- [end:server]


# --8<-- [start:asyncio]
async def read_line_async(reader: asyncio.StreamReader) -> bytes | None:
    """The same rules on asyncio: the first byte within IDLE_TIMEOUT, the rest of the line
    within LINE_TIMEOUT; the stream's limit (MAX_LINE - 1, the first byte is already read)
    makes readuntil() raise LimitOverrunError for a longer line."""
    try:
        async with asyncio.timeout(IDLE_TIMEOUT):
            first = await reader.read(1)
    except TimeoutError:
        raise TimeoutError("idle") from None
    if first in (b"", b"\n"):
        return None if first == b"" else b""
    try:
        async with asyncio.timeout(LINE_TIMEOUT):
            rest = await reader.readuntil(b"\n")
    except TimeoutError:
        raise TimeoutError("line") from None
    except asyncio.IncompleteReadError:
        return None  # the client closed (a partial last line is dropped)
    except asyncio.LimitOverrunError:
        raise ValueError("line too long") from None
    return first + rest[:-1]


async def handle_async(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, blocking: bool
) -> None:
    try:
        while True:
            try:
                line = await read_line_async(reader)
            except ValueError:
                message = b"ERR line too long (limit %d bytes)\n" % MAX_LINE
                return await refuse_async(reader, writer, message)
            except TimeoutError as timeout:
                return await refuse_async(reader, writer, timeout_message(str(timeout)))
            if line is None:
                return
            reply = respond(line)
            if isinstance(reply, float):
                await send_all_async(writer, b"sleeping\n")
                if blocking:
                    time.sleep(reply)  # blocks the event loop's only thread
                else:
                    await asyncio.sleep(reply)  # suspends this task only
                reply = b"slept\n"
            await send_all_async(writer, reply)
    except OSError:  # reset, not connected, or a reply not taken in time (TimeoutError)
        return
    except asyncio.CancelledError:
        return  # asyncio.run() cancels what is left when the server stops: end quietly
    finally:
        writer.close()


async def send_all_async(writer: asyncio.StreamWriter, data: bytes) -> None:
    """write() only buffers; drain() waits while the buffer is over its high-water mark.
    One deadline for the whole reply, as send_all has."""
    writer.write(data)
    try:
        async with asyncio.timeout(WRITE_TIMEOUT):
            await writer.drain()
    except TimeoutError:
        writer.transport.abort()  # close() would wait for the unread bytes to flush, forever
        raise


async def refuse_async(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, message: bytes
) -> None:
    await send_all_async(writer, message)
    writer.write_eof()
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(LINE_TIMEOUT):
            while await reader.read(65536):
                pass


# --8<-- [end:asyncio]


# --8<-- [start:run]
@contextmanager
def scratch_server(blocking: bool) -> Iterator[tuple[str, int]]:
    """Our loop in a thread, serving 127.0.0.1 on an ephemeral port; stopped on exit."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.setblocking(False)
    loop = Loop()
    loop.spawn(accept(loop, listener, blocking))
    thread = threading.Thread(target=loop.run, name="scratch-loop")
    thread.start()
    try:
        yield listener.getsockname()[:2]
    finally:
        loop.stop()
        thread.join(STOP_TIMEOUT)
        listener.close()
        loop.waker_r.close()
        loop.waker_w.close()
        if thread.is_alive():  # a handler that never yields holds the loop: say so
            raise RuntimeError(f"the loop did not stop within {STOP_TIMEOUT} s")


@contextmanager
def asyncio_server(blocking: bool) -> Iterator[tuple[str, int]]:
    """asyncio.start_server in a thread, same address rules; stopped on exit."""
    started, box = threading.Event(), {}

    async def serve() -> None:
        server = await asyncio.start_server(
            lambda r, w: handle_async(r, w, blocking), "127.0.0.1", 0, limit=MAX_LINE - 1
        )
        box["address"] = server.sockets[0].getsockname()[:2]
        box["loop"], box["stop"] = asyncio.get_running_loop(), asyncio.Event()
        started.set()
        async with server:
            await box["stop"].wait()

    thread = threading.Thread(target=asyncio.run, args=(serve(),), name="asyncio-loop")
    thread.start()
    if not started.wait(5):
        raise RuntimeError("asyncio server did not start")
    try:
        yield box["address"]
    finally:
        box["loop"].call_soon_threadsafe(box["stop"].set)
        thread.join(STOP_TIMEOUT)
        if thread.is_alive():
            raise RuntimeError(f"the asyncio loop did not stop within {STOP_TIMEOUT} s")


SERVERS: dict[str, Callable[[bool], contextlib.AbstractContextManager[tuple[str, int]]]] = {
    "from scratch": scratch_server,
    "asyncio": asyncio_server,
}


@contextmanager
def threaded_server(blocking: bool = True) -> Iterator[tuple[str, int]]:
    """The control for "one thread": the standard library's thread-per-connection server
    (echo only, no limits: it is here to be counted, not to serve)."""

    class Echo(socketserver.StreamRequestHandler):
        def handle(self) -> None:
            for line in self.rfile:
                self.wfile.write(line)

    class Server(socketserver.ThreadingTCPServer):
        request_queue_size = 512  # over 200: a full backlog drops SYNs, retried after 1 s

    server = Server(("127.0.0.1", 0), Echo)  # server_close() joins the handler threads
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), name="threaded-accept")
    thread.start()
    try:
        yield server.server_address[:2]
    finally:
        server.shutdown()
        thread.join(STOP_TIMEOUT)
        server.server_close()


# --8<-- [end:run]


# --8<-- [start:measure]
class Client:
    def __init__(self, address: tuple[str, int]) -> None:
        self.sock = socket.create_connection(address, timeout=5)
        self.file = self.sock.makefile("rb")

    def ask(self, line: bytes) -> bytes:
        self.sock.sendall(line + b"\n")
        return self.read()

    def read(self) -> bytes:
        return self.file.readline().rstrip(b"\n")  # b"" once the server closed

    def close(self) -> None:
        self.file.close()
        self.sock.close()


def others_wait(server: str, blocking: bool, clients: int = 10, work: float = 0.05) -> float:
    """While one client's handler works for `work` seconds, `clients` others each send one
    line. Return the median time they waited for their echo (closed loop, one line each)."""
    with SERVERS[server](blocking) as address:
        slow, others = Client(address), [Client(address) for _ in range(clients)]
        try:
            for other in others:
                assert other.ask(b"hello") == b"hello"  # connected and served once
            assert slow.ask(b"SLEEP %.3f" % work) == b"sleeping"  # the handler is working now
            sent = []
            for other in others:
                sent.append(time.perf_counter())
                other.sock.sendall(b"ping\n")
            waits = []
            for other, start in zip(others, sent, strict=True):
                assert other.read() == b"ping"
                waits.append(time.perf_counter() - start)
            assert slow.read() == b"slept"
            return statistics.median(waits)
        finally:
            for client in (slow, *others):
                client.close()


def many_clients(server: str, clients: int = 200) -> tuple[int, int]:
    """Connect `clients` at once, each sends a line: return (lines echoed, server threads
    counted while all of them are still connected)."""
    before = threading.active_count()
    start = {**SERVERS, "thread per connection": threaded_server}[server]
    with start(False) as address:
        connected = [Client(address) for _ in range(clients)]  # all open at the same time
        try:
            for i, client in enumerate(connected):
                client.sock.sendall(b"client %d\n" % i)
            echoed = sum(c.read() == b"client %d" % i for i, c in enumerate(connected))
            return echoed, threading.active_count() - before  # what the server runs on
        finally:
            for client in connected:
                client.close()


def stall_table(rounds: int = 5) -> dict[tuple[str, bool], list[float]]:
    """Every server and handler, interleaved within each round: median waits per round."""
    results: dict[tuple[str, bool], list[float]] = {}
    for _ in range(rounds):
        for server in SERVERS:
            for blocking in (True, False):
                results.setdefault((server, blocking), []).append(others_wait(server, blocking))
    return results


# --8<-- [end:measure]


# --8<-- [start:bad]
def bad_input(server: str) -> dict[str, object]:
    """Malformed, oversized and slow input, while a witness client keeps talking."""
    with SERVERS[server](False) as address:
        witness, malformed, oversized, slow = (Client(address) for _ in range(4))
        try:
            out: dict[str, object] = {}
            out["malformed"] = malformed.ask(b"\xff\xfe not utf-8")
            out["malformed, then"] = malformed.ask(b"still here")
            out["bad SLEEP"] = malformed.ask(b"SLEEP soon")
            out["oversized"] = oversized.ask(b"x" * (4 * MAX_LINE))
            out["oversized, then"] = oversized.read() or "closed"
            slow.sock.sendall(b"half a li")  # and nothing more
            sent = echoed = 0
            while not select.select([slow.sock], [], [], 0)[0]:  # until the server answers it
                echoed += witness.ask(b"line %d" % sent) == b"line %d" % sent
                sent += 1
            out["witness while slow waits"] = f"~{echoed} lines echoed, {sent - echoed} lost"
            out["slow"] = slow.read()
            out["slow, then"] = slow.read() or "closed"
            out["witness after"] = witness.ask(b"still served")
            return out
        finally:
            for client in (witness, malformed, oversized, slow):
                client.close()


# --8<-- [end:bad]


def main() -> None:
    for server in (*SERVERS, "thread per connection"):
        echoed, threads = many_clients(server)
        print(
            f"{server}: 200 clients connected at once, {echoed} echoed,"
            f" {threads} server thread{'s' * (threads != 1)}"
        )
    rounds = 5
    table = stall_table(rounds)
    print(
        f"10 clients send one line while an 11th client's handler works 0.05 s ({rounds} rounds):"
    )
    print(f"  {'server':13} {'handler':24} median wait (min-max of round medians)")
    for (server, blocking), waits in table.items():
        handler = (
            "time.sleep(0.05)"
            if blocking
            else ("yield sleep" if server == "from scratch" else "await asyncio.sleep")
        )
        print(
            f"  {server:13} {handler:24} {statistics.median(waits) * 1000:6.1f} ms"
            f"  ({min(waits) * 1000:.1f}-{max(waits) * 1000:.1f})"
        )
    for server in SERVERS:  # noise only adds delay to an echo: its fastest round is its cost
        ratio = statistics.median(table[server, True]) / min(table[server, False])
        print(f"  {server}: median blocked wait / fastest non-blocking round = {ratio:.1f}x")
    for server in SERVERS:
        print(f"bad input, {server} server:")
        for what, reply in bad_input(server).items():
            shown = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply
            print(f"  {what:26} {shown}")


if __name__ == "__main__":
    main()
