"""The mTLS lab, stage by stage (docs/security/lab-mtls.md).

Black-box tests over real TLS connections. Each test makes its CAs and certificates at run
time (trustme) in a temp dir, starts the learner's file as
`python <file> serve --port 0 --cert <pem> --client-ca <pem> --allow /orders=orders.internal`,
waits for `listening on 127.0.0.1:<port>` and talks to it with Python's ssl, verification
always on; stage 2 runs the learner's `call` command against a server of its own.

Run: make lab LAB=mtls FILE=path/to/your_service.py
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import select
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import trustme

PAGE = "docs/security/lab-mtls.md"
STAGES = {
    1: "a TLS server with a certificate from a local CA",
    2: "the client verifies the server's name",
    3: "the server requires client certificates",
    4: "authorization by the client's identity (SAN)",
    5: "CA rotation with zero failed requests",
    6: "bad input: plaintext, an expired certificate, stalled handshakes, a huge request",
}
READY = r"listening on 127\.0\.0\.1:(\d+)"
SERVER_NAME = "orders-api.test"
TIMEOUT = 3.0  # the test client's limit for any answer; the server's own limit is 1 s


# --- certificates -------------------------------------------------------------------------


def write(path: Path, data: bytes) -> Path:
    """Atomically: a server that reloads must never read half a file."""
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    return path


def pem(cert: trustme.LeafCert) -> bytes:
    return cert.private_key_and_cert_chain_pem.bytes()


@dataclass
class Pki:
    dir: Path
    ca: trustme.CA

    def file(self, name: str, data: bytes) -> Path:
        return write(self.dir / name, data)

    def leaf(self, name: str, *names: str, **kwargs) -> Path:
        return self.file(name, pem(self.ca.issue_cert(*names, **kwargs)))


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    ca = trustme.CA()
    p = Pki(tmp_path, ca)
    p.file("ca.pem", ca.cert_pem.bytes())
    p.leaf("server.pem", SERVER_NAME)
    p.leaf("orders.pem", "orders.internal")
    p.leaf("billing.pem", "billing.internal")
    return p


# --- the learner's server and a verifying client -------------------------------------------


@pytest.fixture
def server(spawn, pki: Pki) -> Callable[[], tuple[object, int]]:
    def start() -> tuple[object, int]:
        program = spawn(
            "serve",
            "--port",
            "0",
            "--cert",
            str(pki.dir / "server.pem"),
            "--client-ca",
            str(pki.dir / "ca.pem"),
            "--allow",
            "/orders=orders.internal",
        )
        return program, int(program.wait_for(READY)[1])

    return start


def client_context(trust: Path | bytes, cert: Path | None) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # CERT_REQUIRED, check_hostname
    if isinstance(trust, Path):
        ctx.load_verify_locations(trust)
    else:
        ctx.load_verify_locations(cadata=trust.decode())
    if cert is not None:
        ctx.load_cert_chain(cert)
    return ctx


def ask(port: int, ctx: ssl.SSLContext, line: bytes = b"GET /orders\n") -> str:
    """The server's answer line, or what went wrong, as text for the failure message."""
    try:
        with (
            socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as raw,
            ctx.wrap_socket(raw, server_hostname=SERVER_NAME) as tls,
        ):
            tls.sendall(line)
            answer = b""
            while b"\n" not in answer:
                data = tls.recv(4096)
                if not data:
                    break
                answer += data
            return answer.decode("utf-8", "replace").strip() or "(closed, no answer)"
    except ssl.SSLCertVerificationError as error:
        return f"(our client refused your certificate: {error.verify_message})"
    except TimeoutError:
        return f"(no answer within {TIMEOUT} s)"
    except (ssl.SSLError, OSError) as error:
        return f"(TLS error: {error})"


def refused(answer: str) -> bool:
    """Refused by TLS: an alert, or the connection closed without an answer."""
    return answer.startswith(("(TLS error", "(closed"))


def refused_in_handshake(port: int, ctx: ssl.SSLContext) -> tuple[bool, str]:
    """Over TLS 1.2, where the server checks the client's certificate before it sends its
    Finished: a refusal is an error from the handshake itself (an alert, or the connection
    cut). A server that completes the handshake and then closes silently has not refused
    in TLS; over TLS 1.3 the two look alike (the client's handshake ends first)."""
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    try:
        with (
            socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as raw,
            ctx.wrap_socket(raw, server_hostname=SERVER_NAME) as tls,
        ):
            return False, f"the TLS 1.2 handshake completed ({tls.version()})"
    except ssl.SSLCertVerificationError as error:
        return False, f"our client refused your certificate: {error.verify_message}"
    except TimeoutError:
        return False, f"no answer to the TLS 1.2 handshake within {TIMEOUT} s"
    except (ssl.SSLError, OSError) as error:
        return True, f"the TLS 1.2 handshake failed: {error}"


