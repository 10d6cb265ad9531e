"""HTTP/2 (docs/protocols/http2.md): each test asserts the lesson a snippet shows."""

from __future__ import annotations

import asyncio
import socket
import statistics

from hyperframe.frame import Frame, GoAwayFrame

from tests.conftest import load_snippet

http2_frames = load_snippet("protocols/http2_frames")
http2_multiplex = load_snippet("protocols/http2_multiplex")
http2_hpack = load_snippet("protocols/http2_hpack")
http2_hol = load_snippet("protocols/http2_hol")

PROTOCOL_ERROR, FRAME_SIZE_ERROR, NO_ERROR = 0x1, 0x6, 0x0


def read_frames_until_closed(sock: socket.socket) -> list[Frame]:
    data = b""
    while chunk := sock.recv(65535):
        data += chunk
    frames = []
    while len(data) >= 9:
        frame, length = Frame.parse_frame_header(memoryview(data[:9]))
        frame.parse_body(memoryview(data[9 : 9 + length]))
        frames.append(frame)
        data = data[9 + length :]
    return frames


def test_each_request_gets_its_own_odd_stream_on_one_connection():
    client_log, server_log = http2_frames.FrameLog(), http2_frames.FrameLog()
    with http2_frames.h2_server(server_log) as address:
        bodies = http2_frames.get_many(address, ["/a", "/b", "/c", "/d"], client_log)
    assert list(bodies) == [1, 3, 5, 7]
    assert bodies[5] == b"you asked for /c on stream 5"
    sent = http2_frames.frame_names(client_log.data)
    assert sent[0] == "connection preface" and sent[1].startswith("SETTINGS")
    assert sum(name.startswith("HEADERS") for name in sent) == 4
    assert sent[-1].startswith("GOAWAY")


def test_a_client_that_does_not_speak_http2_is_disconnected_without_an_answer():
    with (
        http2_frames.h2_server(http2_frames.FrameLog()) as address,
        socket.create_connection(address, timeout=5) as sock,
    ):
        sock.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")  # no preface
        frames = read_frames_until_closed(sock)  # closed, not left hanging
    assert [type(f).__name__ for f in frames] == ["SettingsFrame"]  # sent before it read


def test_a_bad_frame_after_the_preface_gets_goaway_protocol_error():
    ping_on_stream_1 = b"\x00\x00\x08\x06\x00" + (1).to_bytes(4, "big") + bytes(8)
    with (
        http2_frames.h2_server(http2_frames.FrameLog()) as address,
        socket.create_connection(address, timeout=5) as sock,
    ):
        sock.sendall(
            http2_frames.PREFACE + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00" + ping_on_stream_1
        )  # PING belongs on stream 0 (RFC 9113 §6.7)
        frames = read_frames_until_closed(sock)
    goaway = [f for f in frames if isinstance(f, GoAwayFrame)]
    assert goaway and goaway[0].error_code == PROTOCOL_ERROR


