"""A caching proxy (docs/proxies/caching-proxy.md): real NGINX proxy_cache in front of an
origin that counts its requests. Every claim is a count at the origin or NGINX's own
$upstream_cache_status, and each comes with its control (a different key, a header that
stops storing, the default settings against use_stale)."""

from __future__ import annotations

import threading
import time

import pytest

from tests.conftest import load_snippet

cp = load_snippet("proxies/caching_proxy")


@pytest.fixture(scope="module")
def origin():
    with cp.Origin() as server:
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        try:
            yield server
        finally:
            server.gate.set()
            server.shutdown()


@pytest.fixture(scope="module")
def nginx(nginx_bin, origin):
    with cp.running_nginx(cp.CONF, ORIGIN=f"127.0.0.1:{origin.server_address[1]}") as address:
        yield address


@pytest.fixture(scope="module")
def rows(nginx, origin):
    return {(label, i): tuple(row) for i, (label, *row) in enumerate(cp.basics(nginx, origin))}


def by_label(rows, label):
    return [row for (name, _), row in sorted(rows.items(), key=lambda r: r[0][1]) if name == label]


def test_miss_then_hit_and_the_origin_saw_one_request(rows):
    (first,) = by_label(rows, "GET /page")
    (again,) = by_label(rows, "GET /page again")
    assert first == ("MISS", "/page version 1", 1)
    assert again == ("HIT", "/page version 1", 1)  # served by NGINX: the origin still at 1


def test_the_query_string_is_part_of_the_default_key(rows):
    """The control for the HIT above: one more character in the URL is a new entry."""
    (other,) = by_label(rows, "GET /page?utm=mail")
    assert other == ("MISS", "/page?utm=mail version 1", 1)


def test_a_key_without_the_query_string_answers_dogs_with_cats(rows):
    (cats,) = by_label(rows, "GET /by-path/search?q=cats")
    (dogs,) = by_label(rows, "GET /by-path/search?q=dogs")
    assert cats == ("MISS", "/by-path/search?q=cats version 1", 1)
    assert dogs == ("HIT", "/by-path/search?q=cats version 1", 0)  # never reached the origin


def test_vary_stores_one_variant_per_accept_language(rows):
    en = by_label(rows, "GET /vary, Accept-Language: en")
    de = by_label(rows, "GET /vary, Accept-Language: de")
    assert [tuple(r[:2]) for r in en] == [("MISS", "in en, version 1"), ("HIT", "in en, version 1")]
    assert [tuple(r[:2]) for r in de] == [("MISS", "in de, version 2"), ("HIT", "in de, version 2")]
    assert en[-1][2] == de[-1][2] == 2  # two variants, two origin requests, then hits


@pytest.mark.parametrize(
    "label",
    ["GET /vary-star", "GET /plain (no Cache-Control)", "GET /private", "GET /no-store"],
)
def test_responses_nginx_does_not_store_reach_the_origin_every_time(rows, label):
    assert [(status, seen) for status, _, seen in by_label(rows, label)] == [
        ("MISS", 1),
        ("MISS", 2),
    ]


def test_set_cookie_stops_storing_unless_ignored_and_then_bob_gets_alices_cookie(nginx, origin):
    leaks = {label: tuple(rest) for label, *rest in cp.shared_cache_leaks(nginx, origin)}
    assert leaks["bob: GET /login"] == ("MISS", "session=user2", 2)  # not stored: the control
    assert leaks["bob: GET /ignore-cookie/login"] == ("HIT", "session=user1", 1)  # the leak
    # RFC 9111 §3.5 forbids this reuse without public/s-maxage/must-revalidate; NGINX 1.22
    # does not look at Authorization: bob is served alice's page.
    assert leaks["bob: GET /account"] == ("HIT", "account page of Bearer alice", 1)
    # The fix on the NGINX side (proxy_cache_bypass + proxy_no_cache $http_authorization):
    # bob's request goes to the origin and he gets his own page.
    assert leaks["bob: GET /auth-safe/account"] == ("BYPASS", "account page of Bearer bob", 2)