# --- stage 1 -------------------------------------------------------------------------------


@pytest.mark.stage(1)
def test_serves_tls_with_its_certificate(server, pki: Pki):
    """a verifying client (our CA, name orders-api.test) gets 200 for GET /health"""
    _, port = server()
    got = ask(port, client_context(pki.dir / "ca.pem", pki.dir / "orders.pem"), b"GET /health\n")
    assert got.startswith("200"), (
        f"sent GET /health over TLS (trusting only the lab's CA, verifying {SERVER_NAME}) "
        f"with the client certificate of orders.internal; expected a line starting 200, got: {got}"
    )


@pytest.mark.stage(1)
def test_tls_is_really_on(server, pki: Pki):
    """the port speaks TLS: a plaintext request gets no plaintext answer"""
    _, port = server()
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as raw:
        raw.sendall(b"GET /health\n")
        with contextlib.suppress(OSError):
            got = raw.recv(64)
            assert not got.startswith(b"200"), f"plaintext GET /health was answered {got!r}"


# --- stage 2 -------------------------------------------------------------------------------


@contextlib.contextmanager
def stage_server(cert: trustme.LeafCert, client_ca: trustme.CA) -> Iterator[int]:
    """A TLS server presenting `cert`, requiring a client certificate from client_ca, that
    answers every request with the client's DNS names."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    cert.configure_cert(ctx)
    ctx.verify_mode = ssl.CERT_REQUIRED
    client_ca.configure_trust(ctx)
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        while True:
            try:
                raw, _ = listener.accept()
            except OSError:
                return
            with raw:
                raw.settimeout(TIMEOUT)
                try:
                    with ctx.wrap_socket(raw, server_side=True) as tls:
                        tls.recv(1024)
                        sans = tls.getpeercert().get("subjectAltName", ())
                        tls.sendall(f"200 hello {','.join(v for _, v in sans)}\n".encode())
                except (ssl.SSLError, OSError):
                    pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        listener.shutdown(socket.SHUT_RDWR)
        listener.close()
        thread.join(TIMEOUT)


def call(lab_file: Path, port: int, pki: Pki, name: str = SERVER_NAME) -> tuple[int, str]:
    argv = [sys.executable, str(lab_file), "call", "--connect", f"127.0.0.1:{port}"]
    argv += ["--name", name, "--ca", str(pki.dir / "ca.pem"), "--cert"]
    argv += [str(pki.dir / "orders.pem"), "/orders"]
    try:
        run = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    except subprocess.TimeoutExpired:
        return -1, "(your call command did not finish within 10 s)"
    return run.returncode, (run.stdout + run.stderr).strip()


@pytest.mark.stage(2)
def test_call_verifies_and_presents_its_certificate(lab_file: Path, pki: Pki):
    """`call` reaches a server whose certificate names orders-api.test, showing its own"""
    with stage_server(pki.ca.issue_cert(SERVER_NAME), pki.ca) as port:
        code, out = call(lab_file, port, pki)
    assert code == 0 and "200 hello orders.internal" in out, (
        f"ran `call --connect 127.0.0.1:{port} --name {SERVER_NAME} --ca ca.pem --cert "
        f"orders.pem /orders` against a server with a valid certificate for {SERVER_NAME} "
        f"that requires a client certificate; expected exit 0 and its answer "
        f"'200 hello orders.internal', got exit {code}: {out}"
    )


@pytest.mark.stage(2)
def test_call_refuses_a_certificate_for_another_name(lab_file: Path, pki: Pki):
    """`call` refuses a valid certificate (our CA) for billing-api.test: host name mismatch"""
    with stage_server(pki.ca.issue_cert("billing-api.test"), pki.ca) as port:
        code, out = call(lab_file, port, pki)
    assert code == 1 and "mismatch" in out.lower() and "200" not in out, (
        f"the server presented a certificate from the trusted CA for billing-api.test; "
        f"`call --name {SERVER_NAME}` must refuse it (exit 1, saying why: Python's "
        f"verify_message says 'Hostname mismatch'), got exit {code}: {out}"
    )


@pytest.mark.stage(2)
def test_call_refuses_a_certificate_from_an_unknown_ca(lab_file: Path, pki: Pki):
    """`call` refuses a certificate for the right name from a CA it does not trust"""
    with stage_server(trustme.CA().issue_cert(SERVER_NAME), pki.ca) as port:
        code, out = call(lab_file, port, pki)
    assert code == 1 and "issuer" in out and "200" not in out, (
        f"the server presented a certificate for {SERVER_NAME} from a CA not in --ca; "
        f"expected exit 1 and 'unable to get local issuer certificate', got exit {code}: {out}"
    )


# --- stage 3 -------------------------------------------------------------------------------


@pytest.mark.stage(3)
def test_a_client_without_a_certificate_is_refused(server, pki: Pki):
    """a client with no certificate gets a TLS refusal, not an answer"""
    _, port = server()
    got = ask(port, client_context(pki.dir / "ca.pem", None))
    assert refused(got), (
        f"connected without a client certificate and sent GET /orders; expected the TLS "
        f"layer to refuse (CERT_REQUIRED: an alert, no answer line), got: {got}"
    )
    tls12, why = refused_in_handshake(port, client_context(pki.dir / "ca.pem", None))
    assert tls12, (
        f"connected over TLS 1.2 without a client certificate; expected the handshake "
        f"itself to fail (CERT_REQUIRED sends an alert before the server's Finished), "
        f"not a silent close after it: {why}"
    )


@pytest.mark.stage(3)
def test_a_client_certificate_from_another_ca_is_refused(server, pki: Pki):
    """orders.internal's name on a certificate from another CA is refused"""
    _, port = server()
    impostor = write(pki.dir / "impostor.pem", pem(trustme.CA().issue_cert("orders.internal")))
    got = ask(port, client_context(pki.dir / "ca.pem", impostor))
    assert refused(got), (
        f"presented a certificate for orders.internal from a CA not in --client-ca; "
        f"expected a TLS refusal (unknown ca), got: {got}"
    )
    tls12, why = refused_in_handshake(port, client_context(pki.dir / "ca.pem", impostor))
    assert tls12, (
        f"presented the same certificate over TLS 1.2; expected the handshake itself to "
        f"fail (unknown ca): {why}"
    )
    ctx = client_context(pki.dir / "ca.pem", pki.dir / "orders.pem")
    control = ask(port, ctx, b"GET /health\n")
    assert control.startswith("200"), (
        f"and then GET /health from the real orders.internal got: {control}"
    )


