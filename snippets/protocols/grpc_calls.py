"""gRPC: a .proto compiled at run time; unary, server-streaming and bidirectional calls.

Run: python snippets/protocols/grpc_calls.py
"""

from __future__ import annotations

import importlib
import sys
import tempfile
from collections.abc import Iterator
from concurrent import futures
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

import grpc
from grpc_tools import protoc

# --8<-- [start:proto]
PROTO = """
syntax = "proto3";
package inventory;

service Inventory {
  rpc GetItem (ItemRequest) returns (Item);                          // unary
  rpc ListItems (ListRequest) returns (stream Item);                  // server streaming
  rpc Reserve (stream ReserveRequest) returns (stream Reservation);  // bidirectional
}

message ItemRequest    { string sku = 1; }
message Item           { string sku = 1; string name = 2; int32 stock = 3; }
message ListRequest    { int32 limit = 1; }
message ReserveRequest { string sku = 1; int32 quantity = 2; }
message Reservation    { string sku = 1; bool ok = 2; int32 left = 3; }
"""


# --8<-- [end:proto]


# --8<-- [start:compile]
@contextmanager
def compiled(proto: str, name: str) -> Iterator[tuple[ModuleType, ModuleType]]:
    """protoc, run in-process by grpcio-tools, writes <name>_pb2.py (messages) and
    <name>_pb2_grpc.py (stubs and servicer base class) into a temp dir; import both."""
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, f"{name}.proto").write_text(proto)
        args = [
            "protoc",
            f"-I{tmp}",
            f"--python_out={tmp}",
            f"--grpc_python_out={tmp}",
            str(Path(tmp, f"{name}.proto")),
        ]
        if protoc.main(args) != 0:
            raise RuntimeError("protoc failed")
        sys.path.insert(0, tmp)
        try:
            yield (
                importlib.import_module(f"{name}_pb2"),
                importlib.import_module(f"{name}_pb2_grpc"),
            )
        finally:
            sys.path.remove(tmp)


# --8<-- [end:compile]


# --8<-- [start:server]
def make_servicer(pb2: ModuleType, pb2_grpc: ModuleType) -> Any:
    class Inventory(pb2_grpc.InventoryServicer):
        def __init__(self) -> None:
            self.items = {"A1": ["anvil", 3], "B2": ["bucket", 5], "C3": ["chisel", 0]}

        def GetItem(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
            metadata = dict(context.invocation_metadata())  # headers the client sent
            context.set_trailing_metadata([("x-request-id", metadata.get("x-request-id", "-"))])
            if not request.sku:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, "sku is required")
            if request.sku not in self.items:
                context.abort(grpc.StatusCode.NOT_FOUND, f"no item {request.sku!r}")
            name, stock = self.items[request.sku]
            return pb2.Item(sku=request.sku, name=name, stock=stock)

        def ListItems(self, request: Any, context: grpc.ServicerContext) -> Iterator[Any]:  # noqa: N802
            for sku, (name, stock) in list(self.items.items())[: request.limit]:
                yield pb2.Item(sku=sku, name=name, stock=stock)  # each one is a message

        def Reserve(self, requests: Iterator[Any], context: grpc.ServicerContext) -> Iterator[Any]:  # noqa: N802
            for request in requests:  # answer each request as it arrives
                item = self.items.get(request.sku)
                ok = item is not None and 0 < request.quantity <= item[1]
                if ok:
                    item[1] -= request.quantity
                yield pb2.Reservation(sku=request.sku, ok=ok, left=item[1] if item else 0)

    return Inventory()


# --8<-- [end:server]


# --8<-- [start:serve]
@contextmanager
def grpc_server(pb2: ModuleType, pb2_grpc: ModuleType) -> Iterator[str]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    pb2_grpc.add_InventoryServicer_to_server(make_servicer(pb2, pb2_grpc), server)
    port = server.add_insecure_port("127.0.0.1:0")  # gRPC runs over HTTP/2
    server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.stop(grace=None).wait(5)


# --8<-- [end:serve]


# --8<-- [start:client]
def calls(target: str, pb2: ModuleType, pb2_grpc: ModuleType) -> list[str]:
    lines = []
    with grpc.insecure_channel(target) as channel:
        grpc.channel_ready_future(channel).result(timeout=5)
        stub = pb2_grpc.InventoryStub(channel)

        item, call = stub.GetItem.with_call(
            pb2.ItemRequest(sku="A1"), timeout=5, metadata=[("x-request-id", "req-42")]
        )
        trailers = dict(call.trailing_metadata())
        lines.append(
            f"unary     GetItem(A1) -> {item.name}, stock {item.stock};"
            f" status {call.code().name}, trailer x-request-id={trailers['x-request-id']}"
        )

        items = stub.ListItems(pb2.ListRequest(limit=3), timeout=5)
        lines.append("streaming ListItems(3) -> " + ", ".join(f"{i.sku} {i.name}" for i in items))

        wanted = [("A1", 2), ("A1", 2), ("B2", 1), ("ZZ", 1)]
        replies = stub.Reserve(
            iter(pb2.ReserveRequest(sku=s, quantity=q) for s, q in wanted), timeout=5
        )
        lines.append(
            "bidi      Reserve -> "
            + ", ".join(f"{r.sku}:{'ok' if r.ok else 'refused'} (left {r.left})" for r in replies)
        )

        for sku in ["ZZ", ""]:
            try:
                stub.GetItem(pb2.ItemRequest(sku=sku), timeout=5)
            except grpc.RpcError as error:  # also a grpc.Call: code(), details(), metadata
                lines.append(
                    f"error     GetItem({sku!r}) -> {error.code().name}: {error.details()}"
                )
    return lines


# --8<-- [end:client]


def main() -> None:
    with compiled(PROTO, "inventory") as (pb2, pb2_grpc), grpc_server(pb2, pb2_grpc) as target:
        for line in calls(target, pb2, pb2_grpc):
            print(line)


if __name__ == "__main__":
    main()
