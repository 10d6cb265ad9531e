"""Measuring latency honestly (docs/operations/latency.md): a real stalling TCP server on
loopback measured by a closed-loop generator and by a fixed schedule timed from each
request's intended send time, into HDR histograms; HdrHistogram's correction; averaged vs
merged percentiles (a seeded model); SLO burn-rate alerts on a seeded series (a model)."""

from __future__ import annotations

import random
import socket
import statistics
import threading
import time

import pytest

from tests.conftest import load_snippet, trickle

omission = load_snippet("operations/latency_omission")
merge = load_snippet("operations/latency_merge")
burn = load_snippet("operations/latency_burn")

STALL = omission.STALL


def p(h, q: float) -> float:
    """Percentile q of an HDR histogram, in ms (q = 100: the max)."""
    return omission.percentiles_ms(h)[q]


# --- Coordinated omission: measured, a real server on 127.0.0.1.
@pytest.fixture(scope="module")
def measured() -> list:
    """Three repeats of both generators against a fresh server each, interleaved: the
    closed loop first in the first and third, the schedule first in the second (about 2 s
    of runs each)."""
    return [omission.measure(closed_first=i != 1) for i in range(3)]


def least_disturbed(runs: list, what: str, q: float) -> float:
    """The lowest of the repeats' percentile q: the repeats are the same work, and a stall of
    the machine can only make a request later, so the lowest is the one it touched least."""
    return min(p(getattr(m, what), q) for m in runs)


def test_the_schedule_timed_from_due_sees_the_stalls_the_closed_loop_hides(measured):
    # The arithmetic: the server is frozen 10% of the time (0.1 s in every 1 s) and each
    # generator runs one whole period, so 10% of the schedule's 2,000 requests (200) are
    # due during a freeze and wait for its end: one due when a freeze has x s to go waits
    # >= x. The slowest 1% (20) are those due in its first tenth: p99 >= 0.9 x 100 ms = 90
    # ms, whatever the machine does (a stall of the machine only adds). The closed loop
    # sends one request into the freeze and ~10,000 outside it: its p99 is a round trip.
    # Noise budget: with a 50 ms freeze in every 0.5 s, over 18 runs at load average 2.5-8
    # (other helpers' test suites on the 2-core machine) the closed loop's p99 was 0.07-1.7
    # ms, and the schedule's p99 from due 45-220 ms (a generator kept off the CPU is late
    # itself, which only adds): single-run ratios 26x-1,012x. At load average 25 (four
    # workers of this module beside other suites) one run's closed-loop p99 reached 12.7
    # ms: a machine that busy delays 1% of a closed loop's requests by a timeslice. Hence
    # the freeze of 100 ms (the margin's floor doubled, 90 ms from due) and the least
    # disturbed of 3 repeats for the closed loop; the margin 10x is the page's claim. With
    # it, over 6 runs at load average 9-14: closed 0.09-2.7 ms, from due 90.9-282 ms,
    # single-run ratios 36x-978x; the module passed 3 of 3 times with 4 workers at 13-18.
    closed = least_disturbed(measured, "closed", 99.0)
    due = least_disturbed(measured, "from_due", 99.0)
    assert due > 10 * closed, (due, closed)
    for m in measured:
        # Arithmetic, not noise: 1% of the schedule's requests waited for >= 90% of a freeze
        # (0.8: HDR's 0.1% rounding and a run that starts inside a freeze, with room).
        assert p(m.from_due, 99.0) >= 0.8 * STALL * 1e3, p(m.from_due, 99.0)
        # Sanity: the schedule sent exactly its 2,000 requests; the closed loop sent more.
        assert m.from_due.get_total_count() == omission.RATE * omission.DURATION
        assert m.closed.get_total_count() > m.from_due.get_total_count()


def test_each_generator_meets_exactly_one_freeze(measured):
    # Each starts outside a freeze and runs one period, so it meets one whole freeze,
    # never a part of one at each end: the closed loop sends exactly one request into it (and
    # waits it out); the schedule has 10% of its requests due in it. Noise budget: a stall
    # of the machine of 80 ms could add a second slow closed-loop sample in one run, so
    # "exactly one" is asserted on the least disturbed run and "at least one" on each.
    slow = [sum(x >= 0.8 * STALL for x in m.closed_latencies) for m in measured]
    assert min(slow) == 1 and all(n >= 1 for n in slow), slow


