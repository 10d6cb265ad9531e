"""gRPC (docs/protocols/grpc.md): each test asserts the lesson a snippet shows."""

from __future__ import annotations

import socket

import grpc
import pytest

from tests.conftest import load_snippet

grpc_calls = load_snippet("protocols/grpc_calls")
grpc_deadline = load_snippet("protocols/grpc_deadline")


@pytest.fixture(scope="module")
def inventory():
    with (
        grpc_calls.compiled(grpc_calls.PROTO, "inventory") as (pb2, pb2_grpc),
        grpc_calls.grpc_server(pb2, pb2_grpc) as target,
        grpc.insecure_channel(target) as channel,
    ):
        grpc.channel_ready_future(channel).result(timeout=5)
        yield pb2, pb2_grpc.InventoryStub(channel), channel, target


def test_the_proto_compiles_at_run_time_into_messages_and_a_stub():
    with grpc_calls.compiled(grpc_calls.PROTO, "inventory") as (pb2, pb2_grpc):
        item = pb2.Item(sku="A1", name="anvil", stock=3)
        assert pb2.Item.FromString(item.SerializeToString()) == item
        assert hasattr(pb2_grpc, "InventoryStub") and hasattr(pb2_grpc, "InventoryServicer")


def test_unary_call_returns_one_message_and_trailing_metadata(inventory):
    pb2, stub, _, _ = inventory
    item, call = stub.GetItem.with_call(
        pb2.ItemRequest(sku="B2"), timeout=5, metadata=[("x-request-id", "abc")]
    )
    assert (item.name, item.stock) == ("bucket", 5)
    assert call.code() == grpc.StatusCode.OK
    assert ("x-request-id", "abc") in call.trailing_metadata()


def test_server_streaming_sends_a_stream_of_messages(inventory):
    pb2, stub, _, _ = inventory
    assert [i.sku for i in stub.ListItems(pb2.ListRequest(limit=2), timeout=5)] == ["A1", "B2"]
    assert len(list(stub.ListItems(pb2.ListRequest(limit=10), timeout=5))) == 3


def test_bidirectional_stream_answers_each_request_in_turn(inventory):
    pb2, stub, _, _ = inventory
    requests = [
        pb2.ReserveRequest(sku="C3", quantity=1),
        pb2.ReserveRequest(sku="nope", quantity=1),
    ]
    replies = list(stub.Reserve(iter(requests), timeout=5))
    assert [(r.sku, r.ok) for r in replies] == [("C3", False), ("nope", False)]  # C3: no stock


def test_errors_are_status_codes_with_details(inventory):
    pb2, stub, _, _ = inventory
    for sku, code in [("ZZ", grpc.StatusCode.NOT_FOUND), ("", grpc.StatusCode.INVALID_ARGUMENT)]:
        with pytest.raises(grpc.RpcError) as raised:
            stub.GetItem(pb2.ItemRequest(sku=sku), timeout=5)
        assert raised.value.code() == code and raised.value.details()


def test_bytes_that_are_not_a_valid_message_get_internal_not_a_crash(inventory):
    _, _, channel, _ = inventory
    raw = channel.unary_unary("/inventory.Inventory/GetItem")  # no (de)serializers: bytes
    with pytest.raises(grpc.RpcError) as raised:
        raw(b"\x0a\xff\xff\xff\xff\x0f", timeout=5)  # field 1, length far beyond the data
    assert raised.value.code() == grpc.StatusCode.INTERNAL
    missing = channel.unary_unary("/inventory.Inventory/Delete")
    with pytest.raises(grpc.RpcError) as raised:
        missing(b"", timeout=5)
    assert raised.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_a_client_that_does_not_speak_http2_is_dropped_and_the_server_keeps_serving(inventory):
    pb2, stub, _, target = inventory
    host, port = target.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" * 100)
        while sock.recv(65535):  # the server closes it (after a GOAWAY)
            pass
    assert stub.GetItem(pb2.ItemRequest(sku="A1"), timeout=5).name == "anvil"


def test_an_expired_deadline_fails_fast_and_tells_the_server_to_stop():
    view = grpc_deadline.ServerView()
    with (
        grpc_deadline.compiled(grpc_deadline.PROTO, "slow") as (pb2, pb2_grpc),
        grpc_deadline.grpc_server(pb2, pb2_grpc, view) as target,
    ):
        # Noise budget: the call failed after 0.10-0.16 s and the server worked 0.10-0.15 s
        # over 15 runs (5 beside two busy loops); 1 s is 6x that and half the 2 s of work.
        status, elapsed = grpc_deadline.call_with_deadline(
            target, pb2, pb2_grpc, view, work=2.0, deadline=0.1
        )
        assert status == "DEADLINE_EXCEEDED" and elapsed < 1.0
        assert view.cancelled and view.worked < 1.0  # not 2 s of wasted work
        assert 0 < view.remaining_at_start <= 0.1 + 0.05  # the deadline travelled with the call
        status, _ = grpc_deadline.call_with_deadline(
            target, pb2, pb2_grpc, view, work=0.01, deadline=2.0
        )
        assert status == "OK" and not view.cancelled
