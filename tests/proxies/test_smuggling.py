"""What goes wrong between proxies (docs/proxies/smuggling.md): a lax toy front and a
Transfer-Encoding-first toy back desynchronise and the victim gets the attacker's request;
the strict front (RFC 9112 §6.3), a back that closes after CL+TE, real NGINX and real
HAProxy each stop it; hop-by-hop headers; X-Forwarded-For trusted only from our proxies;
and every toy parser sent malformed, oversized and slow input."""

from __future__ import annotations

import socket

import pytest

from tests.conftest import load_snippet, trickle

sd = load_snippet("proxies/smuggling_desync")


def parsed(run):
    return [(r.method, r.target, ", ".join(r.values("cookie"))) for _, r in run["seen"]]


def test_lax_front_and_te_first_back_give_the_victim_the_attackers_request():
    run = sd.through_toys(strict=False)
    assert sd.summary(run["attacker"]) == "200 OK | page /search, for no cookie"
    assert sd.summary(run["victim"]) == "200 OK | ADMIN PANEL, for session=victim"
    assert parsed(run) == [("POST", "/search", ""), ("GET", "/admin", "session=victim")]
    (_, smuggled) = run["seen"][1]
    assert smuggled.values("x-ignore") == ["xGET /home HTTP/1.1"]  # the victim's request line
    assert {n for n, _ in run["seen"]} == {1}  # one pooled connection carried both


def test_control_the_strict_front_answers_400_and_closes_so_nothing_is_smuggled():
    run = sd.through_toys(strict=True)
    assert sd.summary(run["attacker"]).startswith("400 Bad Request (Connection: close) | both")
    assert sd.summary(run["victim"]) == "200 OK | page /home, for session=victim"
    assert parsed(run) == [("GET", "/home", "session=victim")]


def test_control_a_back_that_closes_after_cl_and_te_discards_the_prefix():
    """RFC 9112 §6.1's MUST (close after such a request), which the toy back skips."""
    run = sd.through_toys(strict=False, close_after_both=True)
    assert ("GET", "/admin", "session=victim") not in parsed(run)
    assert b"ADMIN" not in run["victim"]


def test_strict_front_really_closes_after_the_400():
    with sd.Loop() as loop:
        port = loop.serve(sd.Front(loop.serve(sd.Back().handle), strict=True).handle)
        with socket.create_connection(("127.0.0.1", port), 5) as sock:
            sock.sendall(sd.ATTACK)
            data = b""
            while chunk := sock.recv(65536):  # b"" only when the front closes; else timeout
                data += chunk
    assert data.startswith(b"HTTP/1.1 400 ") and data.count(b"HTTP/1.1") == 1


def test_nginx_answers_400_and_the_back_never_sees_the_attack(nginx_bin):
    run = sd.through_real("nginx")
    assert sd.summary(run["attacker"]) == "400 Bad Request (Connection: close) | 400 Bad Request"
    assert sd.summary(run["victim"]) == "200 OK | page /home, for session=victim"
    assert parsed(run) == [("GET", "/home", "session=victim")]


def test_haproxy_drops_content_length_frames_by_chunked_and_closes(haproxy_bin):
    run = sd.through_real("haproxy")
    post, home = run["seen"]
    assert (post[1].method, post[1].body) == ("POST", b"")  # the body ended at 0 CRLF CRLF
    assert post[1].values("transfer-encoding") == ["chunked"]
    assert post[1].values("content-length") == []  # removed, as RFC 9112 §6.3 requires
    assert (home[1].target, home[1].values("cookie")) == ("/home", ["session=victim"])
    assert post[0] == home[0]  # the same back connection: reuse was on, and still no desync
    assert "(Connection: close)" in sd.summary(run["attacker"])


@pytest.mark.parametrize(("proxy", "status"), [("nginx", b"400"), ("haproxy", b"200")])
def test_real_proxy_closes_the_attackers_connection_after_answering(request, proxy, status):
    request.getfixturevalue(f"{proxy}_bin")
    start = sd.running_nginx if proxy == "nginx" else sd.running_haproxy
    with sd.Loop() as loop:
        back_port = loop.serve(sd.Back().handle)
        with (
            start(back_port) as port,
            socket.create_connection(("127.0.0.1", port), 3) as sock,
        ):
            sock.sendall(sd.ATTACK)
            data = b""
            while chunk := sock.recv(65536):  # a socket timeout here: it kept it open
                data += chunk
    assert data.startswith(b"HTTP/1.1 " + status) and data.count(b"HTTP/1.1 ") == 1


@pytest.mark.parametrize("proxy", ["nginx", "haproxy"])
def test_control_both_real_proxies_do_share_one_back_connection_between_clients(request, proxy):
    """Without this, "nothing was smuggled" could mean only "the victim got a fresh
    connection": a harmless POST and the victim's GET share the back connection."""
    request.getfixturevalue(f"{proxy}_bin")
    harmless = b"POST /search HTTP/1.1\r\nHost: shop\r\nContent-Length: 2\r\n\r\nhi"
    run = sd.through_real(proxy, first=harmless)
    assert [(n, r.target) for n, r in run["seen"]] == [(1, "/search"), (1, "/home")]


