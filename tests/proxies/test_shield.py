"""The reverse proxy as a shield (docs/proxies/shield.md): real NGINX in front of a
synchronous one-worker app and a counting keep-alive app."""

from __future__ import annotations

import pytest

from tests.conftest import load_snippet

shield = load_snippet("proxies/shield_nginx")


@pytest.fixture(scope="module")
def world(nginx_bin):
    with shield.world() as started:
        yield started


def test_with_buffering_a_stalled_client_does_not_hold_the_worker(world):
    nginx, sync, _ = world
    got = shield.shield(nginx, sync, "buffered")
    assert got.pop("big_bytes") == shield.BIG, got  # the app sent all of it
    # Noise budget: the first small request waits for the app to send its 8 MiB into
    # NGINX's temp file: it was answered after 0.05-0.29 s over 10 runs at a load average
    # of 13.5 on 2 cores (the 10 requests together: 0.10-0.54 s); each may take 1 s, a
    # margin of over 3x. Without buffering it never comes, so the limit only bounds a wait.
    assert got == {"answered": 10, "finished": 1}, got
    # NGINX's stderr is read by a thread, so the warning it wrote may not be in nginx.log
    # yet when the requests are done (a hunt run with 4 workers saw exactly that): wait
    # for the line (5 s; TimeoutError with the whole log if it never comes).
    assert nginx.wait_for("buffered to a temporary file") == "buffered to a temporary file"


def test_without_buffering_one_stalled_client_holds_the_only_worker(world):
    """The control: the same app, client and response, only proxy_buffering differs."""
    nginx, sync, _ = world
    got = shield.shield(nginx, sync, "unbuffered")
    # the buffers between the app and the stalled client filled up before the 8 MiB did
    # (2.8-3.1 MiB had been sent here): the app's send() blocked with the rest
    assert 0 < got.pop("big_bytes") < shield.BIG, got
    assert got == {"answered": 0, "finished": 0}, got


def test_break_it_without_a_stalled_client_unbuffered_serves_everyone(world):
    """It is the stalled client that holds the worker, not proxy_buffering off itself."""
    nginx, sync, _ = world
    got = shield.shield(nginx, sync, "unbuffered", stalled=0)
    assert {k: got[k] for k in ("answered", "finished")} == {"answered": 10, "finished": 0}, got


def test_the_upstream_pool_reuses_one_connection_and_the_default_opens_one_per_request(world):
    nginx, _, app = world
    assert shield.connections_for(nginx, app, "pooled") <= 1  # 0: one idle from a test before
    assert shield.connections_for(nginx, app, "fresh") == 50


def test_the_round_trip_comparison_runs_and_is_not_asserted(world):
    """The page prints fresh / pooled as information only: on this busy 2-core machine the
    ratio of medians ranged 0.49-1.84 over 18 runs of 7 rounds x 100 requests at a load
    average of 14-14.5 (in two of them the pooled path was the slower), too wide for an
    assertion that cannot flake. The counts above are the asserted result."""
    nginx, _, _ = world
    medians = shield.latency_medians(nginx, rounds=2, n=5)
    assert all(len(m) == 2 for m in medians.values()) and shield.ratio(medians) > 0, medians
