"""The PROXY protocol v2 (docs/proxies/proxy-protocol.md): parsed by hand, checked against
what real HAProxy sends with `send-proxy-v2`, trusted only from the proxy, and malformed,
oversized and slow headers refused."""

from __future__ import annotations

import socket
import threading

import pytest

from tests.conftest import load_snippet

pp = load_snippet("proxies/proxy_protocol")


def test_without_send_proxy_the_backend_sees_haproxy_as_its_peer(haproxy_bin):
    seen = pp.through_haproxy(send_proxy=False)
    assert seen["peer"][0] == pp.PROXY_ADDRESS != seen["client"][0]
    assert seen["header"] == "no header expected" and seen["data"] == b"hello\n"


def test_with_send_proxy_v2_the_parsed_header_names_the_real_client(haproxy_bin):
    """The control is the test above: same client, same proxy, one keyword added."""
    seen = pp.through_haproxy(send_proxy=True)
    header = seen["header"]
    assert isinstance(header, pp.ProxyHeader), header
    assert header.command == "PROXY"
    assert header.source == seen["client"]  # address AND port of the client's own socket
    assert header.destination == ("127.0.0.1", seen["proxy"])
    assert seen["peer"][0] == pp.PROXY_ADDRESS  # the TCP peer is still the proxy
    assert seen["data"] == b"hello\n"  # the parser consumed exactly the header


def test_haproxys_bytes_are_the_spec_layout_and_parse_completely(haproxy_bin):
    raw = pp.raw_header()
    assert raw[:12] == pp.SIGNATURE and raw[12:16] == bytes([0x21, 0x11, 0x00, 0x0C])
    header, used = pp.parse_v2(raw)
    assert used == len(raw) == 28
    # The bytes shown on the page come from the same client as the parsed line under them.
    assert raw[16:20] == socket.inet_aton(pp.CLIENT_ADDRESS) and header.source[0] == "127.0.0.3"


def test_build_and_parse_round_trip_and_local_is_addressless():
    raw = pp.build_v2(("203.0.113.7", 4444), ("192.0.2.1", 443))
    assert pp.parse_v2(raw + b"rest") == (
        pp.ProxyHeader("PROXY", ("203.0.113.7", 4444), ("192.0.2.1", 443), {}),
        28,
    )
    local = pp.SIGNATURE + bytes([0x20, 0x00, 0x00, 0x00])
    assert pp.parse_v2(local) == (pp.ProxyHeader("LOCAL", None, None, {}), 16)


def test_break_it_a_backend_that_trusts_every_peer_believes_a_forged_header():
    refused = pp.forged({pp.PROXY_ADDRESS})
    assert refused == f"refused: {pp.CLIENT_ADDRESS} is not a trusted proxy"
    believed = pp.forged({pp.PROXY_ADDRESS, pp.CLIENT_ADDRESS})
    assert isinstance(believed, pp.ProxyHeader) and believed.source == ("203.0.113.7", 4444)


GOOD = pp.build_v2(("203.0.113.7", 4444), ("127.0.0.1", 80))


@pytest.mark.parametrize(
    ("payload", "error"),
    [
        (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", "rejected: no PROXY v2 signature"),
        (b"PROXY TCP4 203.0.113.7 127.0.0.1 4444 80\r\n", "rejected: no PROXY v2 signature"),
        (GOOD[:12] + b"\x11" + GOOD[13:] + b"x\n", "rejected: version 1, expected 2"),
        (GOOD[:12] + b"\x2f" + GOOD[13:] + b"x\n", "rejected: unknown command 15"),
        (GOOD[:14] + b"\xff\xff" + b"\x00" * 600, "rejected: length 65535 over our limit"),
        (GOOD[:13] + b"\x31" + GOOD[14:] + b"x\n", "rejected: family 3 / transport 1 not"),
        (GOOD[:14] + b"\x00\x04" + GOOD[16:20] + b"x\n", "rejected: 4 bytes cannot hold"),
        (GOOD[:20], "rejected: connection closed after 20 header bytes"),  # then closed
    ],
    ids=["http", "v1", "version", "command", "oversized", "unix", "short", "truncated"],
)
def test_malformed_headers_are_refused_with_a_reason(payload, error):
    backend = pp.Backend(expect_header=True, trusted={pp.CLIENT_ADDRESS})
    try:
        with socket.socket() as sock:
            sock.settimeout(5)
            sock.bind((pp.CLIENT_ADDRESS, 0))
            sock.connect(("127.0.0.1", backend.port))
            try:
                sock.sendall(payload)
                sock.shutdown(socket.SHUT_WR)  # nothing more is coming
                answer = sock.recv(16)
            except OSError:  # reset, broken pipe, not connected: closed with our bytes unread
                answer = b""
            assert answer == b"", answer  # no "ok": the connection was refused
        result = backend.last()[1]
        assert isinstance(result, str) and result.startswith(error), result
    finally:
        backend.close()


def test_a_silent_client_is_dropped_after_the_timeout_not_waited_on():
    backend = pp.Backend(expect_header=True, trusted={pp.CLIENT_ADDRESS})
    try:
        with socket.socket() as sock:
            sock.bind((pp.CLIENT_ADDRESS, 0))
            sock.connect(("127.0.0.1", backend.port))
            sock.sendall(GOOD[:10])  # part of a header, then nothing
            assert backend.last()[1] == "dropped: TimeoutError"
    finally:
        backend.close()


def test_a_client_dripping_its_header_is_dropped_at_the_deadline():
    """One byte every 0.4 s would take 11 s for the 28-byte header; a timeout per recv()
    (each byte restarting it) would wait all of it, the 3 s deadline for the whole header
    does not."""
    # Noise budget: the backend drops the sender HEADER_TIMEOUT (3 s) after it connected;
    # last() waits 5 s, a 2 s margin for a busy machine, and a per-recv timeout would
    # finish the header only after ~11 s, so it cannot pass.
    backend = pp.Backend(expect_header=True, trusted={pp.CLIENT_ADDRESS})
    stop = threading.Event()

    def drip(sock: socket.socket) -> None:
        for byte in GOOD + b"hello\n":
            if stop.wait(0.4):
                return
            try:
                sock.sendall(bytes([byte]))
            except OSError:  # dropped
                return

    try:
        with socket.socket() as sock:
            sock.bind((pp.CLIENT_ADDRESS, 0))
            sock.connect(("127.0.0.1", backend.port))
            sender = threading.Thread(target=drip, args=(sock,), daemon=True)
            sender.start()
            try:
                assert backend.last()[1] == "dropped: TimeoutError"
            finally:
                stop.set()
                sender.join()
    finally:
        backend.close()