def test_the_same_schedule_timed_from_the_actual_send_hides_them_again(measured):
    # The counterfactual in the same runs: the schedule's samples timed from when each was
    # really sent. While the one connection waits out a freeze, the requests due meanwhile
    # are not sent; afterwards each goes out late and is answered at once, so only one per
    # freeze is slow, as in the closed loop. Noise budget: from send, p99 0.14-3.5 ms over
    # 15 runs of the 50 ms freeze at load average 2.5-8 (from due 45-220 ms: the lowest
    # single-run ratio 24x); the freeze is now 100 ms (>= 90 ms from due, by arithmetic):
    # from send 0.12-3.0 ms over 6 runs at load average 9-14. The margin 5x is taken on
    # the least disturbed of 3 repeats.
    sent = least_disturbed(measured, "from_sent", 99.0)
    due = least_disturbed(measured, "from_due", 99.0)
    assert due > 5 * sent, (due, sent)


def test_hdr_correction_brings_the_closed_loop_p99_back_into_the_stall(measured):
    # The correction also records v - interval, v - 2 x interval, ... while that is at
    # least the interval: the one ~100 ms freeze sample becomes ~100 ms / (its median gap,
    # ~0.04-0.1 ms) values spread evenly over (0, 100 ms]: as many as the requests the loop
    # would have sent during the freeze at its own pace, about a tenth of all it would have
    # sent, so the corrected p99 lands near 0.9 x 100 ms as the schedule's does. (Its p90
    # is not asserted: a few ms on a quiet machine, but 35 ms in one run of 6 workers on
    # 2 cores, most likely because the loop's hiccups (corrected too) and a median gap much
    # shorter than its mean gap (the interval was 0.039 ms) credited the freeze with more
    # than a tenth of the values.) Arithmetic on
    # recorded numbers (a busy machine's hiccups are corrected too, which can only raise
    # it): with the 50 ms freeze, 44.7-48.8 ms over 14 runs at load average 2.5-8; with
    # the 100 ms one, 88.8-108.5 ms over 6 runs at load average 9-14. Each run
    # asserts >= 0.5 x the freeze; against the raw p99, the least disturbed repeats (the
    # raw p99 reached 12.7 ms, the corrected 80 ms, in one run at load average 25).
    for m in measured:
        assert p(m.corrected, 99.0) >= 0.5 * STALL * 1e3, p(m.corrected, 99.0)
        assert m.corrected.get_total_count() > m.closed.get_total_count()
    corrected = least_disturbed(measured, "corrected", 99.0)
    raw = least_disturbed(measured, "closed", 99.0)
    assert corrected > 10 * raw, (corrected, raw)


def test_break_it_a_freeze_twice_as_long_reaches_the_p90_and_the_closed_loop_never_sees_it():
    # Break it (the page): STALL = 0.2 s in every 1 s, 20% of the time. Now 20% of the
    # schedule's requests are due in the freeze, so its p90 is the median of their waits,
    # ~0.5 x 200 ms, and its p99 ~0.95 x 200 ms; noise only adds to those (lower bounds
    # 0.35 and 0.8 of the freeze). The closed loop still sends one request into it among
    # ~10,000: its p99 stays a round trip. Noise budget: with 0.1 s in every 0.5 s (the
    # same 20%), over 6 runs at load average 3.7-8, p90 from due was 0.54-1.98 x 100 ms,
    # p99 0.95-2.45 x 100 ms, and the closed loop's p99 0.08-0.43 ms; its bound here, 10%
    # of the freeze = 20 ms, is above the 12.7 ms seen at load average 25 (least disturbed
    # of 2). At this scale, over 3 runs at load average 9-14: p90 111-185 ms, p99 191-211
    # ms, closed-loop p99 1.6-3.0 ms. Three repeats, interleaved, as the main runs.
    stall = 2 * STALL
    runs = [omission.measure(stall=stall, closed_first=i != 1) for i in range(3)]
    for m in runs:
        assert p(m.from_due, 90.0) >= 0.35 * stall * 1e3, p(m.from_due, 90.0)
        assert p(m.from_due, 99.0) >= 0.8 * stall * 1e3, p(m.from_due, 99.0)
    assert least_disturbed(runs, "closed", 99.0) < 0.1 * stall * 1e3, runs


