"""One HTTP handler served six ways, load-tested under IO-bound and CPU-bound work.

Run: python snippets/servers/arch_servers.py
"""

from __future__ import annotations

import asyncio
import heapq
import multiprocessing
import os
import resource
import selectors
import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.utils import formatdate

IO_SECONDS = 0.010  # /io waits 10 ms, like a call to a database
CPU_LOOPS = 80_000  # /cpu computes ~5 ms of pure Python
BLOCK_SECONDS = 0.100  # /block waits 100 ms with a *blocking* call
MAX_HEAD = 8192  # bytes of request line + headers before 431
READ_TIMEOUT = 2.0  # seconds a client gets to send its whole request head before 408
REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    408: "Request Timeout",
    431: "Request Header Fields Too Large",
}


# --8<-- [start:http]
class HttpError(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


def parse_target(head: bytes) -> str:
    """The request target from a complete request head, or HttpError(400/431)."""
    if len(head) > MAX_HEAD:
        raise HttpError(431)
    parts = head.split(b"\r\n", 1)[0].split(b" ")
    if (
        len(parts) != 3
        or parts[0] != b"GET"
        or not parts[1].startswith(b"/")
        or parts[2] not in (b"HTTP/1.0", b"HTTP/1.1")
    ):
        raise HttpError(400)
    return parts[1].decode("ascii", "replace")


# --8<-- [end:http]


# --8<-- [start:app]
def route(target: str) -> tuple[float, bool, int]:
    """The application: (seconds it waits on IO, is that wait blocking?, CPU loops)."""
    routes = {
        "/io": (IO_SECONDS, False, 0),
        "/cpu": (0.0, False, CPU_LOOPS),
        "/block": (BLOCK_SECONDS, True, 0),
    }
    if target not in routes:
        raise HttpError(404)
    return routes[target]


def compute(loops: int) -> int:
    # pure Python: holds the GIL, handing it over only when asked (after ~5 ms, if another
    # thread is waiting for it), so threads running this take turns on one core
    return sum(i * i % 7 for i in range(loops))


# --8<-- [end:app]


# --8<-- [start:response]
def response(status: int, body: str = "") -> bytes:
    data = f"{body or REASONS[status]} (pid {os.getpid()} {threading.current_thread().name})"
    return (
        f"HTTP/1.1 {status} {REASONS[status]}\r\nDate: {formatdate(usegmt=True)}\r\n"
        "Content-Type: text/plain\r\n"
        f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n{data}"
    ).encode()


# --8<-- [end:response]


# --8<-- [start:blocking]
def handle_connection(conn: socket.socket) -> None:
    """One request on a blocking socket: read the head, wait, compute, answer, close."""
    with conn:
        deadline = time.monotonic() + READ_TIMEOUT  # for the whole head, not each recv():
        try:  # a client sending a byte now and then must not keep this thread forever
            data = b""
            while b"\r\n\r\n" not in data:
                if len(data) > MAX_HEAD:
                    raise HttpError(431)
                conn.settimeout(max(deadline - time.monotonic(), 1e-6))  # ~0 left: 408
                chunk = conn.recv(4096)
                if not chunk:
                    return  # the client went away
                data += chunk
            conn.settimeout(READ_TIMEOUT)  # sending the response gets its own timeout
            wait, _, loops = route(parse_target(data.split(b"\r\n\r\n")[0]))
            time.sleep(wait)  # blocking IO: this thread can do nothing else meanwhile
            conn.sendall(response(200, f"result {compute(loops)}"))
        except HttpError as error:
            conn.sendall(response(error.status))
        except TimeoutError:
            conn.sendall(response(408))
        except OSError:
            pass  # the client reset the connection: nothing to answer


def serve_iterative(listener: socket.socket) -> None:
    while True:  # one connection at a time: the next client waits in the backlog
        conn, _ = listener.accept()
        handle_connection(conn)


def serve_thread_per_connection(listener: socket.socket) -> None:
    while True:  # unbounded: 10,000 clients means 10,000 threads
        conn, _ = listener.accept()
        threading.Thread(target=handle_connection, args=(conn,), daemon=True).start()


def serve_thread_pool(listener: socket.socket, workers: int = 4) -> None:
    with ThreadPoolExecutor(workers) as pool:  # 4 workers, unbounded queue of accepted sockets
        while True:
            conn, _ = listener.accept()
            pool.submit(handle_connection, conn)


# --8<-- [end:blocking]


# --8<-- [start:selectors]
@dataclass
class Conn:
    deadline: float
    data: bytes = b""
    out: bytes = b""


def serve_selectors(listener: socket.socket) -> None:
    """One thread, non-blocking sockets, and a loop asking the kernel what is ready."""
    listener.setblocking(False)
    sel = selectors.DefaultSelector()
    sel.register(listener, selectors.EVENT_READ)
    conns: dict[socket.socket, Conn] = {}
    timers: list[tuple[float, int, socket.socket, int]] = []  # (when, fd, conn, cpu loops)

    def answer(sock: socket.socket, payload: bytes) -> None:
        conns[sock].out = payload
        sel.modify(sock, selectors.EVENT_WRITE)

    def close(sock: socket.socket) -> None:
        sel.unregister(sock)
        del conns[sock]
        sock.close()

    def on_ready(sock: socket.socket, state: Conn) -> None:
        if state.out:  # writable: send what fits, close when all is sent
            state.out = state.out[sock.send(state.out) :]
            if not state.out:
                close(sock)
            return
        chunk = sock.recv(4096)  # readable: never blocks, the kernel said data is there
        state.data += chunk
        if not chunk:
            close(sock)
        elif b"\r\n\r\n" in state.data:
            on_head(sock, state)
        elif len(state.data) > MAX_HEAD:
            answer(sock, response(431))

    def on_head(sock: socket.socket, state: Conn) -> None:
        try:
            wait, blocking, loops = route(parse_target(state.data.split(b"\r\n\r\n")[0]))
        except HttpError as error:
            return answer(sock, response(error.status))
        if wait and not blocking:  # wait without blocking: a timer, not a sleep
            state.deadline = float("inf")
            sel.unregister(sock)  # nothing to read or write until the timer fires
            heapq.heappush(timers, (time.monotonic() + wait, sock.fileno(), sock, loops))
            return None
        time.sleep(wait)  # a blocking call stops the whole loop, every client waits
        answer(sock, response(200, f"result {compute(loops)}"))

    while True:
        now = time.monotonic()
        next_timer = timers[0][0] - now if timers else 0.05
        for key, _ in sel.select(timeout=max(0.0, min(next_timer, 0.05))):
            sock = key.fileobj
            assert isinstance(sock, socket.socket)
            if sock is listener:
                while True:
                    try:
                        conn, _ = listener.accept()
                    except BlockingIOError:
                        break
                    conn.setblocking(False)
                    conns[conn] = Conn(deadline=time.monotonic() + READ_TIMEOUT)
                    sel.register(conn, selectors.EVENT_READ)
            else:
                try:
                    on_ready(sock, conns[sock])
                except OSError:  # reset by the client: forget it, serve the others
                    close(sock)
        now = time.monotonic()
        while timers and timers[0][0] <= now:  # IO that has "completed"
            _, _, sock, loops = heapq.heappop(timers)
            conns[sock].out = response(200, f"result {compute(loops)}")
            sel.register(sock, selectors.EVENT_WRITE)
        for sock, state in list(conns.items()):  # clients too slow to send a request
            if not state.out and state.deadline < now:
                answer(sock, response(408))


# --8<-- [end:selectors]


# --8<-- [start:asyncio]
def serve_asyncio(listener: socket.socket) -> None:
    async def on_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), READ_TIMEOUT)
            wait, blocking, loops = route(parse_target(head))
            if blocking:
                time.sleep(wait)  # the mistake: a blocking call inside a coroutine
            else:
                await asyncio.sleep(wait)  # the loop serves other clients meanwhile
            writer.write(response(200, f"result {compute(loops)}"))
        except HttpError as error:
            writer.write(response(error.status))
        except asyncio.LimitOverrunError:
            writer.write(response(431))
        except TimeoutError:
            writer.write(response(408))
        except asyncio.IncompleteReadError:
            pass  # the client went away
        finally:
            writer.close()

    async def serve() -> None:
        server = await asyncio.start_server(on_connection, sock=listener, limit=MAX_HEAD)
        await server.serve_forever()

    asyncio.run(serve())