# --- stage 4 -------------------------------------------------------------------------------


@pytest.mark.stage(4)
def test_only_the_allowed_identity_may_call_the_endpoint(server, pki: Pki):
    """orders.internal gets 200 for /orders; billing.internal (valid) gets 403"""
    _, port = server()
    trust = pki.dir / "ca.pem"
    orders = ask(port, client_context(trust, pki.dir / "orders.pem"))
    billing = ask(port, client_context(trust, pki.dir / "billing.pem"))
    assert orders.startswith("200") and billing.startswith("403"), (
        f"--allow /orders=orders.internal: GET /orders from orders.internal got: {orders}; "
        f"from billing.internal (a valid certificate, same CA) got: {billing}; "
        f"expected 200 and 403"
    )


@pytest.mark.stage(4)
def test_health_is_open_and_unknown_paths_are_404(server, pki: Pki):
    """any authenticated client may GET /health; an unknown path is 404"""
    _, port = server()
    ctx = client_context(pki.dir / "ca.pem", pki.dir / "billing.pem")
    health, other = ask(port, ctx, b"GET /health\n"), ask(port, ctx, b"GET /admin\n")
    assert health.startswith("200") and other.startswith("404"), (
        f"billing.internal: GET /health got: {health}; GET /admin got: {other}; "
        f"expected 200 and 404"
    )


@pytest.mark.stage(4)
def test_identity_is_the_san_not_the_common_name(server, pki: Pki):
    """a certificate with CN=orders.internal but SAN billing.internal gets 403"""
    _, port = server()
    trick = pki.leaf("trick.pem", "billing.internal", common_name="orders.internal")
    got = ask(port, client_context(pki.dir / "ca.pem", trick))
    assert got.startswith("403"), (
        f"the client certificate's subject CN is orders.internal, its subjectAltName "
        f"billing.internal; identity is the SAN (as RFC 9525 says for servers), so "
        f"expected 403, got: {got}"
    )


