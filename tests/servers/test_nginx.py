"""NGINX for real (docs/servers/nginx.md): real NGINX and Apache processes from the Debian
packages, started by the snippets' own functions with the configs the page shows."""

from __future__ import annotations

import http.client
import json
import os
import re
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import load_snippet, trickle

nginx_proxy = load_snippet("servers/nginx_proxy")
apache_mpm = load_snippet("servers/apache_mpm")


@pytest.fixture
def www() -> Iterator[Path]:
    """A document root NGINX's and Apache's workers can read: as root they run as nobody,
    and pytest's tmp_path sits under a directory only its owner may enter."""
    with tempfile.TemporaryDirectory() as root:
        Path(root).chmod(0o755)
        (Path(root) / "index.html").write_text("static!\n")
        (Path(root) / "index.html").chmod(0o644)
        yield Path(root)


@pytest.fixture(scope="module")
def stack(nginx_bin: str) -> Iterator[tuple]:
    """The app and NGINX in front of it with snippets/servers/nginx/proxy.conf."""
    with (
        tempfile.TemporaryDirectory() as root,
        pytest.MonkeyPatch.context() as mp,
        nginx_proxy.running_app() as app,
    ):
        Path(root).chmod(0o755)
        (Path(root) / "index.html").write_text("static!\n")
        (Path(root) / "index.html").chmod(0o644)
        mp.setenv("NGINX_BIN", nginx_bin)
        upstream = f"127.0.0.1:{app.server_address[1]}"
        with nginx_proxy.running_nginx(nginx_proxy.CONF, ROOT=str(root), APP=upstream) as nginx:
            nginx.root = Path(root)  # for tests that look at the served files
            yield nginx, app


def test_static_files_are_served_by_nginx_and_never_reach_the_app(stack):
    nginx, app = stack
    before = app.hits
    status, headers, body = nginx_proxy.get(nginx.url, "/index.html")
    assert (status, body) == (200, b"static!\n")
    assert headers["Server"].startswith("nginx") and "ETag" in headers
    status, _, _ = nginx_proxy.get(nginx.url, "/missing.html")
    assert status == 404
    assert app.hits == before


def test_proxy_passes_the_client_address_and_appends_to_a_forwarded_for_chain(stack):
    nginx, _ = stack
    status, _, body = nginx_proxy.get(nginx.url, "/api/whoami")
    seen = json.loads(body)
    assert status == 200
    assert seen["peer"] == "127.0.0.1"  # the TCP peer of the app is NGINX
    assert seen["x-real-ip"] == seen["x-forwarded-for"] == "127.0.0.1"
    _, _, body = nginx_proxy.get(nginx.url, "/api/whoami", {"X-Forwarded-For": "198.51.100.9"})
    assert json.loads(body)["x-forwarded-for"] == "198.51.100.9, 127.0.0.1"


def test_an_app_slower_than_proxy_read_timeout_gets_504_at_the_timeout(stack):
    nginx, _ = stack
    status, _, _ = nginx_proxy.get(nginx.url, "/api/slow?delay=0.02")
    assert status == 200
    start = time.perf_counter()
    status, _, _ = nginx_proxy.get(nginx.url, "/api/slow?delay=3")
    elapsed = time.perf_counter() - start
    assert status == 504
    # Noise budget: observed 0.302-0.324 s over 10 runs, 4 with two busy-loop processes;
    # NGINX's timer is what fires, so load adds milliseconds, not the app's 3 s.
    assert 0.25 < elapsed < 2.0, elapsed  # proxy_read_timeout 300ms, not the app's 3 s
    # NGINX writes the error log line around when it sends the 504: it may trail the reply.
    logged = any("upstream timed out" in line for line in nginx.log)
    assert logged or nginx.wait_for("upstream timed out")


def test_proxy_read_timeout_is_between_two_reads_not_for_the_whole_response(stack):
    """/api/trickle sends its 12-byte body a byte every 0.1 s (1.2 s in all) under a 1 s
    proxy_read_timeout: never 1 s of silence, so the whole answer arrives, later than the
    timeout. The 504 test above is the control: silence, and the timeout fires."""
    nginx, _ = stack
    start = time.perf_counter()
    status, _, body = nginx_proxy.get(nginx.url, "/api/trickle?seconds=1.2")
    elapsed = time.perf_counter() - start
    assert (status, body) == (200, b"." * 12)
    # Noise budget: 1.2 s of sleeps in the app; observed 1.23-1.35 s over 10 runs, 4 of them
    # with two busy-loop processes; load only lengthens it, so "> 1.0" cannot flake.
    assert elapsed > 1.0, elapsed  # longer than proxy_read_timeout, and still a 200


