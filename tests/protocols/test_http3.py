"""HTTP/3 and QUIC (docs/protocols/http3.md): each test asserts the lesson a snippet shows."""

from __future__ import annotations

import asyncio
import os
import socket
import statistics

import pytest

from tests.conftest import load_snippet

http3_request = load_snippet("protocols/http3_request")
quic_loss = load_snippet("protocols/quic_loss")
http2_hol = load_snippet("protocols/http2_hol")


def test_http3_requests_run_on_client_bidirectional_streams_0_4_8():
    alpn, results = asyncio.run(http3_request.demo())
    assert alpn == "h3"
    assert [(stream_id, status) for stream_id, status, _ in results] == [
        (0, 200),
        (4, 200),
        (8, 200),
    ]
    assert results[1][2] == b"you asked for /b on stream 4"


def test_a_client_that_does_not_trust_the_ca_refuses_the_handshake():
    async def scenario() -> None:
        with http3_request.certificates() as files:
            async with (
                http3_request.h3_server(files) as address,
                http3_request.h3_client(address, ca_file=None),  # certifi's bundle only
            ):
                pass

    with pytest.raises(ConnectionError):
        asyncio.run(scenario())


def test_the_server_ignores_garbage_datagrams_and_keeps_serving():
    async def scenario() -> tuple[int, int, bytes]:
        with http3_request.certificates() as files:
            async with http3_request.h3_server(files) as address:
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as junk:
                    for payload in [
                        b"",
                        b"\x00",
                        b"GET / HTTP/1.1\r\n\r\n",
                        os.urandom(1200),
                        b"\xc0" + os.urandom(1300),
                    ]:  # a fake long-header Initial
                        junk.sendto(payload, address)
                async with http3_request.h3_client(address, files["ca"]) as client:
                    async with asyncio.timeout(5):
                        return await client.get("/still-there")

    stream_id, status, body = asyncio.run(scenario())
    assert status == 200 and body.endswith(b"/still-there on stream 0")


def test_quic_loss_delays_only_the_stream_that_lost_packets():
    window = 0.5  # the page's run uses 0.2; 0.5 gives a busy machine room (see below)
    done, dropped = asyncio.run(quic_loss.streams_through_loss(n=10, window=window))
    others = [t for stream_id, t in done.items() if stream_id != 0]
    assert dropped > 0 and done[0] >= window  # stream 0 really waited for its data
    # Noise budget: stream 0 took 0.53-0.90 s over 14 runs (6 beside two busy loops), the
    # others a median 17-92 ms (up to 487 ms in an earlier busy series): 9 of 9 finished
    # before stream 0 every time; the test asks for 7.
    assert sum(t < done[0] for t in others) >= 7  # most did not wait for it
    assert statistics.median(others) < done[0]


def test_the_same_loss_stalls_every_http2_stream_but_only_one_quic_stream():
    """The same loss on both: every packet over 1000 bytes dropped for `window` seconds —
    TCP segments by the client's kernel (a socket filter), QUIC datagrams by a relay —
    and each protocol's own recovery repairs it. Compared: how many of the other nine
    streams finished before the stream that lost data."""
    window, rounds = 0.5, 3
    h2_ahead, quic_ahead = [], []
    for _ in range(rounds):  # interleaved, so a slow moment hits both
        large, others, _ = asyncio.run(http2_hol.under_loss(n=10, window=window))
        h2_ahead.append(sum(t < large for t in others))
        quic, _ = asyncio.run(quic_loss.streams_through_loss(n=10, window=window))
        quic_ahead.append(sum(t < quic[0] for stream_id, t in quic.items() if stream_id))
    assert h2_ahead == [0] * rounds  # behind the hole in TCP's byte stream, every time
    # Noise budget: over 14 runs (6 beside two busy loops) QUIC's stream 0 took
    # 0.53-0.90 s and its other streams a median 17-92 ms (up to 487 ms in an earlier
    # busy series): 9 of 9 were ahead of it in every run; 7 (median of three rounds)
    # leaves room. HTTP/2: 0 of 9 in every run, by construction.
    assert statistics.median(quic_ahead) >= 7, quic_ahead


def test_responses_sent_together_share_the_lost_packets(monkeypatch):
    """Break it (http3.md): with TRANSMIT_EACH = False the server queues all ten responses
    and sends once, so the small responses ride in stream 0's last (large, dropped) packet
    and wait out the loss with it; with TRANSMIT_EACH = True (the control) they do not."""
    window, rounds = 0.3, 3
    shared = {True: 0, False: 0}
    for _ in range(rounds):
        for transmit_each in shared:
            monkeypatch.setattr(quic_loss, "TRANSMIT_EACH", transmit_each)
            done, dropped = asyncio.run(quic_loss.streams_through_loss(n=10, window=window))
            assert dropped > 0 and done[0] >= window
            shared[transmit_each] += done[4] >= 0.9 * done[0]  # finished with stream 0
    # Noise budget: packing is decided by aioquic's packet builder, not by timing. With one
    # send, stream 4 / stream 0 was 0.99-1.00 in every round tried (16 rounds, BIG 3000-6000);
    # sending each response at once it was 0.01-0.19 (0.02 at most with 3000 bytes) over the
    # flake hunts. The previous Break it (BIG = 6000, relying on the pacer to split a send)
    # shared in only 1 of 5 rounds with 4 workers on 2 cores: timing, so it was replaced.
    # Failing needs 2 misses of 3 rounds, or the control sharing twice.
    assert shared[False] >= 2 and shared[True] <= 1, shared


def test_dropping_every_datagram_delays_every_stream(monkeypatch):
    """Break it (http3.md): a relay that drops every server datagram (larger_than=0) for
    the window delays every stream past it: QUIC removes head-of-line blocking, not loss."""
    real = quic_loss.LossyRelay
    monkeypatch.setattr(
        quic_loss, "LossyRelay", lambda server, _larger_than, window: real(server, 0, window)
    )
    window = 0.3
    done, dropped = asyncio.run(quic_loss.streams_through_loss(n=10, window=window))
    assert dropped > 0 and min(done.values()) >= window, done