def test_record_corrected_value_fills_in_the_missing_samples_exactly():
    # The correction itself, on numbers (no timing): 99 answers of 1 ms and one of 100 ms
    # at an expected interval of 1 ms: the 100 ms value brings 99 more, 99 ms down to 1 ms.
    raw = omission.histogram([0.001] * 99 + [0.1])
    fixed = omission.histogram([0.001] * 99 + [0.1], expected_interval=0.001)
    assert raw.get_total_count() == 100 and fixed.get_total_count() == 199
    assert omission.percentiles_ms(raw)[99.0] == pytest.approx(1.0, rel=0.01)
    assert omission.percentiles_ms(fixed)[90.0] == pytest.approx(80.0, rel=0.02)
    # Values at or below the interval are recorded once, as record_value would.
    same = omission.histogram([0.001] * 100, expected_interval=0.002)
    assert same.get_total_count() == 100


def test_the_correction_follows_hdrhistogram_not_the_python_ports_variant():
    # HdrHistogram's README: the added values decrease "down to the last value that would
    # still be higher than expectedIntervalBetweenValueSamples"; Java's loop runs while
    # missing >= interval. 1.5 ms at a 1 ms interval adds nothing; 2.5 ms adds 1.5 ms.
    ours = omission.histogram([0.0015, 0.0025], expected_interval=0.001)
    assert ours.get_total_count() == 3
    # The control: the Python port's record_corrected_value keeps going below the
    # interval (1.5 -> 0.5 ms; 2.5 -> 1.5 -> 0.5 ms), so it records 5 values.
    port = omission.HdrHistogram(1, 60_000_000, 3)
    for us in (1500, 2500):
        port.record_corrected_value(us, 1000)
    assert port.get_total_count() == 5


def test_values_outside_the_histogram_are_an_error_not_a_silent_drop():
    # hdrh's record_value returns False for a value beyond the histogram's range (60 s
    # asked, 67.1 s after rounding to its buckets): the snippet raises instead of losing
    # the worst sample without a word.
    with pytest.raises(ValueError):
        omission.histogram([100.0])


# --- The server under test gets bad, oversized and slow input.
def exchange(address, payload: bytes, timeout: float = 5.0) -> bytes:
    """Send payload, then read until the server closes or 2 s of silence; the bytes read."""
    with socket.create_connection(address, timeout=timeout) as sock:
        sock.sendall(payload)
        data = b""
        sock.settimeout(2.0)
        try:
            while chunk := sock.recv(4096):
                data += chunk
        except TimeoutError:
            pass
        return data


def test_the_server_answers_an_unknown_request_and_keeps_the_connection():
    with (
        omission.running(period=10.0, stall=0.0) as server,
        omission.connection(server.server_address) as (sock, reader),
    ):
        sock.sendall(b"HELLO\n")
        assert reader.readline() == b"ERR unknown request\n"
        omission.ping(sock, reader)  # still usable
        sock.sendall(b"PING\r\n")  # a CRLF line is a PING too
        assert reader.readline() == b"PONG\n"


def test_the_server_refuses_an_oversized_line_and_closes():
    with omission.running(period=10.0, stall=0.0) as server:
        reply = exchange(server.server_address, b"P" * 10_000)
        assert reply == b"ERR line too long\n"
        reply = exchange(server.server_address, b"P" * 100 + b"\n")  # long, but complete
        assert reply == b"ERR line too long\n"


def test_the_server_drops_a_slow_client_after_its_idle_timeout():
    with omission.running(period=10.0, stall=0.0, idle_timeout=0.2) as server:
        start = time.perf_counter()
        reply = exchange(server.server_address, b"PI")  # half a line, then nothing
        waited = time.perf_counter() - start
        assert reply == b"ERR idle timeout\n"
        # Ordering only: the server's 0.2 s, not exchange()'s own 2 s read timeout, ended it.
        assert waited < 1.8, waited


def test_the_server_drops_a_client_that_trickles_a_line_slower_than_its_timeout():
    # A slowloris client: one byte every 0.05 s, each well within 0.3 s of the last, never a
    # newline. The line as a whole must arrive within the idle timeout, so the server gives
    # up after ~0.3 s (about 6 bytes) instead of holding a thread for as long as it trickles.
    with (
        omission.running(period=10.0, stall=0.0, idle_timeout=0.3) as server,
        socket.create_connection(server.server_address, timeout=5) as sock,
    ):
        start = time.perf_counter()
        reply, seen = trickle(sock, 0.05)
        assert reply == b"ERR idle timeout\n", reply
        # Ordering only: answered before the 48-byte trickle (2.4 s) was through.
        assert seen - start < 2.0, seen - start