@pytest.mark.stage(4)
def test_names_and_paths_match_exactly(server, pki: Pki):
    """xorders.internal and orders.internal.billing.test get 403; GET /orders/x is 404"""
    _, port = server()
    trust = pki.dir / "ca.pem"
    got = {
        name: ask(port, client_context(trust, pki.leaf(f"{name}.pem", name)))
        for name in ("xorders.internal", "orders.internal.billing.test")
    }
    assert all(answer.startswith("403") for answer in got.values()), (
        f"--allow /orders=orders.internal: valid certificates (same CA) for names that "
        f"contain, end with or start with orders.internal got: {got}; expected 403 for "
        f"each (a DNS name matches only when it is equal, compared exactly)"
    )
    sub = ask(port, client_context(trust, pki.dir / "orders.pem"), b"GET /orders/x\n")
    assert sub.startswith("404"), (
        f"orders.internal: GET /orders/x got: {sub}; expected 404 (the rule names the "
        f"path /orders, not every path that starts with it)"
    )


# --- stage 5 -------------------------------------------------------------------------------


class Callers:
    """Four client threads calling GET /orders in a loop with the current settings, each
    answer recorded with the phase it started in."""

    def __init__(self, port: int, trust: bytes, cert: Path) -> None:
        self.port, self.trust, self.cert = port, trust, cert
        self.phase = 0
        self.results: list[tuple[int, str]] = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self.run, daemon=True) for _ in range(4)]
        for thread in self.threads:
            thread.start()

    def run(self) -> None:
        while not self.stop.is_set():
            with self.lock:
                phase, trust, cert = self.phase, self.trust, self.cert
            got = ask(self.port, client_context(trust, cert))
            with self.lock:
                self.results.append((phase, got))

    def set(self, trust: bytes | None = None, cert: Path | None = None) -> None:
        with self.lock:
            self.trust, self.cert = trust or self.trust, cert or self.cert
            self.phase += 1

    def wait_for_requests(self, count: int, within: float = 10.0) -> None:
        """Until `count` requests have started and ended in the current phase. (A guard
        against a hang, not a measurement: the whole stage-5 test, four phases of 10
        requests and three reloads, took 3.3 s at load 14; the limit ends a hung run.)"""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            with self.lock:
                done = sum(1 for p, _ in self.results if p == self.phase)
            if done >= count:
                return
            time.sleep(0.01)  # polling our own counter, not waiting for the server
        raise AssertionError(f"only {done} requests completed in phase {self.phase}")

    def finish(self) -> list[tuple[int, str]]:
        self.stop.set()
        for thread in self.threads:
            thread.join(TIMEOUT * 2)
        return self.results


@pytest.mark.stage(5)
def test_rotating_the_ca_fails_no_request(server, pki: Pki):
    """old CA -> old+new trusted -> certificates reissued -> old CA removed: 0 failures"""
    program, port = server()
    old, new = pki.ca, trustme.CA()
    both = old.cert_pem.bytes() + new.cert_pem.bytes()
    callers = Callers(port, old.cert_pem.bytes(), pki.dir / "orders.pem")

    def reload(step: str) -> None:
        program.proc.send_signal(signal.SIGHUP)
        try:
            program.wait_for(r"^reloaded")
        except AssertionError as error:
            raise AssertionError(f"{step}: sent SIGHUP, {error}") from None

    steps = []
    try:
        callers.wait_for_requests(10)
        steps.append("1. trust old+new on both sides")
        pki.file("ca.pem", both)
        reload(steps[-1])
        callers.set(trust=both)
        callers.wait_for_requests(10)
        steps.append("2. reissue every certificate from the new CA")
        pki.file("server.pem", pem(new.issue_cert(SERVER_NAME)))
        reload(steps[-1])
        callers.set(cert=pki.file("orders-new.pem", pem(new.issue_cert("orders.internal"))))
        callers.wait_for_requests(10)
        steps.append("3. remove the old CA")
        pki.file("ca.pem", new.cert_pem.bytes())
        reload(steps[-1])
        callers.set(trust=new.cert_pem.bytes())
        callers.wait_for_requests(10)
    finally:
        results = callers.finish()
    failed = [(p, got) for p, got in results if not got.startswith("200")]
    assert not failed, (
        f"{len(failed)} of {len(results)} requests failed during the rotation "
        f"(phase 0 = before step 1; {'; '.join(steps)}); the first: phase {failed[0][0]}: "
        f"{failed[0][1]}"
    )
    # the controls: the old CA is gone for real, on both sides
    old_client = ask(port, client_context(both, pki.dir / "orders.pem"))
    assert refused(old_client), (
        f"after step 3 a client certificate from the old CA got: {old_client}"
    )
    old_trust = ask(port, client_context(old.cert_pem.bytes(), callers.cert))
    assert old_trust.startswith("(our client refused"), (
        f"after step 2 the server must present the certificate from the new CA; a client "
        f"trusting only the old CA got: {old_trust}"
    )