def test_control_the_authorization_fix_still_caches_requests_without_it(nginx, origin):
    assert [cp.get(nginx, "/auth-safe/public")[0] for _ in range(2)] == ["MISS", "HIT"]
    assert origin.seen["/auth-safe/public"] == 1


def test_proxy_hide_header_stops_the_cookie_leak_and_takes_alices_cookie_too(
    nginx_bin, origin, tmp_path
):
    """The Check yourself answer, run: with Set-Cookie ignored AND hidden, nobody gets a
    cookie from the stored response, not even the user it was meant for."""
    hide = """location /hide-cookie/ {
            proxy_pass http://${ORIGIN};
            proxy_ignore_headers Set-Cookie;
            proxy_hide_header Set-Cookie;
        }
        location /ignore-cookie/ {"""
    conf = tmp_path / "cache.conf"
    conf.write_text(cp.CONF.read_text().replace("location /ignore-cookie/ {", hide, 1))
    with cp.running_nginx(conf, ORIGIN=f"127.0.0.1:{origin.server_address[1]}") as address:
        alice = cp.get(address, "/hide-cookie/login", Cookie="user=alice")
        bob = cp.get(address, "/hide-cookie/login", Cookie="user=bob")
        control = cp.get(address, "/ignore-cookie/h/login", Cookie="user=alice")
    assert (alice[0], bob[0]) == ("MISS", "HIT")  # stored and shared, as before
    assert "set-cookie" not in {k.lower() for k in alice[2]} | {k.lower() for k in bob[2]}
    assert control[2].get("Set-Cookie", "").startswith("session=")  # without the hide line


def test_no_cache_is_not_stored_either(nginx, origin):
    assert [cp.get(nginx, "/no-cache")[0] for _ in range(2)] == ["MISS", "MISS"]
    assert origin.seen["/no-cache"] == 2


@pytest.mark.parametrize(
    ("first", "second", "variants"),
    [
        ("en-US,en;q=0.9", "en-US, en;q=0.9", 1),  # spaces around commas: normalised
        ("en", "EN", 2),  # case: compared as sent
        ("de,en", "en,de", 2),  # order: compared as sent
    ],
)
def test_vary_values_lose_spaces_after_commas_and_nothing_else(
    nginx, origin, first, second, variants
):
    """RFC 9111 §4.1 allows normalising; for Accept-Language (and Accept-Charset,
    Accept-Encoding) NGINX 1.22 drops only spaces around commas."""
    target = f"/v{abs(hash(first + second))}/vary"
    for lang in (first, second, first, second):
        cp.get(nginx, target, Accept_Language=lang)
    assert origin.seen[target] == variants


def test_other_vary_headers_are_compared_byte_for_byte(nginx, origin):
    """ngx_http_file_cache_vary_header() normalises only Accept-Charset, Accept-Encoding
    and Accept-Language: for X-Flavor, "a,b" and "a, b" are two variants."""
    for flavor in ("a,b", "a, b", "a,b", "a, b"):
        cp.get(nginx, "/vary-flavor", X_Flavor=flavor)
    assert origin.seen["/vary-flavor"] == 2


def test_nginx_sends_no_age_header_on_a_hit(nginx, origin):
    """RFC 9111 §4 says a cache MUST generate Age on a response served from storage; the
    page says NGINX 1.22 does not. If a later NGINX does, this fails and the page is wrong."""
    cp.get(nginx, "/age-check/search")
    status, _, headers = cp.get(nginx, "/age-check/search")
    assert status == "HIT" and "age" not in {k.lower() for k in headers}


def test_control_an_age_the_origin_sends_is_passed_through_and_never_updated(nginx, origin):
    """The control for the test above: the client does see an Age header when there is
    one - the origin's, stored and replayed as it was (30), not NGINX's own."""
    statuses = []
    for _ in range(2):
        status, _, headers = cp.get(nginx, "/age-check/aged")
        statuses.append(status)
        assert {k.lower(): v for k, v in headers.items()}["age"] == "30"
    assert statuses == ["MISS", "HIT"]


