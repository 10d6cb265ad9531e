"""Metrics (docs/operations/metrics.md): RED metrics scraped by a real Prometheus, p99 across
instances from summed buckets vs the average of p99s, label cardinality counted, burn-rate
rules unit-tested by promtool, and the instrumented service's answers to bad input."""

from __future__ import annotations

import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from tests.conftest import load_snippet

red = load_snippet("operations/metrics_red")
card = load_snippet("operations/metrics_cardinality")
rules = load_snippet("operations/metrics_rules")


# --- p99 across instances: sum the buckets, never average the p99s.
def test_summed_buckets_find_the_fleets_p99_and_the_average_of_p99s_misses_it(
    prometheus_url, prometheus_targets
):
    r = red.run(prometheus_url, Path(prometheus_targets), {"a": 1500, "b": 1000})
    assert sum(r.requests.values()) >= 1000  # a p99 from enough samples (DESIGN.md §4.3)
    # histogram_quantile can only place a quantile in its bucket: the same bucket as the truth
    assert red.bucket_of(r.fleet_p99) == red.bucket_of(r.exact_p99), r
    # the average of the two p99s is neither, and is off by more than the bucket's width
    assert red.bucket_of(r.average_of_p99s) != red.bucket_of(r.exact_p99), r
    assert abs(r.average_of_p99s - r.exact_p99) > abs(r.fleet_p99 - r.exact_p99), r
    assert abs(r.average_of_p99s / r.fleet_p99 - 1) > 0.15, r  # the control's is < 0.05
    assert r.each_p99["a"] < r.exact_p99 < r.each_p99["b"], r
    # Errors: PromQL's ratio is the counted one
    assert r.errors["a"] == 0 < r.errors["b"]
    assert r.error_ratio == pytest.approx(sum(r.errors.values()) / sum(r.requests.values()))


def test_control_with_alike_instances_the_average_of_p99s_is_close(
    prometheus_url, prometheus_targets, monkeypatch
):
    """The average is wrong because the instances differ: two alike ones agree with it."""
    monkeypatch.setattr(red, "SLOW", red.FAST)
    r = red.run(prometheus_url, Path(prometheus_targets), {"a": 1500, "b": 1500})
    assert red.bucket_of(r.fleet_p99) == red.bucket_of(r.exact_p99), r
    # the same estimator (interpolation in the same buckets) both ways: they now agree
    assert abs(r.average_of_p99s / r.fleet_p99 - 1) < 0.05, r


def test_the_exposition_passes_promtools_lint_and_badly_named_metrics_do_not(promtool_bin):
    metrics = red.Metrics()
    metrics.observe("/work", 200, 0.012)
    good = red.generate_latest(metrics.registry)
    lint = subprocess.run([promtool_bin, "check", "metrics"], input=good, capture_output=True)
    assert lint.returncode == 0 and not lint.stdout + lint.stderr, lint
    bad = (  # a counter without _total, a duration in milliseconds
        b"# HELP requests Requests.\n# TYPE requests counter\nrequests 3\n"
        b"# HELP latency_milliseconds Latency.\n# TYPE latency_milliseconds gauge\n"
        b"latency_milliseconds 12\n"
    )
    lint = subprocess.run([promtool_bin, "check", "metrics"], input=bad, capture_output=True)
    said = (lint.stdout + lint.stderr).decode()
    assert lint.returncode != 0, said
    assert '"_total" suffix' in said and "base unit" in said, said


# --- The instrumented service meets bad input the way http.server does.
@pytest.fixture
def service():
    import random

    behaviour = red.Behaviour(**red.FAST, rng=random.Random(1))
    with red.instance("a", behaviour) as running:
        yield running


def ask(address: str, raw: bytes, timeout: float = 10) -> bytes:
    host, port = address.split(":")
    with socket.create_connection((host, int(port)), timeout=timeout) as sock:
        sock.sendall(raw)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
        return data


