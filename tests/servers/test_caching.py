"""Caching (docs/servers/caching.md): HTTP cache semantics on a moved-by-hand clock, an
LRU + TTL cache, a stampede and single-flight, and Redis shared between processes."""

from __future__ import annotations

import multiprocessing
import subprocess
import sys
import threading
import uuid

import pytest

from tests.conftest import ROOT, load_snippet

cache_headers = load_snippet("servers/cache_headers")
cache_lru = load_snippet("servers/cache_lru")
cache_stampede = load_snippet("servers/cache_stampede")
cache_redis = load_snippet("servers/cache_redis")


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def origin(monkeypatch):
    monkeypatch.setattr(cache_headers, "ORIGIN", dict(cache_headers.ORIGIN))  # a private copy
    with cache_headers.origin_server() as (address, hits):
        clock = Clock()
        client = cache_headers.CachingClient(address, clock)
        yield client, clock, hits
        client.background.shutdown(wait=True)


def test_directives_parse_and_a_malformed_max_age_counts_as_stale():
    assert cache_headers.directives('max-age=60, stale-while-revalidate="30", No-Cache') == {
        "max-age": 60,
        "stale-while-revalidate": 30,
        "no-cache": None,
    }
    assert cache_headers.directives("max-age=soon")["max-age"] == 0
    assert cache_headers.directives("") == {}


def test_a_repeated_max_age_keeps_its_first_value_per_rfc_9111():
    # RFC 9111 §4.2.1: with several max-age directives, use the first (or treat as stale)
    assert cache_headers.directives("max-age=0, max-age=3600")["max-age"] == 0
    assert cache_headers.directives("max-age=60, Max-Age=0")["max-age"] == 60


def test_a_quoted_value_may_hold_commas_and_is_one_directive():
    # RFC 9111 §5.2.2.7: private="field, field" lists header names; the commas inside the
    # quotes do not start new directives. Splitting on every comma read max-age=5 here.
    parsed = cache_headers.directives('private="Set-Cookie, max-age=5", max-age=60, no-cache')
    assert parsed["max-age"] == 60 and "no-cache" in parsed and len(parsed) == 3


def test_fresh_responses_are_served_without_asking_the_origin(origin):
    client, clock, hits = origin
    assert client.get("/news") == ("miss: origin sent 200", b"news v1")
    for t in (1, 30, 59.9):
        clock.now = t
        assert client.get("/news")[0].startswith("fresh hit")
    assert sum(hits.values()) == 1


def test_stale_while_revalidate_serves_at_once_and_revalidates_in_the_background(
    origin, monkeypatch
):
    client, clock, hits = origin
    client.get("/news")
    gate = threading.Event()
    real_fetch = client.fetch
    monkeypatch.setattr(client, "fetch", lambda *a: (gate.wait(5), real_fetch(*a))[1])
    clock.now = 75  # stale by 15 s, within the 30 s of stale-while-revalidate
    outcome, body = client.get("/news")  # returns while the origin request is held back
    assert outcome.startswith("stale") and body == b"news v1"
    assert hits["/news 304"] == 0  # the revalidation has not happened yet
    gate.set()
    client.settle()
    assert hits["/news 304"] == 1
    clock.now = 80
    assert client.get("/news")[0] == "fresh hit (age 5 s)"  # the revalidation restarted it


def test_stale_hits_during_one_revalidation_start_no_other(origin, monkeypatch):
    client, clock, hits = origin
    client.get("/news")
    gate = threading.Event()
    real_fetch = client.fetch
    monkeypatch.setattr(client, "fetch", lambda *a: (gate.wait(5), real_fetch(*a))[1])
    outcomes = []
    for t in (75, 76, 77, 78):  # four stale hits while the first revalidation is held back
        clock.now = t
        outcomes.append(client.get("/news")[0])
    gate.set()
    client.settle()
    assert outcomes[0].endswith("served, revalidating")
    assert all(o.endswith("already revalidating") for o in outcomes[1:]), outcomes
    assert hits["/news 304"] == 1  # one background fetch, not one per stale hit


