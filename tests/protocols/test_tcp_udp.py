"""TCP vs UDP (docs/protocols/tcp-udp.md): each test asserts the lesson a snippet shows."""

from __future__ import annotations

import contextlib
import select
import socket
import struct
import time

import pytest

from tests.conftest import load_snippet

tcp_echo = load_snippet("protocols/tcp_echo")
tcp_framing = load_snippet("protocols/tcp_framing")
udp_boundaries = load_snippet("protocols/udp_boundaries")
udp_reliability = load_snippet("protocols/udp_reliability")
tcp_setup_cost = load_snippet("protocols/tcp_setup_cost")
tcp_nagle = load_snippet("protocols/tcp_nagle")
tcp_flow_control = load_snippet("protocols/tcp_flow_control")


def test_echo_server_returns_every_byte_in_order():
    payload = bytes(range(256)) * 400  # 100 KiB: more than one segment and one recv()
    with tcp_echo.echo_server() as address:
        assert address[0] == "127.0.0.1" and address[1] != 0
        assert tcp_echo.echo_once(address, payload) == payload


def test_two_sends_can_arrive_as_one_read_and_one_send_as_many():
    merged, split_sizes = tcp_framing.show_the_bug()
    assert merged == [b"helloworld"]  # two messages, one recv(): the boundary is gone
    assert len(split_sizes) > 1 and sum(split_sizes) == 300_000


def test_length_prefix_restores_message_boundaries():
    messages = [b"", b"a", b"hello", bytes(300_000), b"world"]
    assert tcp_framing.show_the_fix(messages) == messages


def test_length_prefix_rejects_an_oversized_announcement_without_allocating_it():
    client, server = tcp_framing.connected_pair()
    with client, server:
        client.sendall(struct.pack("!I", 2**32 - 1))  # a hostile or corrupt length
        with pytest.raises(ValueError, match="limit"):
            tcp_framing.recv_message(server)


def test_length_prefix_reports_a_peer_that_closes_mid_message():
    client, server = tcp_framing.connected_pair()
    with server:
        client.sendall(struct.pack("!I", 10) + b"abc")  # promises 10 bytes, sends 3
        client.close()
        with pytest.raises(EOFError, match="3 of 10"):
            tcp_framing.recv_message(server)


def test_length_prefix_times_out_on_a_peer_that_stalls_mid_message():
    client, server = tcp_framing.connected_pair()
    with client, server:
        server.settimeout(0.2)
        client.sendall(struct.pack("!I", 10) + b"abc")  # and then nothing
        with pytest.raises(TimeoutError):
            tcp_framing.recv_message(server)


def test_udp_keeps_boundaries_and_truncates_rather_than_splitting():
    messages = [b"a", b"bb", b"c" * 1000]
    assert udp_boundaries.send_and_receive(messages) == messages
    assert udp_boundaries.send_and_receive([b"x" * 1000], bufsize=100) == [b"x" * 100]


def test_lossy_relay_drops_and_reorders_a_seeded_fraction():
    arrived = udp_reliability.count_arrivals(n=100, drop=0.1, reorder=0.05, seed=7)
    assert 70 < len(arrived) < 100  # some lost, most arrived
    assert len(set(arrived)) == len(arrived)  # nothing duplicated by the relay
    assert arrived != sorted(arrived)  # some overtaken
    assert arrived == udp_reliability.count_arrivals(n=100, drop=0.1, reorder=0.05, seed=7)


def test_stop_and_wait_delivers_everything_in_order_over_the_lossy_relay():
    messages = [f"m{i}".encode() for i in range(30)]
    delivered, retransmissions, stats = udp_reliability.deliver_over_lossy_link(
        messages, drop=0.15, reorder=0.05, seed=7
    )
    assert delivered == messages  # all, in order, no duplicates delivered
    lost = stats["up dropped"] + stats["down dropped"]
    assert lost > 0 and retransmissions >= lost  # every loss was repaired by a resend


def test_stop_and_wait_gives_up_with_an_error_when_the_link_is_dead():
    with (
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as black_hole,
    ):
        black_hole.bind(("127.0.0.1", 0))  # bound, but nobody ever answers
        with pytest.raises(TimeoutError, match="not acknowledged"):
            udp_reliability.send_reliably(
                sender, black_hole.getsockname(), [b"x"], rto=0.01, max_tries=3
            )


def test_reusing_a_connection_is_faster_than_a_new_one_per_request():
    # Nine interleaved rounds: the median survives a few rounds disturbed by other work
    # (make test runs another worker beside this one on a 2-core machine).
    # Noise budget: new/reused was 5.3-8.3x over 15 runs (5 beside two busy loops): 1.2x
    # holds with a 4x margin.
    new, reused = tcp_setup_cost.compare(n=100, rounds=9)
    assert new > 1.2 * reused, f"new {new * 1e6:.0f} µs vs reused {reused * 1e6:.0f} µs"