# --- stage 6 -------------------------------------------------------------------------------


def closed_within(sock: socket.socket, seconds: float) -> bool:
    """Did the server close (EOF or reset) within `seconds`? Reads and drops what comes."""
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        if select.select([sock], [], [], left)[0]:
            try:
                if not sock.recv(4096):
                    return True
            except OSError:
                return True
    return False


@pytest.mark.stage(6)
def test_plaintext_on_the_tls_port_is_refused_and_the_server_keeps_serving(server, pki: Pki):
    """plaintext on the TLS port: closed with no answer; the next TLS client is served"""
    program, port = server()
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as raw:
        raw.sendall(b"GET /orders\n")
        assert closed_within(raw, TIMEOUT), f"plaintext GET /orders: not closed within {TIMEOUT} s"
    program.assert_alive()
    got = ask(port, client_context(pki.dir / "ca.pem", pki.dir / "orders.pem"))
    assert got.startswith("200"), f"after a plaintext client, a good client got: {got}"


@pytest.mark.stage(6)
def test_an_expired_client_certificate_is_refused(server, pki: Pki):
    """an expired certificate for orders.internal, from the right CA, is refused"""
    _, port = server()
    ended = dt.datetime.now(dt.UTC) - dt.timedelta(days=1)
    expired = pki.leaf(
        "expired.pem", "orders.internal", not_before=ended - dt.timedelta(days=30), not_after=ended
    )
    got = ask(port, client_context(pki.dir / "ca.pem", expired))
    assert refused(got), f"an expired client certificate for orders.internal got: {got}"
    tls12, why = refused_in_handshake(port, client_context(pki.dir / "ca.pem", expired))
    assert tls12, f"the expired certificate over TLS 1.2: expected a failed handshake: {why}"


@pytest.mark.stage(6)
def test_stalled_handshakes_time_out_and_others_are_served_meanwhile(server, pki: Pki):
    """5 clients stall mid-handshake: a good client is served at once; stallers cut off"""
    _, port = server()
    half_hello = b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"  # a ClientHello, cut short
    stallers = [socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) for _ in range(5)]
    try:
        for s in stallers:
            s.sendall(half_hello)
        # An order, not a time: the good client must get its 200 while all five stallers
        # are still open. A server that handshakes in its accept loop serves the good
        # client only after it has given up on (and closed) the stallers, whatever its
        # timeout; one with no timeout never closes them (checked below).
        # Noise budget: observed, reference solution: the good client's 200 came 0.059 s
        # median, 0.070 s max after the first staller connected (20 runs, load average
        # 4.6-4.9 on 2 cores; an earlier 10 runs at load 14: 0.046 s max from the good
        # client's connect); each staller was closed 1.00-1.06 s after it connected. The
        # order holds because 0.07 s is 14 times less than the server's 1 s timeout;
        # the 3 s wait for the close is 3 times that timeout.
        got = ask(port, client_context(pki.dir / "ca.pem", pki.dir / "orders.pem"))
        assert got.startswith("200"), (
            f"with 5 connections stalled after half a ClientHello, a good client got: {got} "
            f"(a handshake in the accept loop makes everyone wait for the stallers)"
        )
        done = select.select(stallers, [], [], 0)[0]
        assert not done, (
            f"when the good client got its 200, {len(done)} of the 5 stalled connections "
            f"had already been answered or closed: the good client was served only after "
            f"the stallers were given up on (a handshake in the accept loop?)"
        )
        for staller in stallers:
            assert closed_within(staller, TIMEOUT), (
                f"a connection stalled mid-handshake was still open after {TIMEOUT} s "
                f"(the server needs a timeout of about 1 s)"
            )
    finally:
        for s in stallers:
            s.close()


@pytest.mark.stage(6)
def test_an_oversized_request_gets_400(server, pki: Pki):
    """a 64 KiB request line with no newline gets 400 and the server stays up"""
    program, port = server()
    ctx = client_context(pki.dir / "ca.pem", pki.dir / "orders.pem")
    got = ask(port, ctx, b"GET /" + b"a" * 65536)
    assert got.startswith("400"), (
        f"sent 'GET /' and 64 KiB of 'a' without a newline; expected a 400 line "
        f"(requests are at most 1024 bytes), got: {got}"
    )
    program.assert_alive()
    assert ask(port, ctx).startswith("200")
