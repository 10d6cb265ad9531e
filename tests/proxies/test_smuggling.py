"""What goes wrong between proxies (docs/proxies/smuggling.md): a lax toy front and a
Transfer-Encoding-first toy back desynchronise and the victim gets the attacker's request;
the strict front (RFC 9112 §6.1: reject, close), a back that closes after CL+TE, NGINX and
HAProxy each stop it; hop-by-hop headers; X-Forwarded-For trusted only from our proxies;
and every toy parser sent malformed, oversized and slow input."""

from __future__ import annotations

import asyncio
import contextlib
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
    # the back's Connection: close is hop-by-hop: the front acts on it and does not relay it
    assert sd.summary(run["attacker"]) == "200 OK | page /search, for no cookie"
    assert sd.summary(run["victim"]) == "200 OK | page /home, for session=victim"
    # the POST on connection 1, which then closed with the prefix; the victim on a new one
    assert [(n, r.target) for n, r in run["seen"]] == [(1, "/search"), (2, "/home")]


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


def test_an_x_forwarded_for_the_client_names_in_connection_is_removed_before_appending():
    """RFC 9110 §7.6.1: the named field is hop-by-hop; the front's own entry stays."""
    sneaky = sd.HOP.replace(b"X-Hop-Secret: for", b"X-Forwarded-For: 6.6.6.6\r\nX-Hop-Secret: for")
    sneaky = sneaky.replace(b"X-Hop-Secret\r\n", b"X-Forwarded-For\r\n", 1)
    assert b"X-Forwarded-For: 6.6.6.6" in sneaky and b"keep-alive, X-Forwarded-For" in sneaky
    seen, _ = sd.headers_seen(True, sneaky)
    assert seen.values("x-forwarded-for") == [sd.CLIENT_ADDRESS]
    lax, _ = sd.headers_seen(False, sneaky)  # the control: kept when nobody removes it
    assert lax.values("x-forwarded-for") == [f"6.6.6.6, {sd.CLIENT_ADDRESS}"]


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
    "content-length superscript two": (  # "²".isdigit() is True; int("²") raises
        b"POST / HTTP/1.1\r\nHost: shop\r\nContent-Length: \xb2\r\n\r\nxx",
        400,
        "invalid Content-Length",
    ),
    "bare LF in a value": (  # another parser may see a second line: Transfer-Encoding
        b"GET / HTTP/1.1\r\nHost: shop\r\nX-A: a\nTransfer-Encoding: chunked\r\n\r\n",
        400,
        "control character in the value of X-A",
    ),
    "bare CR in a value": (
        b"GET / HTTP/1.1\r\nHost: shop\r\nX-A: a\rTransfer-Encoding: chunked\r\n\r\n",
        400,
        "control character in the value of X-A",
    ),
    "NUL in a value": (
        b"GET / HTTP/1.1\r\nHost: shop\r\nX-A: a\x00b\r\n\r\n",
        400,
        "control character in the value of X-A",
    ),
    "control in the target": (
        b"GET /a\x01b HTTP/1.1\r\nHost: shop\r\n\r\n",
        400,
        "control character in the request target",
    ),
    "invalid host": (b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400, "invalid Host"),
    "two hosts, HTTP/1.0": (
        b"GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n",
        400,
        "exactly one Host",
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


def test_control_a_tab_in_a_value_is_allowed():
    """The control for the control-character cases: HTAB is legal inside a field value."""
    data = b"GET /ok HTTP/1.1\r\nHost: shop\r\nX-A: a\tb\r\n\r\n"
    seen, answer = sd.headers_seen(True, data)
    assert seen.values("x-a") == ["a\tb"] and answer.startswith("page /ok")


def answers(port, data):
    """Every byte the server sends until it closes (a socket timeout here: it kept it open)."""
    with socket.create_connection(("127.0.0.1", port), 5) as sock:
        sock.sendall(data)
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    return reply


@pytest.mark.parametrize("server", ["strict front", "back"])
def test_http_1_0_with_transfer_encoding_is_400_and_close(server):
    """RFC 9112 §6.1: treat it "as if the framing is faulty" and close; the bytes after
    the chunked terminator are never answered as a second request."""
    data = b"POST / HTTP/1.0\r\nHost: shop\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
    data += b"GET /admin HTTP/1.1\r\nHost: shop\r\n\r\n"
    with sd.Loop() as loop:
        port = loop.serve(sd.Back().handle)
        if server == "strict front":
            port = loop.serve(sd.Front(port, strict=True).handle)
        reply = answers(port, data)
    assert reply.startswith(b"HTTP/1.1 400 ") and reply.count(b"HTTP/1.1 ") == 1, reply
    assert b"HTTP/1.0 request" in reply


@pytest.mark.parametrize(
    "first",
    [
        b"GET /one HTTP/1.1\r\nHost: shop\r\nConnection: close\r\n\r\n",
        b"GET /one HTTP/1.0\r\n\r\n",
    ],
    ids=["Connection: close", "HTTP/1.0"],
)
def test_close_and_http_1_0_get_one_answer_then_the_connection_closes(toy, first):
    """RFC 9112 §9.6 (a "close" option) and §9.3 (HTTP/1.0 without keep-alive): one
    answer, which says Connection: close, and the pipelined second request is not read."""
    reply = answers(toy, first + b"GET /two HTTP/1.1\r\nHost: shop\r\n\r\n")
    assert reply.count(b"HTTP/1.1 200 ") == 1 and b"page /one" in reply, reply
    assert b"\r\nConnection: close\r\n" in reply and b"/two" not in reply


def test_control_without_close_both_pipelined_requests_are_answered(toy):
    reply = answers(
        toy,
        GOOD.replace(b"/ok", b"/one") + GOOD.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n"),
    )
    assert reply.count(b"HTTP/1.1 200 ") == 2 and b"page /one" in reply and b"page /ok" in reply


def test_front_honours_the_backs_connection_close_and_drops_its_hop_by_hop_fields():
    """A back that says "Connection: close" but leaves the socket open: the front must
    not send it another request (RFC 9112 §9.6), and relays none of the response's
    hop-by-hop fields (RFC 9110 §7.6.1)."""

    per_connection = []

    async def closing(reader, writer):
        per_connection.append(0)
        number = len(per_connection) - 1
        with contextlib.suppress(asyncio.IncompleteReadError):
            while await reader.readuntil(b"\r\n\r\n"):  # every request head it is sent
                per_connection[number] += 1
                writer.write(
                    b"HTTP/1.1 200 OK\r\nConnection: close, X-Hop\r\nX-Hop: 1\r\n"
                    b"Keep-Alive: timeout=5\r\nX-End: 1\r\nContent-Length: 2\r\n\r\nok"
                )
                await writer.drain()

    with sd.Loop() as loop:
        port = loop.serve(sd.Front(loop.serve(closing), strict=True).handle)
        replies = [sd.exchange(port, GOOD) for _ in range(2)]
    assert per_connection == [1, 1]  # a new back connection for the second request
    for reply in replies:
        head = reply.split(b"\r\n\r\n")[0].lower()
        assert head.startswith(b"http/1.1 200 ") and b"x-end: 1" in head  # the control
        assert b"x-hop" not in head and b"keep-alive" not in head and b"connection" not in head


def test_an_internal_error_is_a_500_and_the_server_goes_on(toy, monkeypatch):
    calls = []

    def broken(self, request, peer):
        calls.append(request.target)
        if request.target == "/boom":
            raise ValueError("a bug")
        return f"page {request.target}, for no cookie"

    monkeypatch.setattr(sd.Back, "answer", broken)
    reply = sd.exchange(toy, b"GET /boom HTTP/1.1\r\nHost: shop\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 500 ") and b"ValueError" in reply, reply[:80]
    assert calls == ["/boom"]
    assert sd.summary(sd.exchange(toy, GOOD)).startswith("200 OK | page /ok")
    assert calls == ["/boom", "/ok"]


def test_a_back_that_answers_garbage_or_nothing_is_a_502_from_the_front():
    """The front's own upstream parsing: a malformed or missing response is 502, a silent
    back 504, and the pooled connection is dropped, not reused."""

    async def garbage(reader, writer):
        await reader.read(1024)
        writer.write(b"NOT HTTP\r\n\r\n")
        await writer.drain()
        writer.close()

    def answering(response):
        async def handler(reader, writer):
            await reader.read(1024)
            writer.write(response)
            await writer.drain()

        return handler

    async def closes(reader, writer):
        await reader.read(1024)
        writer.close()

    async def silent(reader, writer):
        await reader.read(1024)
        await asyncio.sleep(10)

    results = {}
    with sd.Loop() as loop:
        chunked = answering(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
        unframed = answering(b"HTTP/1.1 200 OK\r\n\r\nuntil close")
        for name, handler in (
            ("garbage", garbage),
            ("closes", closes),
            ("silent", silent),
            ("chunked", chunked),
            ("unframed", unframed),
        ):
            port = loop.serve(sd.Front(loop.serve(handler), strict=True).handle)
            results[name] = sd.exchange(port, GOOD, timeout=5)
    assert results["closes"].startswith(b"HTTP/1.1 502 ")
    assert results["silent"].startswith(b"HTTP/1.1 504 ")
    assert results["garbage"].startswith(b"HTTP/1.1 502 ")
    # framing the toy front does not implement: 502, never a guess at where the body ends
    assert results["chunked"].startswith(b"HTTP/1.1 502 ") and b"framing" in results["chunked"]
    assert results["unframed"].startswith(b"HTTP/1.1 502 ") and b"framing" in results["unframed"]
