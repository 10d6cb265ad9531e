"""TLS verification, round trips, SNI/ALPN and resumption (docs/security/tls-verification.md):
each failure for its own reason next to its control, flights counted on the wire, and the
snippets' servers sent plaintext, garbage, an oversized record and silence."""

from __future__ import annotations

import socket
import ssl
from pathlib import Path

import pytest
import trustme

from tests.conftest import load_snippet

verify = load_snippet("security/tls_verify")
trips = load_snippet("security/tls_round_trips")
sni = load_snippet("security/tls_sni_alpn")


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory) -> dict:
    return verify.cases(tmp_path_factory.mktemp("certs"))


@pytest.mark.parametrize(
    ("case", "code", "message", "server"),
    [
        ("unknown CA", 20, "unable to get local issuer certificate", "TLSV1_ALERT_UNKNOWN_CA"),
        (
            "unknown CA, its root sent",
            19,
            "self-signed certificate in certificate chain",
            "TLSV1_ALERT_UNKNOWN_CA",
        ),
        (
            "host name mismatch",
            62,
            "Hostname mismatch, certificate is not valid for 'api.test'.",
            "SSLV3_ALERT_BAD_CERTIFICATE",
        ),
        ("expired", 10, "certificate has expired", "SSLV3_ALERT_CERTIFICATE_EXPIRED"),
        ("not yet valid", 9, "certificate is not yet valid", "SSLV3_ALERT_BAD_CERTIFICATE"),
        (
            "missing intermediate",
            20,
            "unable to get local issuer certificate",
            "TLSV1_ALERT_UNKNOWN_CA",
        ),
    ],
)
def test_each_failure_has_its_own_verify_code_and_the_server_gets_an_alert(
    outcomes, case, code, message, server
):
    out = outcomes[case]
    assert not out.ok
    assert (out.code, out.message) == (code, message)
    assert out.client.startswith("[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed")
    assert server in out.server


@pytest.mark.parametrize("control", ["control: right CA, right name", "control: intermediate sent"])
def test_controls_verify_and_exchange_data(outcomes, control):
    """The controls: same client, same CA; the right chain and name succeed, so each
    failure above is the certificate's fault, not the setup's."""
    assert outcomes[control].ok
    assert outcomes[control].client == "TLSv1.3, pong"
    assert outcomes[control].server == "handshake completed"


def test_break_it_connecting_by_ip_address_is_a_mismatch_too(tmp_path: Path):
    c = verify.certificates(tmp_path)
    server, client = verify.server_context(c["good"], tmp_path), verify.client_context(c["ca"])
    out = verify.attempt(server, client, "127.0.0.1")
    assert (out.code, out.message) == (
        64,
        "IP address mismatch, certificate is not valid for '127.0.0.1'.",
    )


def test_tls_server_answers_bad_input_with_an_error_and_keeps_serving(tmp_path: Path):
    """Plaintext HTTP, random bytes, a record longer than TLS allows and a silent client:
    each ends that connection with OpenSSL's reason; a verified client is served after."""
    c = verify.certificates(tmp_path)
    ctx = verify.server_context(c["good"], tmp_path)
    sent = {
        "http": b"GET / HTTP/1.1\r\nHost: app.test\r\n\r\n",
        "garbage": bytes(range(256)),
        "oversized": b"\x16\x03\x01\xff\xff" + bytes(70_000),  # RFC 8446 §5.1: at most 2^14+256
        "silent": b"",
    }
    with verify.tls_server(ctx, timeout=0.5) as (port, errors):
        replies = {}
        for name, data in sent.items():
            with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
                raw.sendall(data)
                try:
                    replies[name] = raw.recv(64)
                except ConnectionResetError:
                    replies[name] = b"reset"
        good = verify.connect(port, verify.client_context(c["ca"]), "app.test")
    assert good.ok, good
    assert "HTTP_REQUEST" in errors[0] and "WRONG_VERSION_NUMBER" in errors[1]
    assert "PACKET_LENGTH_TOO_LONG" in errors[2]
    assert replies["oversized"][:1] == b"\x15"  # an alert record: record_overflow (22)
    assert replies["oversized"][-1] == 22
    assert "timed out" in errors[3] and replies["silent"] == b""


ROUND_TRIPS = trips.compare()


@pytest.mark.parametrize(
    ("name", "version", "reused", "waited"),
    [
        ("TLS 1.2 full", "TLSv1.2", False, 2),  # RFC 5246 §7.3, Figure 1
        ("TLS 1.2 resumed", "TLSv1.2", True, 1),  # RFC 5246 §7.3, Figure 2
        ("TLS 1.2, session offered to a new server context", "TLSv1.2", False, 2),
        ("TLS 1.3 full", "TLSv1.3", False, 1),  # RFC 8446 §2, Figure 1
        ("TLS 1.3 resumed", "TLSv1.3", True, 1),  # RFC 8446 §2.2 (no 0-RTT in Python)
        ("TLS 1.3, session offered to a new server context", "TLSv1.3", False, 1),
    ],
)
def test_round_trips_before_the_first_application_byte(name, version, reused, waited):
    hs = ROUND_TRIPS[name]
    assert (hs.version, hs.resumed, hs.round_trips) == (version, reused, waited)