def test_nagle_and_delayed_ack_stall_write_write_read_and_nodelay_fixes_it():
    # Noise budget: the stall was 555-1406x the fast modes over 15 runs (5 beside two busy
    # loops): the 40 ms delayed-ACK timer against tens of microseconds; 5x is far below.
    medians = tcp_nagle.compare(n=12)
    stalled = medians["two writes, Nagle on (default)"]
    assert stalled > 5 * medians["two writes, TCP_NODELAY"]
    assert stalled > 5 * medians["one write, Nagle on"]  # or send the request in one write


def test_a_reader_that_stops_reading_stops_the_writer_after_a_bounded_amount():
    run = tcp_flow_control.stalled_writer(16 << 10)
    assert 0 < run["accepted"] < 1 << 20  # bounded by two small buffers, not by the sender
    # Nothing read: the window stays shut. Noise budget: exact, no margin. Two earlier
    # definitions of "held" flaked when the process was starved: 0.1 s of EAGAIN (45,608
    # bytes accepted here at load 12-15), then that plus nothing in flight (4,096-8,192
    # bytes in 4 of 80 runs beside 3 busy loops; 19 of 60 with a 10-30 ms pause before
    # each send): acknowledgements freed room that select() does not report until the free
    # room is half of what is queued, or the reader left its window open by less than a
    # segment and the persist timer filled it later. "Held" is now kernel state that only
    # a read changes (nothing unacknowledged, advertised window zero, TCP_INFO) plus a
    # refused send(): 0 of 80 runs beside busy loops, 0 of 60 with the pause; this test 20
    # of 20 passes alone and 20 of 20 beside 3 busy loops, the flake hunt running throughout.
    assert run["stalled"] == 0
    assert run["timed_out"]  # a blocking writer waits until its timeout
    # What the reader finally got is exactly the start of what was written: the bytes the
    # kernel accepted while the window was shut were kept, in order, none lost or repeated.
    expected = bytes(i % 251 for i in range(run["accepted"]))
    assert run["drained"] == expected
    assert run["resumed"] > 0  # reading opened the window again


def test_a_larger_receive_window_lets_the_writer_get_further_ahead():
    small = tcp_flow_control.stalled_writer(16 << 10)["accepted"]
    large = tcp_flow_control.stalled_writer(256 << 10)
    assert large["accepted"] > 2 * small
    assert large["stalled"] == 0  # the page prints the second try for both buffers


def persist_timer_probed(writer: socket.socket, cap: float = 2.0) -> bool:
    """Wait until the writer's persist timer sent a zero-window probe that carried no data.

    Linux counts such probes in tcpi_backoff; a probe that sends data into an open window
    resets it to 0 (tcp_send_probe0 in net/ipv4/tcp_output.c). So backoff >= 1 means the
    timer fired and found nothing it could send. The cap is only against a hang.
    """
    deadline = time.monotonic() + cap
    while tcp_flow_control.linux_tcp_info(writer)["backoff"] < 1:
        if time.monotonic() > deadline:
            return False
        time.sleep(tcp_flow_control.LOOK)
    return True


def test_held_by_the_window_lasts_however_long_the_writer_waits():
    """Held is a state only a read ends. A window left open by less than one of the
    writer's segments is not held: the writer's persist timer sends into it later."""
    writer, reader = tcp_flow_control.connected_pair(256 << 10)
    with writer, reader:
        accepted = tcp_flow_control.fill_until_blocked(writer)
        # The wait is for evidence, not for time: the persist timer's first probe, which
        # would have sent bytes into a small open window. Noise budget: no margin needed.
        # The probe came 0.209-0.243 s after the fill, 15 of 15 runs at load 4-6 (the RTO,
        # >= 200 ms); the 2 s cap is not a threshold, it only turns a probe that never
        # comes into a clear failure. When "held" allowed a small open window (unacked == 0
        # only), backoff reached 1 after 0.44-0.47 s (a data probe reset it first) and
        # 20,896 more bytes went in, 5 of 5 runs; with the window shut and nothing in
        # flight no timer moves a byte, so a slow machine cannot make this fail wrongly.
        assert persist_timer_probed(writer), "no zero-window probe within 2 s"
        assert tcp_flow_control.fill_until_blocked(writer, sent=accepted) == 0


