"""WSGI and ASGI (docs/servers/wsgi-asgi.md): the interfaces by hand, checked against the
specs, then the same apps under real gunicorn and uvicorn processes."""

from __future__ import annotations

import asyncio
import http.client
import io
import socket
import statistics
import sys
import wsgiref.util
import wsgiref.validate

import pytest

from tests.conftest import load_snippet

wsgi_app = load_snippet("servers/wsgi_app")
asgi_app = load_snippet("servers/asgi_app")


def wsgi_call(method: str, path: str, body: bytes = b"", validate: bool = True, **environ: str):
    env: dict = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "wsgi.input": io.BytesIO(body),
        "CONTENT_LENGTH": str(len(body)),
        "SCRIPT_NAME": "",
        "QUERY_STRING": "",
        **environ,
    }
    wsgiref.util.setup_testing_defaults(env)
    started = []
    # The validator asserts PEP 3333 on every step, for the server and the app alike.
    app = wsgiref.validate.validator(wsgi_app.app) if validate else wsgi_app.app
    result = app(env, lambda status, headers, exc_info=None: started.append(status))
    try:
        return started[0], b"".join(result)
    finally:
        getattr(result, "close", lambda: None)()


def test_the_wsgi_app_follows_pep_3333_and_refuses_bad_bodies():
    assert wsgi_call("GET", "/")[0] == "200 OK"
    assert wsgi_call("POST", "/echo", b"abc") == ("200 OK", b"3 bytes: b'abc'\n")
    assert wsgi_call("GET", "/nope")[0] == "404 Not Found"
    assert wsgi_call("POST", "/echo", validate=False, CONTENT_LENGTH="ten")[0] == "400 Bad Request"
    assert wsgi_call("POST", "/echo", CONTENT_LENGTH=str(10**9))[0] == "413 Content Too Large"
    assert wsgi_call("POST", "/echo", CONTENT_LENGTH="")[1] == b"0 bytes: b''\n"
    assert wsgi_app.call_by_hand("POST", "/echo", b"hi")[2] == b"2 bytes: b'hi'\n"


def test_the_asgi_app_reassembles_a_streamed_body_and_refuses_a_huge_one():
    sent = asyncio.run(asgi_app.call_by_hand("POST", "/echo", [b"a", b"b", b"c"]))
    assert sent[0]["status"] == 200 and sent[1]["body"] == b"3 bytes: b'abc'\n"
    huge = [b"x" * 65536] * 20  # 1.25 MiB in 20 events: refused before the end
    assert asyncio.run(asgi_app.call_by_hand("POST", "/echo", huge))[0]["status"] == 413
    assert asyncio.run(asgi_app.call_by_hand("POST", "/echo", [])) == []  # client went away
    assert asyncio.run(asgi_app.call_by_hand("GET", "/nope", [b""]))[0]["status"] == 404


def test_the_asgi_app_completes_lifespan_startup_and_shutdown():
    events = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
    sent: list[dict] = []

    async def receive():
        return events.pop(0)

    async def send(message):
        sent.append(message)

    asyncio.run(asgi_app.app({"type": "lifespan"}, receive, send))
    assert [m["type"] for m in sent] == ["lifespan.startup.complete", "lifespan.shutdown.complete"]


@pytest.fixture(scope="module")
def gunicorn():
    with wsgi_app.serve(wsgi_app.gunicorn(workers=2)) as address:
        yield address


@pytest.fixture(scope="module")
def uvicorn():
    with asgi_app.serve(asgi_app.uvicorn()) as address:
        yield address


def raw(address, data: bytes) -> bytes:
    with socket.create_connection(address, timeout=5) as sock:
        sock.sendall(data)
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
            if b"\r\n\r\n" in reply:
                break
        return reply