def test_a_frame_larger_than_the_advertised_maximum_gets_frame_size_error():
    oversized = (2**24 - 1).to_bytes(3, "big") + b"\x01\x04" + (1).to_bytes(4, "big")
    with (
        http2_frames.h2_server(http2_frames.FrameLog()) as address,
        socket.create_connection(address, timeout=5) as sock,
    ):
        sock.sendall(http2_frames.PREFACE + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00" + oversized)
        frames = read_frames_until_closed(sock)  # the server must not wait for 16 MiB
    goaway = [f for f in frames if isinstance(f, GoAwayFrame)]
    assert goaway and goaway[0].error_code == FRAME_SIZE_ERROR


def test_a_silent_client_is_sent_goaway_after_the_idle_timeout():
    with (
        http2_frames.h2_server(http2_frames.FrameLog(), idle_timeout=0.2) as address,
        socket.create_connection(address, timeout=5) as sock,
    ):
        frames = read_frames_until_closed(sock)  # we send nothing at all
    assert isinstance(frames[-1], GoAwayFrame) and frames[-1].error_code == NO_ERROR


def test_multiplexing_beats_one_request_at_a_time_on_one_connection(monkeypatch):
    # Noise budget: with the page's 4 ms of work, HTTP/1.1 over HTTP/2 was 2.8-7.3x over
    # 10 runs but 1.16-5.6x over 8 runs at a load average of 19 on two cores (other
    # suites): HTTP/1.1's time is sleep-bound (n x WORK), HTTP/2's is CPU-bound, so CPU
    # starvation shrinks the ratio. With 30 ms of work and 30 requests it was 4.0-16.6x
    # over those same 8 runs; 2x is half the worst.
    monkeypatch.setattr(http2_multiplex, "WORK", 0.03)
    results = asyncio.run(http2_multiplex.compare(n=30, rounds=3))
    (h1, h1_peak), (h2, h2_peak) = results["HTTP/1.1"], results["HTTP/2"]
    assert h1_peak == 1 and h2_peak > 20  # the server really worked on them at once
    assert h1 >= 30 * 0.03  # one at a time: at least n x WORK
    assert h1 > 2 * h2, f"HTTP/1.1 {h1 * 1000:.0f} ms vs HTTP/2 {h2 * 1000:.0f} ms"


def test_with_no_backend_wait_http1_wins(monkeypatch):
    """Break it (http2.md): with WORK = 0 there is nothing to overlap, and HTTP/2's extra
    per-request work in Python (frames, HPACK, flow control) makes it the slower one."""
    # Noise budget: HTTP/2 over HTTP/1.1 was 3.1-6.5x over 12 runs of 5 rounds at a load
    # average of 10-12, 6 of them beside two busy loops (both are CPU-bound, so load slows
    # both); 1.5x is half the lowest.
    monkeypatch.setattr(http2_multiplex, "WORK", 0)
    results = asyncio.run(http2_multiplex.compare(n=100, rounds=5))
    h1, h2 = results["HTTP/1.1"][0], results["HTTP/2"][0]
    assert h2 > 1.5 * h1, f"HTTP/1.1 {h1 * 1000:.1f} ms vs HTTP/2 {h2 * 1000:.1f} ms"


def test_the_http1_server_rejects_a_request_that_is_not_get_with_400():
    async def scenario() -> bytes:
        server = await asyncio.start_server(
            lambda r, w: http2_multiplex.http1_connection(r, w, http2_multiplex.InFlight()),
            "127.0.0.1",
            0,
        )
        async with server:
            reader, writer = await asyncio.open_connection(*server.sockets[0].getsockname())
            writer.write(b"\x16\x03\x01 not http\r\n\r\n")
            async with asyncio.timeout(5):
                reply = await reader.read()
            writer.close()
            return reply

    assert asyncio.run(scenario()).startswith(b"HTTP/1.1 400 ")


def test_hpack_shrinks_repeated_headers_and_the_server_decodes_them_all():
    paths = http2_hpack.paths(100)
    h1 = http2_hpack.http1_bytes(paths)
    h2, decoded = http2_hpack.http2_bytes(paths)
    assert sum(h1) > 3 * sum(h2)
    assert h2[1] < h2[0] / 2  # the second request refers to the dynamic table
    assert [dict(headers)[":path"] for headers in decoded] == paths
    assert all(dict(headers)["cookie"] == dict(http2_hpack.COMMON)["cookie"] for headers in decoded)


def test_hpack_never_indexes_the_authorization_header():
    paths = http2_hpack.paths(10)
    with_auth, _ = http2_hpack.http2_bytes(paths)
    no_auth, _ = http2_hpack.http2_bytes(
        paths, [h for h in http2_hpack.COMMON if h[0] != "authorization"]
    )
    # Every repeat still carries the value (Huffman-coded, ~3/4 of its 52 characters).
    assert len(dict(http2_hpack.COMMON)["authorization"]) == 52  # the page says 52
    assert all(a - b > 30 for a, b in zip(with_auth[1:], no_auth[1:], strict=True))


def test_real_loss_of_one_response_stalls_every_stream_on_its_connection_only():
    """Real loss (the client's kernel drops the large response's segments for `window`
    seconds) and its counterfactual, interleaved: the same loss on one shared HTTP/2
    connection and on ten separate connections, each with the same filter.

    This replaces a proxy that slept (a model) and a test that compared against the max
    of one hold=0 run, which one slow moment made fail (issue 19): both variants now run
    in every round, and what is compared is an ordering — which responses finish before
    the one that lost data — not a time against a threshold."""
    window, rounds = 0.5, 3
    shared, apart, ahead = [], [], []
    for _ in range(rounds):
        large, others, held = asyncio.run(http2_hol.under_loss(10, window, separate=False))
        assert len(others) == 9 and large >= window  # lost, and repaired only after the window
        assert min(others) >= window  # nobody got past the hole in the byte stream ...
        assert not any(t < large for t in others)  # ... nobody finished before it ...
        assert held != 0  # ... though their segments had arrived (-1: a kernel before 5.4)
        shared.append(statistics.median(others))
        large, others, _ = asyncio.run(http2_hol.under_loss(10, window, separate=True))
        assert len(others) == 9 and large >= window  # the same loss on its own connection
        ahead.append(sum(t < large for t in others))
        apart.append(statistics.median(others))
    # Noise budget: over 14 runs (6 beside two busy loops, with three other suites on the
    # machine) the large response took 0.68-1.04 s on its own connection, the others a
    # median 25-379 ms: 9 of 9 finished before it in every run, so 7 (median of three
    # rounds) leaves room. On one connection, 0 of 9 in every run (by construction). A
    # ratio of the two medians was not kept: it came down to 1.7x on the busy machine.
    assert statistics.median(ahead) >= 7, f"finished before the lossy one: {ahead}"
    assert statistics.median(shared) > statistics.median(apart), (shared, apart)


def test_a_hole_delays_only_the_bytes_behind_it():
    """Break it (http2.md): make the last request the large one; the nine responses sent
    before it are not delayed by its loss."""
    window = 0.5
    large, others, _ = asyncio.run(http2_hol.under_loss(10, window, big=9))
    assert large >= window
    # Noise budget: over 14 runs (6 beside two busy loops) the large one took 0.53-0.93 s
    # and 9 of 9 finished before it every time: 7 leaves room for two stragglers.
    assert sum(t < large for t in others) >= 7, (large, others)