def test_a_sub_second_read_timeout_cuts_a_trickle_off_nginx_timers_are_lazy(stack):
    """The page's caveat, run: under /api/sub/ (proxy_read_timeout 300ms) the same trickle is
    cut off mid-body, because NGINX leaves a running timer alone when re-arming it would
    move it by under 300 ms (NGX_TIMER_LAZY_DELAY), so it fires 300 ms after the headers."""
    nginx, _ = stack
    start = time.perf_counter()
    with pytest.raises(http.client.IncompleteRead):
        nginx_proxy.get(nginx.url, "/api/sub/trickle?seconds=1.2")
    # Noise budget: NGINX's own timer; cut off after ~0.3-0.4 s, well before the 1.2 s.
    assert time.perf_counter() - start < 1.1
    # "while reading upstream": the body timed out, not the header (that is the 504 test)
    marker = "timed out (110: Connection timed out) while reading upstream"
    assert any(marker in line for line in nginx.log) or nginx.wait_for(marker)


def test_nginx_rejects_an_invalid_range_with_416_and_builds_its_etag_from_mtime_and_size(
    stack,
):
    """Say which system: RFC 9110 §14.2 lets a server ignore an invalid Range (static_server
    does: 200) or reject it; NGINX 1.22 rejects it with 416. Its ETag is "%xT-%xO": the
    mtime in whole seconds, then the size, in hex. A 10 KB request line gets 414."""
    nginx, _ = stack
    for invalid in ("bytes=5-3", "bytes=oops"):
        status, headers, _ = nginx_proxy.get(nginx.url, "/index.html", {"Range": invalid})
        assert status == 416 and headers["Content-Range"] == "bytes */8", (invalid, status)
    status, headers, _ = nginx_proxy.get(nginx.url, "/index.html")
    stat = (nginx.root / "index.html").stat()
    assert headers["ETag"] == f'"{int(stat.st_mtime):x}-{stat.st_size:x}"', headers["ETag"]
    assert "Date" in headers
    host, port = nginx.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(b"GET /" + b"a" * 10_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        assert sock.makefile("rb").readline().startswith(b"HTTP/1.1 414 ")


def test_malformed_and_oversized_requests_get_400_and_never_reach_the_app(stack):
    nginx, app = stack
    before = app.hits
    assert nginx_proxy.raw_request(nginx.url, b"HELLO?\r\n\r\n") == "400 Bad Request"
    huge = b"GET /api/whoami HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 10_000 + b"\r\n\r\n"
    assert nginx_proxy.raw_request(nginx.url, huge) == "400 Request Header Or Cookie Too Large"
    host, port = nginx.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(huge)
        status_line = sock.makefile("rb").readline()
    # that is the error page's <title>; the status line is a plain 400 (not 431)
    assert status_line == b"HTTP/1.1 400 Bad Request\r\n", status_line
    assert app.hits == before


def test_a_client_trickling_its_headers_is_dropped_after_client_header_timeout(stack):
    """client_header_timeout (1 s in proxy.conf) bounds the whole request head, not each
    read: a header byte every 0.2 s never leaves NGINX waiting 1 s for the next one, yet
    the connection is closed about 1 s after it started."""
    nginx, _ = stack
    host, port = nginx.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as slow:
        start = time.perf_counter()
        slow.sendall(b"GET /index.html HTTP/1.1\r\nHost: x\r\n")  # never the final CRLF
        # Meanwhile other clients are served at once: one event loop, no thread held.
        assert nginx_proxy.get(nginx.url, "/index.html")[0] == 200
        assert time.perf_counter() - start < 0.5  # observed 1-16 ms over 10 runs
        reply, ended = trickle(slow, pace=0.2)  # 48 bytes, 9.6 s of trickling at most
        closed_after = ended - start
    assert reply != b"!", "NGINX still held the trickling connection after 9.6 s"
    assert reply == b"", f"NGINX answered instead of closing: {reply[:40]!r}"
    # Noise budget: observed 0.996-1.024 s over 10 runs, 4 with two busy-loop processes.
    assert 0.8 < closed_after < 3.0, closed_after


def test_a_stopped_app_gives_502(nginx_bin, monkeypatch, www):
    # The first request is answered within /api/'s 10 s read timeout even on a busy machine:
    # under the 300 ms it once had, a flake hunt run (4 workers on 2 cores, load 15) got 504.
    monkeypatch.setenv("NGINX_BIN", nginx_bin)
    with nginx_proxy.running_app() as app:
        upstream = f"127.0.0.1:{app.server_address[1]}"
        with nginx_proxy.running_nginx(nginx_proxy.CONF, ROOT=str(www), APP=upstream) as n:
            assert nginx_proxy.get(n.url, "/api/whoami")[0] == 200
            app.shutdown()
            app.server_close()
            assert nginx_proxy.get(n.url, "/api/whoami")[0] == 502


def test_running_nginx_retries_when_another_process_took_the_port(nginx_bin, monkeypatch):
    monkeypatch.setenv("NGINX_BIN", nginx_bin)
    with socket.create_server(("127.0.0.1", 0)) as squatter:  # holds the first port offered
        ports = iter([squatter.getsockname()[1]])
        real_free_port = nginx_proxy.free_port
        monkeypatch.setattr(nginx_proxy, "free_port", lambda: next(ports, None) or real_free_port())
        with nginx_proxy.running_nginx(
            nginx_proxy.CONF, ROOT="/nonexistent", APP="127.0.0.1:9"
        ) as n:
            assert n.port != squatter.getsockname()[1]
            assert nginx_proxy.get(n.url, "/index.html")[0] == 404  # NGINX answers, not squatter
    assert n.proc.poll() is not None  # stopped on exit


def test_idle_keepalive_connections_hold_prefork_processes_but_not_event_or_nginx(
    apache2_bin, nginx_bin, monkeypatch, www: Path
):
    monkeypatch.setenv("APACHE2_BIN", apache2_bin)
    monkeypatch.setenv("NGINX_BIN", nginx_bin)
    (www / "index.html").write_text("hello\n")  # what apache_mpm.request() waits for
    prefork, event, nginx = (apache_mpm.measure(k, str(www)) for k in ("prefork", "event", "nginx"))
    # prefork: a process per connection, 8 of them plus the parent, one thread each
    assert prefork["processes"] == 9 and prefork["threads"] == 9
    # event: one child process with worker threads; NGINX: master + 1 single-threaded worker
    assert event["processes"] == 2 and event["threads"] > 8
    assert nginx["processes"] == 2 and nginx["threads"] == 2
    # the 9th client waits for an idle connection's KeepAliveTimeout (1 s) on prefork only.
    # Noise budget: prefork's 9th client waited 0.76-0.96 s over 10 runs (4 with two
    # busy-loop processes), event's and NGINX's at most 0.21 s and 0.03 s (usually a few ms;
    # a ratio "10x faster" failed once on the busy machine); without idle clients prefork
    # took at most 3 ms. 0.5 s splits "waits for KeepAliveTimeout" from "does not".
    assert prefork["loaded"] > 0.5
    assert max(event["loaded"], nginx["loaded"]) < 0.5, (event, nginx)
    assert prefork["unloaded"] < 0.1  # with no idle clients prefork is as quick as the rest


def test_the_output_reports_absolute_waits_not_a_ratio_of_two_single_samples(monkeypatch, capsys):
    """One request per server is one sample each: a ratio of two (e.g. 994 ms / 4.6 ms =
    216x) mostly measures the noise on the small one, so main() prints the waits."""
    waits = {"prefork": 0.9876, "event": 0.0046, "nginx": 0.0003}
    monkeypatch.setattr(
        apache_mpm,
        "measure",
        lambda kind, root: {"processes": 2, "threads": 2, "unloaded": 0.001, "loaded": waits[kind]},
    )
    apache_mpm.main()
    last = capsys.readouterr().out.splitlines()[-1]
    assert "987.6 ms" in last and "4.6 ms" in last, last
    assert not re.search(r"\d\.?\d*x\b", last), last  # no "216.6x longer"


def test_counting_processes_and_threads_survives_a_process_exiting_mid_scan(monkeypatch):
    gone = subprocess.Popen(["true"])
    gone.wait(timeout=5)  # a pid that no longer exists: /proc/<pid>/ is gone
    assert apache_mpm.threads_of([os.getpid(), gone.pid]) == apache_mpm.threads_of([os.getpid()])
    real_read_text = Path.read_text

    def vanishing(path: Path, *args, **kwargs) -> str:
        if path.parent.name != str(os.getpid()):  # every other process "exits" as we look
            raise FileNotFoundError(path)
        return real_read_text(path, *args, **kwargs)

    monkeypatch.setattr(Path, "read_text", vanishing)
    assert apache_mpm.process_tree(os.getpid()) == [os.getpid()]