def test_a_window_left_open_by_less_than_a_segment_is_filled_later_by_the_persist_timer():
    """The trap the page explains: send() refused twice with nothing in flight (the earlier
    definition of held) can come while the reader's window is still open by less than
    one of the writer's segments; the persist timer later sends into it and send() takes
    more bytes without the reader reading a byte."""
    writer, reader = tcp_flow_control.connected_pair(256 << 10)
    chunk = tcp_flow_control.CHUNK
    with writer, reader:
        writer.setblocking(False)
        sent, refused, deadline = 0, 0, time.monotonic() + 10
        while refused < 2 and time.monotonic() < deadline:  # what the earlier definition
            try:  # called held: refused, nothing in flight, and refused again right after
                sent += writer.send(tcp_flow_control.stream_bytes(sent, chunk))
                refused = 0
                continue
            except BlockingIOError:
                if not refused:
                    first_refusal = time.monotonic()
                info = tcp_flow_control.linux_tcp_info(writer)
            if info["unacked"]:  # acknowledgements still to come: wait for them
                refused = 0
                select.select([], [writer], [], tcp_flow_control.LOOK)
            else:
                refused += 1
        # The two refusals and their looks take microseconds. A process descheduled for a
        # whole RTO (>= 200 ms) between them lets the persist timer fill the window before
        # the look: the state this test looks at was there but is gone, which says nothing
        # about the kernel. Measured, not assumed; never seen at load 3-6.
        looked_after = time.monotonic() - first_refusal
        if looked_after >= 0.2:
            pytest.skip(f"this process slept {looked_after:.2f} s between refusal and look")
        # Stopping at the first refusal instead found a wide-open window in 2 of 60 runs
        # (1 of 40 in this test): the last ACKs had just emptied the send buffer, so a
        # second send() would have gone through. The earlier definition waited that out.
        assert refused == 2
        assert 0 < info["snd_wnd"] < info["snd_mss"]  # the window is open, by too little
        # Nobody reads; the persist timer sends the piece that fits, its ACK frees room.
        # Noise budget: no margin to pick. The stop found a 20,896-49,576 byte window
        # against a 65,483 byte MSS and more bytes were taken 0.217-0.250 s later (the RTO,
        # >= 200 ms) in 20 timed runs; with the stop as written, 115 of 115 runs found the
        # sub-MSS window (60 scripted, 40 in one process, 15 under pytest) at load 3-6.
        # The 2 s cap only bounds a failure. The one way this could fail wrongly, this
        # process sleeping through the whole RTO between the refusals and its look at
        # TCP_INFO, is measured above and skips with the time it slept.
        more, deadline = 0, time.monotonic() + 2
        while not more and time.monotonic() < deadline:
            select.select([], [writer], [], tcp_flow_control.LOOK)
            with contextlib.suppress(BlockingIOError):
                more = writer.send(tcp_flow_control.stream_bytes(sent, chunk))
        assert more > 0
        writer.settimeout(5)


def test_break_it_without_so_sndbuf_the_writer_gets_megabytes_ahead_and_is_still_held():
    """tcp-udp.md Break it: delete the SO_SNDBUF line (sndbuf=None); Linux grows the send
    buffer itself (up to tcp_wmem's maximum) and the writer gets far further ahead."""
    run = tcp_flow_control.stalled_writer(16 << 10, sndbuf=None)
    assert run["accepted"] >= 1 << 20  # 3,682,304 bytes here, against ~60 KiB with it
    assert run["stalled"] == 0  # bounded still: nothing more until the reader reads
    assert run["drained"] == bytes(i % 251 for i in range(run["accepted"]))


def test_framing_break_it_one_read_without_the_wait_two_when_reading_between_sends():
    """tcp-udp.md Break it: on Linux loopback the wait changes nothing (both sends are in
    the receive buffer before this thread reads); reading between the sends splits them."""
    for _ in range(30):
        client, server = tcp_framing.connected_pair()
        with client, server:
            client.sendall(b"hello")
            client.sendall(b"world")
            assert tcp_framing.naive_reads(server, 10) == [b"helloworld"]
    client, server = tcp_framing.connected_pair()
    with client, server:
        client.sendall(b"hello")
        first = server.recv(65536)
        client.sendall(b"world")
        assert [first, server.recv(65536)] == [b"hello", b"world"]


def test_tcp_info_offsets_are_read_only_on_linux(monkeypatch):
    """The offsets are Linux's struct tcp_info; FreeBSD has a TCP_INFO with other offsets,
    where reading them would turn garbage into "held". Elsewhere: None, and the fallback."""
    writer, reader = tcp_flow_control.connected_pair(16 << 10)
    with writer, reader:
        info = tcp_flow_control.linux_tcp_info(writer)
        assert info is not None and info["snd_mss"] > 0 and info["snd_wnd"] > 0
        monkeypatch.setattr(tcp_flow_control.sys, "platform", "freebsd14")
        assert tcp_flow_control.linux_tcp_info(writer) is None
        assert not tcp_flow_control.window_shut(writer)  # writable: 0.1 s of select() says so