def test_a_partial_line_after_a_complete_one_gets_a_fresh_idle_timeout():
    # "P" at 0 s, "ING\nPI" at 1.5 s, "NG\n" at 2.5 s, idle timeout 2 s: the second line
    # began at 1.5 s, so its deadline is 3.5 s; a deadline carried over from the first
    # line (2 s) would refuse it. The sleeps pace the client (not a readiness wait); the
    # margin is 0.5 s on the early side and 1 s on the late side of each step.
    with (
        omission.running(period=100.0, stall=0.0, idle_timeout=2.0) as server,
        socket.create_connection(server.server_address, timeout=5) as sock,
        sock.makefile("rb") as reader,
    ):
        sock.sendall(b"P")
        time.sleep(1.5)
        sock.sendall(b"ING\nPI")
        assert reader.readline() == b"PONG\n"
        time.sleep(1.0)
        sock.sendall(b"NG\n")
        assert reader.readline() == b"PONG\n"


def test_a_request_during_a_freeze_waits_for_its_end():
    # The freeze is the server's: a request sent inside one is answered when it ends. The
    # freeze is the server's first second; the ping follows its start by milliseconds.
    with (
        omission.running(period=100.0, stall=1.0) as server,
        omission.connection(server.server_address) as (sock, reader),
    ):
        left = server.frozen_for(time.perf_counter())
        start = time.perf_counter()
        omission.ping(sock, reader)
        assert left > 0.0
        assert time.perf_counter() - start >= left - 0.01  # waited at least what was left


def test_nothing_is_left_running_after_the_server_stops():
    before = set(threading.enumerate())
    with omission.running() as server, omission.connection(server.server_address) as conn:
        omission.ping(*conn)
    leftover = [t for t in threading.enumerate() if t not in before and t.is_alive()]
    assert not leftover, leftover


# --- Averaged percentiles: a seeded model.
def test_merged_histograms_give_the_true_p99_and_averaged_p99s_do_not():
    for instances in merge.SCENARIOS.values():
        f = merge.fleet(instances)
        # HDR keeps 3 significant digits: the merged p99 is the sorted p99 to within 0.1%.
        assert f.merged_p99 == pytest.approx(f.exact_p99, rel=2e-3), f
    alike = merge.fleet(merge.SCENARIOS["four alike"])
    slow = merge.fleet(merge.SCENARIOS["one slow of four"])
    # The control: identical instances with equal traffic, averaging is harmless (seeded:
    # 1.00; four samples of 5,000 differ by a few percent at p99).
    assert alike.average_of_p99s == pytest.approx(alike.exact_p99, rel=0.05)
    # One slow instance of four: a quarter of the requests are slow, so the true p99 sits
    # in the slow instance's own p96 (150 ms x e^(1.75 x 0.5) ~ 360 ms), while the
    # average of p99s is (3 x 63 + 470) / 4 ~ 165 ms: less than half.
    assert slow.average_of_p99s < 0.6 * slow.exact_p99, slow
    # And the mean hides the tail altogether.
    assert slow.mean < 0.25 * slow.exact_p99, slow


def test_break_it_a_slow_instance_with_little_traffic_makes_the_average_overstate():
    # Break it (the page): the slow instance serves 1,000 requests, the others 40,000 each.
    # Its requests are 0.8% of the total, fewer than the 1% tail, so the fleet's p99 is a
    # healthy instance's tail (~p99.8: 20 ms x e^(2.9 x 0.5) ~ 85 ms), while the average
    # of p99s still counts the slow instance's 470 ms as a quarter: ~165 ms, about twice.
    instances = [merge.Instance(40_000, 20.0)] * 3 + [merge.Instance(1_000, 150.0)]
    f = merge.fleet(instances)
    assert f.average_of_p99s > 1.5 * f.exact_p99, f
    assert f.merged_p99 == pytest.approx(f.exact_p99, rel=2e-3), f


# --- SLO burn-rate alerts: a seeded model.
def answers(seed: int) -> dict[str, list]:
    failed = burn.series(seed)
    return {
        r.name: [burn.response(burn.firing(r, failed), e) for e in burn.EVENTS] for r in burn.RULES
    }


