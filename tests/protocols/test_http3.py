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
    # Noise budget: the other streams' median was 0.01-0.28 of done[0] / 2 over 15 runs
    # (5 beside two busy loops; at most 0.11 busy), and 8 or 9 of 9 finished before it;
    # "most" (6) and the median keep a margin from both.
    assert sum(t < done[0] / 2 for t in others) >= 6  # most did not wait for it
    assert statistics.median(others) < done[0] / 2


def test_a_held_tcp_frame_stalls_every_http2_stream_a_real_quic_loss_only_its_own():
    """HTTP/2's side is the model (a frame held in a proxy); QUIC's is real: datagrams
    dropped by a relay and recovered by aioquic's own loss recovery (see http3.md)."""
    hold, rounds = 0.5, 3
    h2_others, quic_others = [], []
    for _ in range(rounds):  # interleaved, so a slow moment hits both
        _, others = asyncio.run(http2_hol.through_proxy(n=10, hold=hold))
        h2_others.append(statistics.median(others))
        quic, _ = asyncio.run(quic_loss.streams_through_loss(n=10, window=hold))
        quic_others.append(statistics.median(t for stream_id, t in quic.items() if stream_id))
    assert min(h2_others) >= hold  # behind the hole in TCP's byte stream
    # Noise budget: per-run medians of QUIC's other streams were 5-12 ms (6 runs) and
    # 16-100 ms (6 runs beside two busy loops) at a 0.5 s window, 14-141 ms at 0.2 s;
    # hold / 2 = 250 ms is 2.5x the worst; HTTP/2's are >= hold by construction.
    assert statistics.median(quic_others) < hold / 2, quic_others
    assert statistics.median(h2_others) > 2 * statistics.median(quic_others)