@pytest.mark.parametrize("server", ["gunicorn", "uvicorn"])
def test_real_servers_serve_the_apps_and_answer_malformed_requests_with_400(server, request):
    address = request.getfixturevalue(server)
    assert wsgi_app.get(address, "/")[0] == 200
    assert wsgi_app.get(address, "/nope")[0] == 404
    conn = http.client.HTTPConnection(*address, timeout=5)
    conn.request("POST", "/echo", body=b"x" * 1000)
    assert conn.getresponse().read() == b"1000 bytes: " + repr(b"x" * 40).encode() + b"\n"
    conn.close()
    assert raw(address, b"GARBAGE\r\n\r\n").startswith(b"HTTP/1.1 400")  # the server's parser


def test_one_asgi_process_overlaps_waits_that_tie_up_sync_wsgi_workers(gunicorn, uvicorn):
    saved = []
    for _ in range(3):  # interleaved rounds, compared by their difference
        wsgi_seconds, wsgi_pids = wsgi_app.concurrent(gunicorn, "/wait")
        asgi_seconds, asgi_pids = asgi_app.concurrent(uvicorn, "/wait")
        # 20 requests x 50 ms over 2 sync workers cannot take less than 0.5 s ...
        assert wsgi_seconds >= 0.45 and 1 <= len(wsgi_pids) <= 2
        assert len(asgi_pids) == 1
        saved.append(wsgi_seconds - asgi_seconds)
    # ... while one uvicorn process waits for all 20 at once: ~0.45 s less in theory.
    # Noise budget: single runs gave wsgi 0.59-1.13 s, asgi 0.11-0.30 s over 10 runs (4 with
    # two busy-loop processes); the old "asgi x 2 < wsgi" came within 5 % of failing
    # (0.30 x 2 vs 0.63). The smallest single difference was 0.33 s; the bound on the median
    # of 3 is 0.2 s. Client overhead, which load inflates, is in both and cancels.
    assert statistics.median(saved) > 0.2, saved


def test_serve_stops_the_server_process():
    with asgi_app.serve(asgi_app.uvicorn()) as address:
        assert asgi_app.get(address, "/")[0] == 200
    assert asgi_app.get(address, "/", timeout=0.5) is None  # nobody listens any more


@pytest.mark.parametrize("fail", [False, True])
def test_calling_a_wsgi_app_by_hand_closes_its_iterable_even_on_error(fail, monkeypatch):
    """PEP 3333: "If the iterable returned by the application has a close() method, the
    server or gateway must call that method upon completion of the current request" —
    also when iterating it raised. (Like wsgiref's FileWrapper, which closes its file.)"""
    closed = []

    class Body:
        def __iter__(self):
            yield b"one"
            if fail:
                raise RuntimeError("the app failed mid-body")
            yield b"two"

        def close(self):
            closed.append(True)  # e.g. a file or a database cursor released

    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return Body()

    monkeypatch.setattr(wsgi_app, "app", app)
    if fail:
        with pytest.raises(RuntimeError):
            wsgi_app.call_by_hand("GET", "/")
    else:
        assert wsgi_app.call_by_hand("GET", "/")[2] == b"onetwo"
    assert closed == [True]


def test_calling_a_wsgi_app_by_hand_supports_write_and_exc_info(monkeypatch):
    """PEP 3333: start_response(status, headers, exc_info=None) returns a write(body_data)
    callable, and may be called again only with exc_info (an app replacing its response
    after an error). The old by-hand server (a two-argument lambda) failed both."""

    def app(environ, start_response):
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"written ")  # the legacy imperative API: these bytes come first
        try:
            raise ValueError("the app failed after starting its response")
        except ValueError:
            start_response("500 Internal Server Error", [("X-Error", "1")], sys.exc_info())
        return [b"iterated"]

    monkeypatch.setattr(wsgi_app, "app", app)
    assert wsgi_app.call_by_hand("GET", "/") == (
        "500 Internal Server Error",
        [("X-Error", "1")],
        b"written iterated",
    )

    def twice(environ, start_response):
        start_response("200 OK", [])
        start_response("200 OK", [])
        return []

    monkeypatch.setattr(wsgi_app, "app", twice)
    with pytest.raises(AssertionError, match="twice without exc_info"):
        wsgi_app.call_by_hand("GET", "/")