# --8<-- [end:asyncio]


# --8<-- [start:run]
# name -> (the server function, how many processes run it on the same listening socket)
ARCHITECTURES: dict[str, tuple[Callable[[socket.socket], None], int]] = {
    "iterative": (serve_iterative, 1),
    "thread per connection": (serve_thread_per_connection, 1),
    "thread pool (4)": (serve_thread_pool, 1),
    "pre-fork (4 processes)": (serve_iterative, 4),  # each process accept()s in turn
    "event loop (selectors)": (serve_selectors, 1),
    "asyncio": (serve_asyncio, 1),
}


# --8<-- [end:run]


# --8<-- [start:processes]
@contextmanager
def running(architecture: str) -> Iterator[tuple[str, int]]:
    """Serve in child processes (apart from the load generator's GIL); yield the address."""
    serve, processes = ARCHITECTURES[architecture]
    fork = multiprocessing.get_context("fork")
    with socket.create_server(("127.0.0.1", 0), backlog=512) as listener:
        workers = [
            fork.Process(target=serve, args=(listener,), daemon=True) for _ in range(processes)
        ]
        for worker in workers:
            worker.start()
        try:
            yield listener.getsockname()  # connections queue in the backlog until accepted
        finally:
            for worker in workers:
                worker.terminate()
            for worker in workers:
                worker.join(timeout=5)


