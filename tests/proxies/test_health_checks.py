"""Health checks and failover (docs/proxies/health-checks.md): real HAProxy 2.6 in front of
backends the tests break, kill and drain. Counts, not timings: every assertion is on what
the clients and the backends counted, each next to its control (the other backend section
of the same HAProxy, hit by the same failure)."""

from __future__ import annotations

from collections import Counter

import pytest

from tests.conftest import load_snippet

health = load_snippet("proxies/health_checks_haproxy")
failover = load_snippet("proxies/failover_haproxy")


# --- active and passive checks: one HAProxy for the module ----------------------------------


@pytest.fixture(scope="module")
def checks(haproxy_bin):
    with health.backends_and_haproxy() as (backends, haproxy):
        # in the snippet's order: passive first (`observed` must not see the active
        # experiment's failing health check)
        passive = health.passive_check_catches_what_the_health_check_misses(haproxy, backends)
        # Break it: wait for the passing health check to bring b2 back in `observed`
        haproxy.wait_for("observed", "b2", "UP", seconds=10)  # rise 30 at fastinter 100 ms
        again = health.in_order(haproxy, "observed")
        state = haproxy.states()[("observed", "b2")]
        active = health.active_check_takes_it_out_and_brings_it_back(haproxy, backends)
        yield {"active": active, "passive": passive, "again": again, "again_state": state}


def b2_stopped(order: list[str]) -> bool:
    """None of the last 6 answers came from b2: round robin over three servers gives b2 2 of
    any 6 in a row (10 of 30 in `checked`, where only a passive check could take it out)."""
    return len(order) == 30 and not any(answer.startswith("b2") for answer in order[-6:])


def test_an_active_check_takes_a_failing_backend_out_and_the_control_keeps_it(checks):
    checked, unchecked = (
        checks["active"]["broken"]["checked"],
        checks["active"]["broken"]["unchecked"],
    )
    assert health.failed(checked) == 0 and not any(a.startswith("b2") for a in checked), checked
    assert checked == {"b1 200": 15, "b3 200": 15}, checked
    # the control: the same b2, no `check` on its server lines: a third of requests fail
    assert unchecked == {"b1 200": 10, "b2 500": 10, "b3 200": 10}, unchecked


def test_the_active_check_brings_the_backend_back_after_rise(checks):
    assert checks["active"]["back"] == {"b1 200": 10, "b2 200": 10, "b3 200": 10}


def test_a_health_check_that_passes_cannot_see_a_backend_failing_its_requests(checks):
    passive = checks["passive"]
    assert passive["answers"]["checked"]["b2 500"] == 10, passive
    assert passive["checks"] >= 3 and passive["checked_b2"] == "UP", passive


def test_a_passive_check_takes_it_out_after_error_limit_consecutive_errors(checks):
    observed = checks["passive"]["answers"]["observed"]
    # error-limit 3, on-error mark-down: at least 3 requests failed (3 in most runs, up to
    # 6 in a few: the count of consecutive errors started again in between), all on b2 ...
    assert observed["b2 500"] == health.failed(observed) >= 3, observed
    # ... and then b2 got no more: not one of the last 6 GETs (without the passive check: 2)
    assert b2_stopped(checks["passive"]["observed_order"]), checks["passive"]
    # Noise budget: the state is read 0.22-0.33 s after the 30 GETs began (6 runs at a load
    # average of 15 on 2 cores); b2 comes back UP only after `rise 30` passed checks 100 ms
    # apart, about 3 s after the mark-down, so reading DOWN has a margin of ~10x.
    assert checks["passive"]["observed_b2"] == "DOWN", checks["passive"]


def test_break_it_the_passing_health_check_brings_it_back_and_it_fails_again(checks):
    """A passive check only takes a server out; the active check (which passes) puts it
    back after `rise`, and the next 3 requests to it fail again: the server flaps."""
    again = Counter(checks["again"])
    assert again["b2 500"] == health.failed(again) >= 3, again
    assert b2_stopped(checks["again"]), checks["again"]  # taken out again
    assert checks["again_state"].startswith("DOWN"), checks["again_state"]


# --- a backend killed under load, retries, draining: one HAProxy for the module ---------------


@pytest.fixture(scope="module")
def kills(haproxy_bin):
    with failover.backends_and_haproxy() as (backends, haproxy):
        gets = [("GET", "/noretry/work"), ("GET", "/retry/work")]
        posts = [("POST", "/retry/pay"), ("POST", "/retryall/pay")]
        yield {
            "gets": failover.kill_under_load(haproxy, backends, gets),
            "posts": failover.kill_under_load(haproxy, backends, posts),
            "drained": failover.kill_under_load(
                haproxy, backends, [("POST", "/retry/pay")], drain="retry", after=50
            ),
            # the control: the same waits, without the drain command
            "undrained": failover.kill_under_load(
                haproxy, backends, [("POST", "/retry/pay")], "retry", after=50, command=False
            ),
        }


def test_without_retries_clients_see_the_kill_until_the_checks_mark_it_down(kills):
    noretry, retry = kills["gets"]["noretry"], kills["gets"]["retry"]
    assert noretry["failed"] >= 1, noretry  # 503s (refused) and the request in flight
    assert "503" in noretry["kinds"], noretry  # HAProxy's answer to a refused connect
    assert retry["failed"] == 0, retry  # the same kill, the same moment, other section
    # the GET held in flight at b2 was sent again elsewhere: it reached two backends
    assert retry["twice"] >= 1 and noretry["twice"] == 0, kills["gets"]


def test_after_the_check_window_nothing_fails_with_or_without_retries(kills):
    for run in kills.values():
        for section, counts in run.items():
            assert counts["failed_after"] == 0 and counts["sent_after"] >= 50, (section, counts)


def test_a_post_in_flight_is_not_replayed_unless_haproxy_is_told_to(kills):
    retry, retryall = kills["posts"]["retry"], kills["posts"]["retryall"]
    # `disable-l7-retry unless METH_GET` (GET or HEAD): the POST fails, reaches b2 once
    assert retry["failed"] >= 1 and retry["twice"] == 0, retry
    # a request that was not the first on its client connection is closed without a
    # response (RemoteDisconnected); the first one on a connection gets a 502
    assert retry["kinds"] <= {"RemoteDisconnected", "502"}, retry
    # Break it (no method rule): retry-on empty-response replays the POST; the client
    # is told it worked, and the POST reached two backends
    assert retryall["failed"] == 0 and retryall["twice"] >= 1, retryall


def test_draining_first_removes_the_backend_with_zero_failed_requests(kills):
    drained, undrained = kills["drained"]["retry"], kills["undrained"]["retry"]
    # drained: HAProxy shows DRAIN, and b2 got none of the 60 answers before the kill ...
    assert drained["status"] == "DRAIN" and drained["b2_drained"] == 0, drained
    # ... while without the drain command (the same waits) round robin still sends it its
    # share: 20-23 of 60 over 9 runs at a load average of 10-13 on 2 cores; 5 is a count
    # margin of 4x (round robin over three, whatever order the answers come in)
    assert undrained["status"] == "UP" and undrained["b2_drained"] >= 5, undrained
    assert drained["failed"] == 0 and drained["twice"] == 0, drained
    assert drained["sent"] >= 50, drained
    # the control is the same section under the same POST load, killed without draining
    assert kills["posts"]["retry"]["failed"] >= 1, kills["posts"]