def test_malformed_oversized_and_unknown_requests_get_their_status(service):
    # http.server answers a request line it cannot parse as HTTP/0.9 would: an error page
    # with no status line (the page says so; the logs page's h11 services send a 400 line)
    garbled = ask(service.address, b"GET / HTTP/1.1 extra\r\n\r\n")
    assert b"Error code: 400" in garbled and not garbled.startswith(b"HTTP/")
    assert ask(service.address, b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\n\r\n").startswith(
        b"HTTP/1.1 414"
    )
    long_field = b"GET /work HTTP/1.1\r\nHost: x\r\nX: " + b"a" * 70_000 + b"\r\n\r\n"
    assert ask(service.address, long_field).startswith(b"HTTP/1.1 431")
    many = b"GET /work HTTP/1.1\r\nHost: x\r\n" + b"X: 1\r\n" * 101 + b"\r\n"
    assert ask(service.address, many).startswith(b"HTTP/1.1 431")
    unknown = ask(service.address, b"GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert unknown.startswith(b"HTTP/1.1 404")
    text = red.generate_latest(service.metrics.registry).decode()
    assert 'http_requests_total{code="404",route="other"} 1.0' in text  # one label value


def test_a_client_that_stops_sending_is_dropped_after_the_timeout(service):
    host, port = service.address.split(":")
    with socket.create_connection((host, int(port)), timeout=15) as sock:
        sock.sendall(b"GET /work HTTP/1.1\r\nHost:")  # and nothing more
        start = time.monotonic()
        assert sock.recv(1024) == b""  # closed, no answer
        waited = time.monotonic() - start
    assert 4 < waited < 12, waited  # the handler's 5 s timeout, not a hang
    assert ask(service.address, b"GET /work HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")


# --- Cardinality: series = label sets x series per label set.
def test_raw_paths_make_a_series_set_per_path_and_templates_a_fixed_few(
    prometheus_url, prometheus_targets
):
    paths = card.user_paths(1000, users=100_000)
    counts = {c.label: c for c in card.count_series(
        prometheus_url, Path(prometheus_targets), [card.route_template, card.raw_path], paths
    )}  # fmt: skip
    per_label_set = 15 + 2  # default buckets incl. +Inf, _sum, _count (no _created: disabled)
    routes = {card.route_template(p) for p in paths}  # 2, each with one status code
    raw = {card.raw_path(p) for p in paths}
    assert counts["route_template"].series == len(routes) * (per_label_set + 1)
    assert counts["raw_path"].series == len(raw) * (per_label_set + 1)
    assert counts["raw_path"].series > 100 * counts["route_template"].series


# --- Rules: promtool's rule engine on the synthetic series.
def test_the_multiwindow_alert_passes_its_unit_tests_and_one_window_fails_them(promtool_bin):
    checked, tested = rules.check_and_test(promtool_bin, rules.rules(rules.MULTIWINDOW))
    assert checked.passed and tested.passed, tested.output
    checked, tested = rules.check_and_test(promtool_bin, rules.rules(rules.ONE_WINDOW))
    assert checked.passed and not tested.passed  # the Break it: still paging at 130m
    assert "time: 2h10m" in tested.output, tested.output


def test_a_typo_in_a_range_fails_the_check_before_any_test(promtool_bin):
    typo = rules.rules(rules.MULTIWINDOW).replace("[5m]", "[5 m]", 1)
    checked, tested = rules.check_and_test(promtool_bin, typo)
    assert not checked.passed and "parse error" in checked.output


# The snippet's own test file up to its expectations: the same rules and input series.
RESOLVES = rules.TESTS[: rules.TESTS.index("    alert_rule_test:\n")] + "    alert_rule_test:\n"


@pytest.mark.parametrize(
    ("alert", "still_firing", "stopped"),
    [("MULTIWINDOW", "123m", "124m"), ("ONE_WINDOW", "162m", "163m")],
)
def test_when_each_alert_stops_after_the_errors_stop_at_120m(
    promtool_bin, alert, still_firing, stopped
):
    """The page's numbers: the last minute each alert fires and the first it does not."""
    firing = "[{exp_labels: {job: api, severity: page}}]"
    case = "      - {{eval_time: {}, alertname: ErrorBudgetBurn, exp_alerts: {}}}\n"
    cases = case.format(still_firing, firing) + case.format(stopped, "[]")
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "rules.yml").write_text(rules.rules(getattr(rules, alert)))
        Path(tmp, "tests.yml").write_text(RESOLVES + cases)
        outcome = rules.promtool(promtool_bin, "test", "rules", "tests.yml", cwd=Path(tmp))
    assert outcome.passed, outcome.output