# Hop-by-hop fields and X-Forwarded-For


def test_strict_front_removes_connection_and_the_fields_it_names_lax_forwards_them():
    lax, _ = sd.headers_seen(False, sd.HOP)
    strict, _ = sd.headers_seen(True, sd.HOP)
    names = {n.lower() for n, _ in lax.headers}
    assert {"connection", "x-hop-secret", "keep-alive"} <= names
    assert {n.lower() for n, _ in strict.headers} == {"host", "x-forwarded-for"}


def test_a_client_cannot_name_the_fronts_own_x_forwarded_for_in_connection():
    sneaky = sd.HOP.replace(b"X-Hop-Secret\r\n", b"X-Forwarded-For\r\n", 1)
    seen, _ = sd.headers_seen(True, sneaky)
    assert seen.values("x-forwarded-for") == [sd.CLIENT_ADDRESS]


def test_leftmost_x_forwarded_for_is_spoofed_rightmost_untrusted_is_the_client():
    seen, answer = sd.headers_seen(True, sd.LIAR)
    assert seen.values("x-forwarded-for") == [f"203.0.113.7, {sd.CLIENT_ADDRESS}"]
    assert answer == f"leftmost: 203.0.113.7; rightmost untrusted: {sd.CLIENT_ADDRESS}"


def test_control_straight_to_the_back_the_header_is_ignored_the_peer_is_the_client():
    seen, answer = sd.headers_seen(None, sd.LIAR)
    assert seen.values("x-forwarded-for") == ["203.0.113.7"]
    assert answer.endswith(f"rightmost untrusted: {sd.CLIENT_ADDRESS}")


def test_break_it_trusting_the_clients_network_believes_the_lie():
    chain = [f"203.0.113.7, {sd.CLIENT_ADDRESS}"]
    assert sd.client(chain, sd.FRONT_ADDRESS) == sd.CLIENT_ADDRESS  # the control
    too_much = {sd.FRONT_ADDRESS, sd.CLIENT_ADDRESS}
    assert sd.client(chain, sd.FRONT_ADDRESS, too_much) == "203.0.113.7"


def test_rightmost_untrusted_walks_past_every_trusted_proxy():
    trusted = {"10.0.0.1", "10.0.0.2"}
    chain = ["198.51.100.1, 203.0.113.9", "10.0.0.1"]
    assert sd.client(chain, "10.0.0.2", trusted) == "203.0.113.9"
    assert sd.leftmost(chain, "10.0.0.2") == "198.51.100.1"
    assert sd.client([], "10.0.0.2", trusted) == "10.0.0.2"  # only proxies: the first hop


# Malformed, oversized and slow input, to each toy parser


@pytest.fixture(params=["lax front", "strict front", "back"])
def toy(request):
    """The port of one toy server (a front has the toy back behind it)."""
    with sd.Loop() as loop:
        back_port = loop.serve(sd.Back().handle)
        if request.param == "back":
            yield back_port
        else:
            yield loop.serve(sd.Front(back_port, request.param == "strict front").handle)