def test_expired_after_max_age_then_hit_again(nginx, origin):
    """The HIT before expiry is the basics' /page; here only what expiry changes."""
    assert cp.get(nginx, "/expiry/news")[0] == "MISS"
    cp.wait_for_expiry(time.time())
    assert cp.get(nginx, "/expiry/news")[:2] == ("EXPIRED", "/expiry/news version 2")
    assert cp.get(nginx, "/expiry/news")[:2] == ("HIT", "/expiry/news version 2")
    assert origin.seen["/expiry/news"] == 2


def test_stampede_on_a_new_entry_proxy_cache_lock_vs_defaults(nginx, origin):
    """Counts, not timings: the origin holds the first answer until NGINX is working on
    every client's request. Without the lock all ten go to the origin (the control: they
    really were all inside NGINX at once); with it one goes, nine wait and get a HIT."""
    (n1, s1, next1), (n2, s2, next2) = (
        cp.stampede(nginx, origin, t) for t in ("/s4/new", "/lock/s5/new")
    )
    assert (n1, dict(s1)) == (cp.CLIENTS, {"MISS": cp.CLIENTS})
    assert (n2, dict(s2)) == (1, {"MISS": 1, "HIT": cp.CLIENTS - 1})
    assert next1 == next2 == "HIT"


def test_stampede_on_an_expired_entry_defaults_and_lock_vs_use_stale(nginx, origin):
    """Counts, not timings: the origin holds its answer until every client is answered or
    NGINX is working on each, so the number that reach it is exact."""
    targets = ("/s1/hot", "/lock/s2/hot", "/stale/s3/hot")
    for target in targets:
        assert cp.get(nginx, target)[0] == "MISS"
    cp.wait_for_expiry(time.time())
    (n1, s1, next1), (n2, s2, next2), (n3, s3, next3) = (
        cp.stampede(nginx, origin, t) for t in targets
    )
    assert (n1, dict(s1)) == (cp.CLIENTS, {"EXPIRED": cp.CLIENTS})  # the stampede
    assert (n2, dict(s2)) == (cp.CLIENTS, {"EXPIRED": cp.CLIENTS})  # lock: new elements only
    assert (n3, dict(s3)) == (1, {"STALE": 1, "UPDATING": cp.CLIENTS - 1})  # the fix
    assert next1 == next2 == next3 == "HIT"


def test_break_it_without_background_update_one_client_waits_for_the_origin(
    nginx_bin, origin, tmp_path
):
    """use_stale updating alone still sends one request, but the client that found the
    entry expired waits for the origin (EXPIRED, not STALE)."""
    conf = tmp_path / "cache.conf"
    conf.write_text(cp.CONF.read_text().replace("proxy_cache_background_update on;", ""))
    with cp.running_nginx(conf, ORIGIN=f"127.0.0.1:{origin.server_address[1]}") as address:
        assert cp.get(address, "/stale/b/hot")[0] == "MISS"
        cp.wait_for_expiry(time.time())
        arrived, statuses, then = cp.stampede(address, origin, "/stale/b/hot")
    assert arrived == 1
    assert dict(statuses) == {"EXPIRED": 1, "UPDATING": cp.CLIENTS - 1}
    assert then == "HIT"


def test_stale_while_revalidate_from_the_origin_does_what_use_stale_updating_does(nginx, origin):
    """Under location / (no use_stale, no background update) an origin that sends
    stale-while-revalidate gets one origin request; the first client still waits."""
    assert cp.get(nginx, "/swr/hot")[0] == "MISS"
    cp.wait_for_expiry(time.time())
    arrived, statuses, then = cp.stampede(nginx, origin, "/swr/hot")
    assert (arrived, dict(statuses)) == (1, {"EXPIRED": 1, "UPDATING": cp.CLIENTS - 1})
    assert then == "HIT"