def test_beyond_stale_while_revalidate_the_client_waits_for_revalidation(origin):
    client, clock, hits = origin
    client.get("/news")
    clock.now = 91  # 60 + 30 have passed
    assert client.get("/news") == ("revalidated: origin sent 304", b"news v1")
    cache_headers.ORIGIN["/news"] = ("max-age=60, stale-while-revalidate=30", "news v2")
    clock.now = 200
    assert client.get("/news") == ("revalidated: origin sent 200", b"news v2")


def test_no_store_is_never_stored_and_no_cache_always_revalidates(origin):
    client, clock, hits = origin
    for _ in range(3):
        assert client.get("/account")[0] == "miss: origin sent 200"
        assert client.get("/price")[1] == b"price v1"
    assert "/account" not in client.store
    assert hits["/account 200"] == 3 and hits["/price 200"] == 1 and hits["/price 304"] == 2


def test_a_malformed_max_age_is_never_served_fresh(origin):
    client, clock, hits = origin
    cache_headers.ORIGIN["/news"] = ("max-age=soon", "news v1")
    client.get("/news")
    assert client.get("/news")[0] == "revalidated: origin sent 304"


def test_lru_evicts_the_least_recently_used_and_ttl_expires():
    clock = Clock()
    cache = cache_lru.LRUCache(capacity=2, ttl=10, clock=clock)
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1  # "a" is now more recent than "b"
    cache.put("c", 3)  # evicts "b"
    assert cache.get("b") is None and cache.get("a") == 1 and cache.get("c") == 3
    clock.now = 10
    assert cache.get("a") is None and cache.expirations == 1
    assert (cache.hits, cache.misses, cache.evictions) == (3, 2, 1)


def test_a_bigger_cache_and_a_longer_ttl_mean_fewer_origin_calls():
    small, big = cache_lru.run(10, 3600), cache_lru.run(1000, 3600)
    assert big["origin calls"] * 5 < small["origin calls"]
    assert cache_lru.run(100, 1)["origin calls"] > cache_lru.run(100, 3600)["origin calls"]
    assert cache_lru.run(100, 5) == cache_lru.run(100, 5)  # seeded: the same every run


def test_a_stampede_hits_the_origin_many_times_and_single_flight_once():
    # Noise budget: 50 of 50 in all of 10 runs (4 with two busy-loop processes): the barrier
    # releases all threads well within the origin's 50 ms.
    assert cache_stampede.stampede(coalesce=False) > 10  # 50 in theory
    assert cache_stampede.stampede(coalesce=True) == 1


def test_single_flight_shares_errors_and_does_not_cache_them():
    flight = cache_stampede.SingleFlight()
    with pytest.raises(ZeroDivisionError):
        flight.do("k", lambda: 1 / 0)
    assert flight.do("k", lambda: "ok") == "ok" and flight.in_flight == {}


def test_redis_is_one_cache_for_every_process(redis_url):
    prefix = f"test:{uuid.uuid4().hex}:"
    assert cache_redis.origin_calls_with(cache_redis.app_with_local_cache) == 6
    assert cache_redis.origin_calls_with(cache_redis.app_with_redis, redis_url, prefix) == 3
    import redis

    with redis.Redis.from_url(redis_url, socket_timeout=5) as r:
        assert 0 < r.ttl(prefix + "user:1") <= 60
        assert r.delete(*r.keys(prefix + "*")) == 3


def test_cache_redis_without_redis_url_says_how_to_get_one():
    env = {"PATH": "/usr/bin:/bin"}
    run = subprocess.run(
        [sys.executable, "snippets/servers/cache_redis.py"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert run.returncode != 0 and "REDIS_URL" in run.stderr


def hang(calls) -> None:
    threading.Event().wait(60)  # an app process stuck on something that never answers


def test_an_app_process_that_hangs_is_stopped_not_left_running():
    before = set(multiprocessing.active_children())
    with pytest.raises(RuntimeError, match="did not finish"):
        cache_redis.origin_calls_with(hang, timeout=0.2)
    assert set(multiprocessing.active_children()) - before == set()  # stopped and reaped


def test_without_redis_url_the_snippet_says_how_to_get_a_redis(monkeypatch):
    """The message names the command that starts a Redis for the learner, not a page."""
    monkeypatch.delenv("REDIS_URL", raising=False)
    with pytest.raises(SystemExit) as exit_:
        cache_redis.redis_url()
    assert "make run S=servers/cache_redis" in str(exit_.value.code), exit_.value.code
