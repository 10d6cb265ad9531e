"""WebSockets and SSE (docs/protocols/websockets.md): each test asserts a snippet's lesson."""

from __future__ import annotations

import asyncio
import base64
import ctypes
import errno
import os
import select
import socket
import struct
import threading
import time

import httpx
import pytest

from tests.conftest import load_snippet

websocket_handshake = load_snippet("protocols/websocket_handshake")
websocket_chat = load_snippet("protocols/websocket_chat")
websocket_keepalive = load_snippet("protocols/websocket_keepalive")
sse_stream = load_snippet("protocols/sse_stream")


def test_accept_key_matches_the_example_in_rfc_6455():
    assert (
        websocket_handshake.accept_key("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    )


def test_the_hand_computed_accept_matches_the_real_server_and_frames_echo():
    key = base64.b64encode(os.urandom(16)).decode()

    def client(address):
        sock, status, headers = websocket_handshake.open_websocket(address, key)
        with sock:
            websocket_handshake.send_frame(sock, websocket_handshake.TEXT, b"ping me back")
            echoed = websocket_handshake.recv_frame(sock)
            return status, headers, echoed, websocket_handshake.close_websocket(sock)

    status, headers, echoed, code = asyncio.run(websocket_handshake.with_echo_server(client))
    assert status.startswith("HTTP/1.1 101")
    assert headers["Sec-WebSocket-Accept"] == websocket_handshake.accept_key(key)
    assert echoed == (websocket_handshake.TEXT, b"ping me back")
    assert code == 1000


def test_a_handshake_with_a_missing_or_wrong_key_is_rejected_with_400():
    def client(address):
        statuses = []
        for key in [None, "", "too-short", base64.b64encode(b"15 bytes only!!").decode()]:
            sock, status, _ = websocket_handshake.open_websocket(address, key)
            sock.close()
            statuses.append(status)
        return statuses

    statuses = asyncio.run(websocket_handshake.with_echo_server(client))
    assert all(status.startswith("HTTP/1.1 400") for status in statuses), statuses


def test_the_chat_broadcasts_every_message_to_every_member_present():
    seen = asyncio.run(websocket_chat.chat(websocket_chat.SCRIPT))
    for name in ["alice", "bob", "carol"]:
        assert "alice: hi all" in seen[name] and "carol: hey alice" in seen[name]
    assert seen["alice"][-1] == "* bob left" and seen["carol"][-1] == "* bob left"
    assert "* alice joined" not in seen["bob"]  # bob was not there yet
    assert "* bob left" not in seen["bob"]  # and is gone when it is announced


def test_keepalive_measures_latency_and_drops_a_peer_that_never_answers_pings():
    latencies, (opcodes, code, elapsed) = asyncio.run(
        websocket_keepalive.demo(interval=0.1, timeout=0.1)
    )
    # Noise budget: over 15 runs (5 beside two busy loops) the slowest pong took 33 ms and
    # the frozen peer was dropped 0.20-0.24 s after its handshake; the bounds (1 s; 0.15 to
    # 3 s) hold with 30x and 12x margins. The clock starts before the handshake: started
    # after reading the 101, one run in 10 measured 0.0 s, because a busy thread read the
    # 101, the pings and the close all at once (the server's clock had run meanwhile).
    assert len(latencies) == 20 and max(latencies) < 1.0
    assert websocket_keepalive.PING in opcodes  # it was asked
    assert opcodes[-1] == websocket_keepalive.CLOSE and code == 1011  # then dropped
    assert 0.15 < elapsed < 3.0  # after interval + timeout, not never
    assert "keepalive ping timeout" in websocket_keepalive.SERVER_LOG[-1]


def test_frozen_client_raises_when_the_server_closes_before_its_101():
    """Without a check for recv() == b"", the handshake loop would spin forever."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(5)

        def refuse() -> None:  # read the upgrade request, then hang up without answering
            conn, _ = listener.accept()
            with conn:
                conn.settimeout(5)
                conn.recv(4096)

        threading.Thread(target=refuse, daemon=True).start()
        outcome: list[BaseException | None] = []

        def run() -> None:
            try:
                websocket_keepalive.frozen_client(listener.getsockname()[1])
                outcome.append(None)
            except BaseException as error:  # noqa: BLE001 - reported below
                outcome.append(error)

        client = threading.Thread(target=run, daemon=True)
        client.start()
        client.join(timeout=5)
    assert not client.is_alive(), "frozen_client kept reading a closed connection"
    assert isinstance(outcome[0], ConnectionError), outcome


def test_sse_client_resumes_from_last_event_id_after_the_server_drops_it():
    received = asyncio.run(sse_stream.demo())
    assert [data for _, _, data in received] == sse_stream.EVENTS  # none lost, none repeated
    assert {connection for connection, _, _ in received} == {1, 2}
    assert [event_id for _, event_id, _ in received] == ["1", "2", "3", "4", "5", "6"]


def test_sse_server_answers_a_malformed_request_with_400():
    async def scenario() -> list[bytes]:
        server = await asyncio.start_server(sse_stream.sse_connection, "127.0.0.1", 0)
        async with server:
            host, port = server.sockets[0].getsockname()
            replies = []
            for request in [
                b"POST /events HTTP/1.1\r\n\r\n",
                b"\x16\x03\x01garbage\r\n\r\n",
                b"GET /events HTTP/1.1\r\nlast-event-id: x\r\n\r\n",
            ]:
                reader, writer = await asyncio.open_connection(host, port)
                writer.write(request)
                async with asyncio.timeout(5):
                    replies.append(await reader.read())
                writer.close()
            async with httpx.AsyncClient(timeout=5) as client:
                response = await client.get(f"http://{host}:{port}/other")
                replies.append(f"HTTP/1.1 {response.status_code} ".encode())
            return replies

    assert all(reply.startswith(b"HTTP/1.1 400 ") for reply in asyncio.run(scenario()))


def test_sse_server_drops_a_client_that_never_finishes_its_request(monkeypatch):
    monkeypatch.setattr(sse_stream, "REQUEST_TIMEOUT", 0.2)

    async def scenario() -> bytes:
        server = await asyncio.start_server(sse_stream.sse_connection, "127.0.0.1", 0)
        async with server:
            with socket.create_connection(server.sockets[0].getsockname(), timeout=10) as sock:
                sock.sendall(b"GET /events HTTP/1.1\r\n")  # and never the blank line
                return await asyncio.to_thread(sock.recv, 1024)

    reply = asyncio.run(scenario())  # the server's timeout fires long before ours
    assert reply.startswith(b"HTTP/1.1 400 ")


def test_an_unmasked_client_frame_is_a_protocol_error_1002():
    def client(address):
        sock, _, _ = websocket_handshake.open_websocket(address, "dGhlIHNhbXBsZSBub25jZQ==")
        with sock:
            sock.sendall(b"\x81\x05hello")  # mask bit clear: only servers may do that
            return websocket_handshake.recv_frame(sock)

    opcode, payload = asyncio.run(websocket_handshake.with_echo_server(client))
    assert opcode == websocket_handshake.CLOSE and int.from_bytes(payload[:2]) == 1002


def test_sse_client_that_ignores_last_event_id_gets_duplicates_and_stops(monkeypatch):
    """Break it (websockets.md): without Last-Event-ID every connection restarts at id 1;
    the client counts six events after two connections and stops: 1, 2, 3, 1, 2, 3."""
    real = sse_stream.events
    monkeypatch.setattr(sse_stream, "events", lambda client, url, last_id: real(client, url, None))
    received = asyncio.run(sse_stream.demo())
    assert [event_id for _, event_id, _ in received] == ["1", "2", "3", "1", "2", "3"]


def silence_kernel(sock: socket.socket) -> ctypes.Array[ctypes.c_char]:
    """Attach a one-instruction classic BPF filter, "return 0", to a TCP socket: its
    kernel discards every segment arriving for it, so it answers nothing, keep-alive
    probes included (a host that is gone). Keep the returned buffer alive."""
    code = ctypes.create_string_buffer(struct.pack("HBBI", 0x06, 0, 0, 0))  # BPF_RET 0
    sock.setsockopt(socket.SOL_SOCKET, 26, struct.pack("HL", 1, ctypes.addressof(code)))
    return code  # 26: SO_ATTACH_FILTER, <asm-generic/socket.h>


def test_tcp_keepalive_drops_a_dead_kernel_but_never_a_live_kernel_with_a_hung_process():
    """websockets.md: keep-alive probes are answered by the peer's kernel, so a peer whose
    process never reads nor writes (hung) survives even a 1 s keep-alive; the control, a
    peer whose kernel answers nothing (a filter drops every segment for it), is dropped
    with ETIMEDOUT: the probes really run, and only a live kernel answers them. Linux."""
    if not hasattr(socket, "TCP_KEEPIDLE"):
        pytest.skip("TCP_KEEPIDLE and socket filters are Linux's")
    with socket.create_server(("127.0.0.1", 0)) as listener:
        peers, servers = [], []
        for _ in range(2):
            peers.append(socket.create_connection(listener.getsockname()))  # never used
            servers.append(listener.accept()[0])
        alive, dead = servers
        code = silence_kernel(peers[1])
        try:
            for server in servers:
                server.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
                server.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 1)
                server.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, 1)
                server.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, 1)
            # After 1 s idle each server sends a probe; 1 s without an answer kills the
            # connection (about 2 s in all). The dead peer's connection errors out then;
            # the live one, probed on the same schedule, must still be up after 3.5 s.
            # Noise budget: the timers are the kernel's, not this process's; the dead
            # peer's connection died at 2.03-2.18 s over 15 runs (10 beside two busy
            # loops, load average 12), and the test passed in 8 runs beside them; waiting
            # up to 10 s for it and 3.5 s for the survivor leaves >1.3 s either side.
            start = time.monotonic()
            readable, _, _ = select.select([dead], [], [], 10)
            died = time.monotonic() - start
            assert readable == [dead], "the silent peer was never dropped"
            assert dead.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == errno.ETIMEDOUT
            assert died >= 1.5, f"dropped after {died:.2f} s, before any probe could time out"
            readable, _, _ = select.select([alive], [], [], max(0.0, 3.5 - died))
            assert not readable  # no error, no EOF: the probes were answered
            assert alive.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0
        finally:
            for sock in peers + servers:
                sock.close()
            del code


def test_without_pings_the_frozen_client_is_never_dropped(monkeypatch):
    """Break it (websockets.md): with ping_interval=None nothing is ever sent to the frozen
    client, so it waits until its own socket timeout (5 s on the page, 2 s here) and gets
    TimeoutError; the control, pings on, is dropped with 1011 instead."""
    real = socket.create_connection
    monkeypatch.setattr(
        websocket_keepalive.socket, "create_connection", lambda a, timeout: real(a, timeout=2.0)
    )
    # Noise budget: the keep-alive test above saw the drop at 0.20-0.24 s over 15 runs (5
    # beside two busy loops); pings every 0.1 s keep each of the control's recv() calls far
    # under the 2 s timeout, so only the run without pings can time out.
    _, (_, code, _) = asyncio.run(websocket_keepalive.demo(interval=0.1, timeout=0.1))
    assert code == 1011  # dropped by the server, not timed out by the client
    with pytest.raises(TimeoutError):
        asyncio.run(websocket_keepalive.demo(interval=None, timeout=0.1))


class AwaitingRoom(websocket_chat.ChatRoom):
    """The Break it's variant: each message sent with `await m.send(...)`, member by member."""

    async def handler(self, ws) -> None:
        name = (ws.request.path if ws.request else "/?").strip("/")
        self.members.add(ws)
        try:
            async for message in ws:
                for m in list(self.members):
                    await m.send(f"{name}: {message}")
        finally:
            self.members.discard(ws)


async def delivered_past_a_stuck_member(room: websocket_chat.ChatRoom, n: int, wait: float) -> int:
    """A member that never reads (its kernel buffers fill), a sender of n 600 KB messages
    and a reader: how many messages reach the reader within `wait` seconds."""
    from websockets.asyncio.client import connect
    from websockets.asyncio.server import serve

    async with serve(room.handler, "127.0.0.1", 0, max_size=2**20, close_timeout=0.2) as server:
        host, port = server.sockets[0].getsockname()
        stuck = socket.socket()
        stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # fills fast
        stuck.settimeout(5)
        stuck.connect((host, port))
        key = base64.b64encode(os.urandom(16)).decode()
        stuck.sendall(
            f"GET /stuck HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        reply = await asyncio.to_thread(stuck.recv, 4096)  # the server answers meanwhile
        assert reply.startswith(b"HTTP/1.1 101")  # then it never reads again
        with stuck:
            async with (
                connect(f"ws://{host}:{port}/reader", max_size=2**20, close_timeout=0.2) as reader,
                connect(f"ws://{host}:{port}/sender", close_timeout=0.2) as sender,
            ):
                for _ in range(n):
                    await sender.send("x" * 600_000)
                got = 0
                try:
                    async with asyncio.timeout(wait):
                        while got < n:
                            got += (await reader.recv()).startswith("sender: ")
                except TimeoutError:
                    pass
                return got


def test_one_stuck_member_blocks_an_awaiting_loop_but_not_broadcast():
    """Break it (websockets.md): with `for m in members: await m.send(...)`, one member
    that does not read stops every later message to everyone once its buffers fill;
    `broadcast` writes to each connection's buffer without waiting, so all arrive."""
    # Noise budget: with broadcast all 16 arrived in 1.0-1.8 s over 5 runs at a load
    # average of 9; it may take 10 s (it ends as soon as all have arrived). With the loop,
    # 5-6 of 16 in every run, then nothing: the stuck member's buffers took about 3.5 MB
    # (tcp_wmem's maximum is 4 MB). Watching it 3 s is only how long we look: a longer
    # look could only make "fewer than 16" harder to pass.
    n = 16  # 9.6 MB: more than the kernel's buffers for the stuck member can absorb
    assert asyncio.run(delivered_past_a_stuck_member(websocket_chat.ChatRoom(), n, 10)) == n
    assert asyncio.run(delivered_past_a_stuck_member(AwaitingRoom(), n, 3)) < n