# --8<-- [end:processes]


# --8<-- [start:loadgen]
@dataclass
class Result:
    seconds: float
    latencies: dict[str, list[float]] = field(default_factory=dict)  # target -> seconds
    errors: int = 0
    server_cpu: float = 0.0  # CPU seconds the server's processes used

    def cores(self) -> float:
        """How many CPU cores the server kept busy on average."""
        return self.server_cpu / self.seconds

    def requests_per_second(self) -> float:
        return self.count() / self.seconds

    def values(self, target: str | None = None) -> list[float]:
        return sorted(
            self.latencies[target] if target else [x for xs in self.latencies.values() for x in xs]
        )

    def count(self, target: str | None = None) -> int:
        return len(self.values(target))

    def percentile(self, q: int, target: str | None = None) -> float:
        """Only meaningful with enough samples: a p99 needs ~1,000, these runs have tens."""
        values = self.values(target)
        return values[min(len(values) - 1, len(values) * q // 100)]

    def slowest(self, target: str | None = None) -> float:
        return self.values(target)[-1]

    def share_slower_than(self, seconds: float, target: str | None = None) -> float:
        values = self.values(target)
        return sum(x >= seconds for x in values) / len(values)


async def fetch(address: tuple[str, int], target: str, timeout: float = 5.0) -> bytes:
    """One request on a new connection; the response ends when the server closes."""
    reader, writer = await asyncio.wait_for(asyncio.open_connection(*address), timeout)
    try:
        writer.write(f"GET {target} HTTP/1.1\r\nHost: loopback\r\n\r\n".encode())
        return await asyncio.wait_for(reader.read(), timeout)
    finally:
        writer.close()


async def generate_load(
    address: tuple[str, int],
    targets: list[str],
    clients: int = 8,
    duration: float = 0.15,
    max_requests: int = 5000,
) -> Result:
    """`clients` connections in a closed loop, each sending its next request as soon as
    the last one is answered, until `duration` seconds or `max_requests` have passed.
    Closed loop: when the server stalls, the clients stop sending, so requests that a real
    (open-loop) stream of users would have sent during the stall are never timed."""
    result = Result(seconds=0.0, latencies={t: [] for t in targets})
    sent = 0
    start = time.perf_counter()

    async def client() -> None:
        nonlocal sent
        while time.perf_counter() - start < duration and sent < max_requests:
            target = targets[sent % len(targets)]  # a fixed, repeatable mix
            sent += 1
            began = time.perf_counter()
            reply = await fetch(address, target)
            if reply.startswith(b"HTTP/1.1 200 "):
                result.latencies[target].append(time.perf_counter() - began)
            else:
                result.errors += 1

    await asyncio.gather(*(client() for _ in range(clients)))
    result.seconds = time.perf_counter() - start
    return result


# --8<-- [end:loadgen]


# --8<-- [start:measure]
def measure(architecture: str, targets: list[str], duration: float = 0.15) -> Result:
    cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)  # counts exited children
    with running(architecture) as address:
        asyncio.run(fetch(address, "/io"))  # warm-up: the clock starts once it answers
        result = asyncio.run(generate_load(address, targets, duration=duration))
    cpu_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    result.server_cpu = (
        cpu_after.ru_utime + cpu_after.ru_stime - cpu_before.ru_utime - cpu_before.ru_stime
    )
    return result


def benchmark(duration: float = 0.1) -> dict[str, dict[str, Result]]:
    """workload -> architecture -> Result, for every architecture."""
    return {
        workload: {arch: measure(arch, [workload], duration) for arch in ARCHITECTURES}
        for workload in ("/io", "/cpu")
    }


def blocking_in_the_loop(duration: float = 0.15) -> tuple[Result, Result]:
    """asyncio serving /io alone, then with 1 request in 20 making a blocking call."""
    return (
        measure("asyncio", ["/io"], duration),
        measure("asyncio", ["/block"] + ["/io"] * 19, duration),  # the first is sent at once
    )


# --8<-- [end:measure]


def main() -> None:
    table = benchmark()
    for workload, results in table.items():
        print(f"{workload}: 8 clients in a closed loop, one request per connection, 0.1 s per run")
        print(f"  {'architecture':24} {'req/s':>7} {'n':>5}", end="")
        print(f" {'p50 ms':>7} {'max ms':>7} {'cores':>6}")
        for arch, r in results.items():
            print(
                f"  {arch:24} {r.requests_per_second():7.1f} {'~' + str(r.count()):>5}"
                f"{r.percentile(50) * 1e3:7.1f} {r.slowest() * 1e3:7.1f} {r.cores():6.2f}"
            )
    io, cpu = (
        {a: r.requests_per_second() / rs["iterative"].requests_per_second() for a, r in rs.items()}
        for rs in table.values()
    )
    print(
        f"IO-bound, vs iterative: thread per connection {io['thread per connection']:.1f}x,"
        f" pool of 4 {io['thread pool (4)']:.1f}x, asyncio {io['asyncio']:.1f}x"
    )
    print(
        f"CPU-bound, vs iterative: thread per connection {cpu['thread per connection']:.1f}x,"
        f" 4 processes {cpu['pre-fork (4 processes)']:.1f}x"
    )
    clean, blocked = blocking_in_the_loop()
    print("asyncio, /io requests alone, then while 1 request in 20 blocks the loop for 100 ms:")
    for label, r in [("alone", clean), ("with blocking", blocked)]:
        print(
            f"  {label:14} ~{r.count('/io')} answered,"
            f" {r.share_slower_than(BLOCK_SECONDS, '/io') * 100:.1f}% took >= 100 ms,"
            f" p50 {r.percentile(50, '/io') * 1e3:.1f} ms,"
            f" slowest {r.slowest('/io') * 1e3:.1f} ms"
        )


if __name__ == "__main__":
    main()
