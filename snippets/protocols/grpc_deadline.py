"""gRPC deadlines: a call that outlives its deadline fails with DEADLINE_EXCEEDED, and the
server is told to stop working on it.

Run: python snippets/protocols/grpc_deadline.py
"""

from __future__ import annotations

import importlib
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent import futures
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import grpc
from grpc_tools import protoc

PROTO = """
syntax = "proto3";
package slow;
service Slow { rpc Work (WorkRequest) returns (WorkReply); }
message WorkRequest { double seconds = 1; }
message WorkReply   { double worked = 1; }
"""


@contextmanager
def compiled(proto: str, name: str) -> Iterator[tuple[ModuleType, ModuleType]]:
    """Compile the .proto with grpcio-tools into a temp dir and import the two modules."""
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, f"{name}.proto").write_text(proto)
        if (
            protoc.main(
                [
                    "protoc",
                    f"-I{tmp}",
                    f"--python_out={tmp}",
                    f"--grpc_python_out={tmp}",
                    str(Path(tmp, f"{name}.proto")),
                ]
            )
            != 0
        ):
            raise RuntimeError("protoc failed")
        sys.path.insert(0, tmp)
        try:
            yield (
                importlib.import_module(f"{name}_pb2"),
                importlib.import_module(f"{name}_pb2_grpc"),
            )
        finally:
            sys.path.remove(tmp)


@dataclass
class ServerView:
    """What the server saw of the last call."""

    remaining_at_start: float = 0.0
    worked: float = 0.0
    cancelled: bool = False
    finished: threading.Event = field(default_factory=threading.Event)


# --8<-- [start:server]
def make_servicer(pb2: ModuleType, pb2_grpc: ModuleType, view: ServerView) -> Any:
    class Slow(pb2_grpc.SlowServicer):
        def Work(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
            view.remaining_at_start = context.time_remaining()  # the client's deadline, sent
            stop = threading.Event()  # in the grpc-timeout header of the request
            context.add_callback(stop.set)  # runs when the RPC ends: done, cancelled, expired
            start = time.perf_counter()
            view.cancelled = stop.wait(request.seconds)  # "work" that stops when told to
            view.worked = time.perf_counter() - start
            view.finished.set()
            return pb2.WorkReply(worked=view.worked)

    return Slow()


# --8<-- [end:server]


@contextmanager
def grpc_server(pb2: ModuleType, pb2_grpc: ModuleType, view: ServerView) -> Iterator[str]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    pb2_grpc.add_SlowServicer_to_server(make_servicer(pb2, pb2_grpc, view), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.stop(grace=None).wait(5)


# --8<-- [start:client]
def call_with_deadline(
    target: str,
    pb2: ModuleType,
    pb2_grpc: ModuleType,
    view: ServerView,
    work: float,
    deadline: float,
) -> tuple[str, float]:
    """Ask for `work` seconds of work, allowing `deadline` seconds. (status, elapsed)."""
    view.finished.clear()
    with grpc.insecure_channel(target) as channel:
        grpc.channel_ready_future(channel).result(timeout=5)
        stub = pb2_grpc.SlowStub(channel)
        start = time.perf_counter()
        try:
            stub.Work(pb2.WorkRequest(seconds=work), timeout=deadline)  # timeout= is the deadline
            status = grpc.StatusCode.OK.name
        except grpc.RpcError as error:
            status = error.code().name
        elapsed = time.perf_counter() - start
    if not view.finished.wait(5):  # the server's handler has returned
        raise TimeoutError("the server is still working")
    return status, elapsed


# --8<-- [end:client]


def main() -> None:
    view = ServerView()
    with compiled(PROTO, "slow") as (pb2, pb2_grpc), grpc_server(pb2, pb2_grpc, view) as target:
        for work, deadline in [(1.0, 0.1), (0.05, 1.0)]:
            status, elapsed = call_with_deadline(target, pb2, pb2_grpc, view, work, deadline)
            print(f"Work({work} s) with a {deadline} s deadline -> {status} after {elapsed:.2f} s")
            print(
                f"  server: {view.remaining_at_start:.1f} s left at start,"
                f" worked {view.worked:.2f} s, told to stop: {view.cancelled}"
            )


if __name__ == "__main__":
    main()