def test_the_flights_are_the_rfc_figures():
    full12 = [names for _, names in ROUND_TRIPS["TLS 1.2 full"].flights]
    assert full12[1] == ["ServerHello", "Certificate", "ServerKeyExchange", "ServerHelloDone"]
    assert full12[2][:2] == ["ClientKeyExchange", "ChangeCipherSpec"]
    resumed12 = [names for _, names in ROUND_TRIPS["TLS 1.2 resumed"].flights]
    assert "Certificate" not in resumed12[1]  # abbreviated: no certificate, no key exchange
    # TLS 1.3: everything after ServerHello is encrypted; the server's first flight holds
    # EncryptedExtensions, Certificate, CertificateVerify, Finished (4 records, OpenSSL)
    # on a full handshake and EncryptedExtensions, Finished (2) on a resumed one.
    full13 = ROUND_TRIPS["TLS 1.3 full"].flights[1][1]
    resumed13 = ROUND_TRIPS["TLS 1.3 resumed"].flights[1][1]
    assert full13[0] == "ServerHello" and full13.count("app_data*") == 4
    assert resumed13[0] == "ServerHello" and resumed13.count("app_data*") == 2
    assert ROUND_TRIPS["TLS 1.3, session offered to a new server context"].flights[1][1] == full13


def test_a_session_from_another_client_context_is_refused_by_python():
    """CPython checks a session belongs to the context the socket was made from."""
    ca = trustme.CA()
    server, client = trips.contexts(ca, ssl.TLSVersion.TLSv1_2)
    _, session = trips.run_once(server, client)
    _, other = trips.contexts(ca, ssl.TLSVersion.TLSv1_2)
    with pytest.raises(ValueError, match="different SSLContext"):
        trips.run_once(server, other, session)


def test_records_parser_survives_truncated_and_odd_input():
    assert trips.records(b"", False) == []
    assert trips.records(b"\x16\x03", False) == []  # a header cut short
    assert trips.records(b"\x16\x03\x01\x00\x04\x01\x00", False) == []  # body cut short
    assert trips.records(b"\x16\x03\x01\x00\x04\x01\x00\x00\x00", False) == ["ClientHello"]
    assert trips.records(b"\x17\x03\x03\x00\x00", False) == ["app_data*"]
    assert trips.records(b"\x63\x03\x03\x00\x00", False) == ["?*"]


SNI_ROWS = sni.demo()


def test_sni_picks_the_certificate_and_alpn_the_servers_preference():
    got = {asked: (seen, result) for asked, seen, result in SNI_ROWS}
    assert got["SNI app.test, offers ['http/1.1']"] == (
        "server saw 'app.test'",
        "certificate for ['app.test'], ALPN 'http/1.1'",
    )
    assert got["SNI api.test, offers ['http/1.1', 'h2']"][1] == (
        "certificate for ['api.test'], ALPN 'h2'"  # the server's preference, not the client's
    )
    # an unknown name gets the default certificate, which the client refuses
    assert got["SNI other.test, offers ['h2']"][1] == (
        "refused: Hostname mismatch, certificate is not valid for 'other.test'."
    )
    # no common protocol: a Python server (CPython's ALPN callback returns
    # SSL_TLSEXT_ERR_NOACK, not OpenSSL's default) completes without ALPN, no alert
    assert got["SNI api.test, offers ['spdy/3']"][1].endswith("ALPN None")


def test_alpn_comes_from_the_context_the_sni_callback_swapped_in():
    """The counterfactual for "every context needs the list": ALPN on the default only."""
    ca, seen = trustme.CA(), []
    server = sni.sni_server_context(ca, ["app.test", "api.test"], [], seen)
    server.set_alpn_protocols(["h2"])  # the default (app.test) context only
    assert sni.connect(server, ca, "app.test", ["h2"]).endswith("ALPN 'h2'")
    assert sni.connect(server, ca, "api.test", ["h2"]).endswith("ALPN None")


def test_tls13_tickets_are_a_server_flight_the_client_does_not_wait_for():
    """The note's reason for num_tickets = 0: with Python's default of 2 tickets, the
    server sends two more encrypted records after the client's Finished, where the relay
    may count them as a server flight before `ping`; the handshake before them is the
    same one round trip (the control: tickets off, one record after the Finished)."""
    ca = trustme.CA()
    seen = {}
    for tickets in (0, 2, 0, 2, 0, 2):  # interleaved; scheduling decides how they group
        server, client = trips.contexts(ca, ssl.TLSVersion.TLSv1_3)
        server.num_tickets = tickets
        hs, _ = trips.run_once(server, client)
        assert hs.flights[:2] == ROUND_TRIPS["TLS 1.3 full"].flights[:2]  # the 1 round trip
        after = [n for way, names in hs.flights[3:] if way == "S>C" for n in names]
        seen.setdefault(tickets, set()).add((len(after), hs.round_trips))
    assert seen[0] == {(1, 1)}  # pong only: one round trip
    assert {records for records, _ in seen[2]} == {3}  # two tickets and pong
    assert {trips_ for _, trips_ in seen[2]} <= {1, 2}  # a ticket flight before ping counts