@pytest.mark.parametrize("seed", [burn.SEED, 1, 2, 3, 4])
def test_multiwindow_alerts_fire_on_incidents_and_clear_fast_single_windows_do_not(seed):
    # The arithmetic, per rule (1,000 requests a minute, budget ratio 0.1%):
    # - outage, 20 min at 20% (burn 200): the 1 h window passes 1.44% (864 failed of 60,000)
    #   after 864 / 200 = 4.3 min, so both 1 h rules fire after 5; the 5 m window passes
    #   1.44% (72 of 5,000) in the first minute. After the end, the 5 m window is clean in
    #   5 min; the 1 h window still holds > 4.3 outage minutes until 56 min after.
    # - blip, 5 min at 3% (burn 30): 5 m reaches 72 failed after 2.4 min; the 1 h window
    #   never holds more than ~165 failed (0.28%): no 1 h rule can fire.
    # - slow burn, 6 h at 1% (burn 10): below 14.4 in any window (the 1 h window would
    #   need 864 failed where it expects 600, 10 standard deviations); the 6 h window
    #   passes 0.6% (2,160 of 360,000) after ~212 min; afterwards the 30 m window is below
    #   0.6% within ~13 min, the 6 h window only after ~148.
    # Seeded, so exact; the margins are there so that other seeds pass too (5 seeds).
    a = answers(seed)
    multi, multi_slow = a["1h and 5m > 14.4"], a["6h and 30m > 6"]
    blip, outage, slow = 0, 1, 2
    # Multiwindow: no page for the blip, fast on the outage, quiet soon after it ends.
    assert multi[blip].fired_after is None
    assert multi[outage].fired_after <= 6 and multi[outage].cleared_after <= 6
    # Single short window: pages on a blip that spent 0.3% of the month's budget.
    assert a["5m > 14.4"][blip].fired_after is not None
    # Single short window made patient with `for: 15m`: no blip, but fires late.
    assert a["5m > 14.4 for 15m"][blip].fired_after is None
    assert a["5m > 14.4 for 15m"][outage].fired_after >= 3 * multi[outage].fired_after
    # Single long window: fires as fast, but keeps firing most of an hour after the end.
    assert a["1h > 14.4"][outage].fired_after == multi[outage].fired_after
    assert a["1h > 14.4"][outage].cleared_after >= 45
    # Multi-burn-rate: the slow burn is for the 6 h pair; the 1 h pair never sees it.
    assert multi[slow].fired_after is None
    assert 180 <= multi_slow[slow].fired_after <= 250
    assert multi_slow[slow].cleared_after <= 20
    assert a["6h > 6"][slow].cleared_after >= 100


def test_a_patient_single_window_never_pages_for_a_ten_minute_outage():
    # The page's claim about `for: 15m`: a 10-minute outage at 20% keeps the 5 m window
    # above 1.44% for its 10 minutes and ~4 more (until fewer than 0.36 outage minutes are
    # left in it), 14 evaluations of the 16 that `for: 15m` needs; the 1 h pair fires
    # after 5 minutes (the arithmetic of the test above) and clears 5 minutes after.
    events = tuple(
        burn.Event(e.name, e.start, 10, e.error_ratio) if e.name == "outage" else e
        for e in burn.EVENTS
    )
    outage = next(e for e in events if e.name == "outage")
    for seed in (burn.SEED, 1, 2):
        failed = burn.series(seed, events)
        rules = {r.name: burn.firing(r, failed) for r in burn.RULES}
        assert burn.response(rules["5m > 14.4 for 15m"], outage, events).fired_after is None
        multi = burn.response(rules["1h and 5m > 14.4"], outage, events)
        assert multi.fired_after <= 6 and multi.cleared_after <= 6, multi


def test_the_error_budget_arithmetic():
    # 99.9% over 30 days at 1,000 requests a minute: 0.1% of 43.2 million requests.
    budget = (1 - burn.SLO) * burn.PERIOD_DAYS * 24 * 60 * burn.PER_MINUTE
    assert round(budget) == 43_200
    # A burn rate of 14.4 spends 2% of the budget in an hour; 6 spends 5% in 6 hours.
    month = burn.PERIOD_DAYS * 24 * 60  # minutes
    assert round(14.4 * 60 / month, 6) == 0.02
    assert round(6 * 360 / month, 6) == 0.05


def test_the_binomial_sampler_matches_its_mean():
    # The model's per-minute failures: mean n x p (over 2,000 draws, within 3 standard errors).
    rng = random.Random(0)
    for p_ in (0.0003, 0.03, 0.2):
        draws = [burn.binomial(rng, 1000, p_) for _ in range(2000)]
        sd = (1000 * p_ * (1 - p_) / 2000) ** 0.5
        assert abs(statistics.mean(draws) - 1000 * p_) < 3 * sd + 1e-9, (p_, statistics.mean(draws))
    # The edges: nothing fails at 0, everything at 1 (a complete outage), no division by 0.
    assert burn.binomial(rng, 1000, 0.0) == 0 and burn.binomial(rng, 1000, 1.0) == 1000