GOOD = b"GET /ok HTTP/1.1\r\nHost: shop\r\n\r\n"
BAD = {  # input, status, what the error says (so a 400 for another reason fails)
    "not http": (b"HELLO\r\n\r\n", 400, "malformed request line"),
    "no colon": (b"GET / HTTP/1.1\r\nHost: shop\r\nX-Oops\r\n\r\n", 400, "malformed header"),
    "no host": (b"GET / HTTP/1.1\r\nX-Host: shop\r\n\r\n", 400, "exactly one Host"),
    "two hosts": (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400, "exactly one Host"),
    "space before colon": (b"GET / HTTP/1.1\r\nHost : shop\r\n\r\n", 400, "malformed header"),
    "version": (b"GET / HTTP/2.0\r\nHost: shop\r\n\r\n", 400, "unsupported version"),
    "obs-fold": (b"GET / HTTP/1.1\r\nHost: shop\r\n  folded\r\n\r\n", 400, "malformed header"),
    "huge header": (b"GET / HTTP/1.1\r\nX-Big: " + b"a" * 10_000 + b"\r\n\r\n", 431, "head over"),
    "content-length abc": (
        b"POST / HTTP/1.1\r\nHost: shop\r\nContent-Length: abc\r\n\r\n",
        400,
        "invalid Content-Length",
    ),
    "content-length twice": (
        b"POST / HTTP/1.1\r\nHost: shop\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nx",
        400,
        "invalid Content-Length",
    ),
    "content-length huge": (
        b"POST / HTTP/1.1\r\nHost: shop\r\nContent-Length: 999999999\r\n\r\n",
        413,
        "over 65536",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_malformed_and_oversized_input_gets_an_error_and_the_server_goes_on(toy, case):
    data, status, why = BAD[case]
    reply = sd.exchange(toy, data)
    assert reply.startswith(b"HTTP/1.1 %d " % status), (case, reply[:80])
    assert why.encode() in reply and b"Connection: close" in reply, reply
    assert sd.summary(sd.exchange(toy, GOOD)).startswith("200 OK | page /ok")  # still serving


@pytest.mark.parametrize("server", ["strict front", "back"])
@pytest.mark.parametrize(
    ("coding", "body", "status"),
    [
        ("chunked", b"zz\r\nhello\r\n0\r\n\r\n", 400),
        ("chunked", b"5\r\nhelloXX0\r\n\r\n", 400),
        ("chunked", b"%x\r\n" % (70_000) + b"a" * 70_000 + b"\r\n0\r\n\r\n", 413),
        ("chunked, gzip", b"", 400),  # RFC 9112 §6.3: MUST 400, then close
        ("gzip", b"", 400),
        ("gzip, chunked", b"0\r\n\r\n", 501),  # a coding we do not implement (§6.1)
    ],
    ids=["bad size", "no crlf", "over limit", "chunked not last", "no chunked", "unknown"],
)
def test_chunked_bodies_are_parsed_strictly(server, coding, body, status):
    with sd.Loop() as loop:
        port = loop.serve(sd.Back().handle)
        if server == "strict front":
            port = loop.serve(sd.Front(port, strict=True).handle)
        head = b"POST / HTTP/1.1\r\nHost: shop\r\nTransfer-Encoding: %s\r\n\r\n" % coding.encode()
        reply = sd.exchange(port, head + body)
        assert reply.startswith(b"HTTP/1.1 %d " % status), reply[:80]
        good = b"POST /ok HTTP/1.1\r\nHost: shop\r\nTransfer-Encoding: chunked\r\n\r\n"
        good += b"5\r\nhello\r\n0\r\n\r\n"
        assert sd.summary(sd.exchange(port, good)).startswith("200 OK | page /ok")


@pytest.fixture
def short_timeout(monkeypatch):
    """The parsers read TIMEOUT when they start a deadline: 0.5 s instead of the demo's
    2 s keeps these tests short. The code path is the same."""
    monkeypatch.setattr(sd, "TIMEOUT", 0.5)


def test_slow_head_gets_408_one_deadline_for_the_whole_head(toy, short_timeout):
    """A byte every 0.3 s never leaves a per-recv timeout idle, but the head deadline
    (TIMEOUT from the first byte) ends it: 408, then close."""
    with socket.create_connection(("127.0.0.1", toy), 5) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\n")
        reply, _ = trickle(sock, 0.3)
    assert reply.startswith(b"HTTP/1.1 408 "), reply[:80]


@pytest.mark.parametrize(
    "data",
    [
        b"GET / HTTP/1.1\r\nHost: sh",
        b"POST / HTTP/1.1\r\nHost: shop\r\nContent-Length: 10\r\n\r\nabc",
    ],
    ids=["silent inside the head", "body shorter than Content-Length"],
)
def test_a_client_that_stops_sending_gets_408(toy, data, short_timeout):
    with socket.create_connection(("127.0.0.1", toy), 5) as sock:
        sock.sendall(data)
        reply = sock.recv(4096)  # a socket timeout (5 s) here would be a hang
    assert reply.startswith(b"HTTP/1.1 408 "), reply[:80]


def test_a_client_that_closes_mid_request_costs_nothing(toy):
    for data in (
        b"GET / HTTP/1.1\r\nHo",
        b"POST / HTTP/1.1\r\nHost: shop\r\nContent-Length: 9\r\n\r\nab",
    ):
        with socket.create_connection(("127.0.0.1", toy), 5) as sock:
            sock.sendall(data)
    assert sd.summary(sd.exchange(toy, GOOD)).startswith("200 OK | page /ok")


def test_a_back_that_answers_garbage_or_nothing_is_a_502_from_the_front():
    """The front's own upstream parsing: a malformed or missing response is 502, a silent
    back 504, and the pooled connection is dropped, not reused."""
    import asyncio

    async def garbage(reader, writer):
        await reader.read(1024)
        writer.write(b"NOT HTTP\r\n\r\n")
        await writer.drain()
        writer.close()

    async def closes(reader, writer):
        await reader.read(1024)
        writer.close()

    async def silent(reader, writer):
        await reader.read(1024)
        await asyncio.sleep(10)

    results = {}
    with sd.Loop() as loop:
        for name, handler in (("garbage", garbage), ("closes", closes), ("silent", silent)):
            port = loop.serve(sd.Front(loop.serve(handler), strict=True).handle)
            results[name] = sd.exchange(port, GOOD, timeout=5)
    assert results["closes"].startswith(b"HTTP/1.1 502 ")
    assert results["silent"].startswith(b"HTTP/1.1 504 ")
    assert results["garbage"].startswith(b"HTTP/1.1 502 ")
