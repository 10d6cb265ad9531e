"""TLS termination vs passthrough (docs/proxies/tls.md): real HAProxy, trustme certificates,
verification on everywhere."""

from __future__ import annotations

import ssl

import pytest

from tests.conftest import load_snippet

tls = load_snippet("proxies/tls_haproxy")


@pytest.fixture(scope="module")
def w(haproxy_bin):
    with tls.world() as world:
        yield world


def test_termination_hands_the_backend_plain_http(w):
    assert tls.through(tls.TERMINATE, w, "app.test") == "200 a.test over plain TCP"
    assert w["a"].first_bytes[-1] == b"GET /"


@pytest.mark.parametrize("name", ["a.test", "b.test"])
def test_passthrough_hands_the_backend_a_tls_record_routed_on_sni(w, name):
    """The control for termination: same client, same request, HAProxy in mode tcp."""
    backend = w["a"] if name == "a.test" else w["b"]
    other = w["b"] if name == "a.test" else w["a"]
    seen_by_other = len(other.first_bytes)
    assert tls.through(tls.PASSTHROUGH, w, name) == f"200 {name} over TLS"
    first = backend.first_bytes[-1]
    assert first[:2] == b"\x16\x03"  # handshake record, TLS legacy version 3.x
    assert len(other.first_bytes) == seen_by_other  # routed by SNI: the other saw nothing


def test_passthrough_with_an_unrouted_sni_gets_no_backend(w):
    """No backend at all, not a wrong one: a route to a would also fail the handshake (with
    SSLCertVerificationError, an SSLError), so the backends' counters are the evidence."""
    seen = {name: len(w[name].first_bytes) for name in ("a", "b")}
    with pytest.raises((ssl.SSLError, ConnectionError)):
        tls.through(tls.PASSTHROUGH, w, "c.test")
    # A backend records its first bytes on arrival, before it sends its certificate, so a
    # wrong route would have been counted by the time the client's handshake failed.
    assert {name: len(w[name].first_bytes) for name in ("a", "b")} == seen


def test_reencryption_reads_http_at_the_proxy_and_sends_tls_to_the_backend(w):
    assert tls.through(tls.REENCRYPT, w, "app.test") == "200 a.test over TLS"
    assert w["a"].first_bytes[-1][:2] == b"\x16\x03"
    assert "x-forwarded-for: 127.0.0.1" in w["a"].headers[-1].lower()  # L7 work was done


def test_break_it_haproxy_refuses_a_backend_its_ca_file_did_not_sign(w):
    """Verification is on: trusting the wrong CA turns the same request into a 503."""
    before = len(w["a"].headers)
    result = tls.through(tls.REENCRYPT, w, "app.test", ca_file="other-ca.pem")
    assert result.startswith("503 "), result
    assert len(w["a"].headers) == before  # no request reached the backend
