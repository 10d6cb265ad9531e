"""Queues, backpressure and Little's law (docs/design/queues.md): a real thread pool fed by
an open-loop generator, bounded vs unbounded queue at several run lengths, the closed-loop
generator that hides the growth, a blocking put that brings it back; L = λW sampled on a
running pool, and pools sized below and above λS."""

from __future__ import annotations

import statistics

from tests.conftest import load_snippet

bp = load_snippet("design/queues_backpressure")
little = load_snippet("design/queues_littles_law")

SHORT, MID, LONG = bp.DURATIONS  # 0.05, 0.1 and 0.2 s: 2x and 4x the arrivals


def medians(runs: dict[float, list]) -> dict[float, float]:
    """Per run length: each run's median latency (ms), from its least disturbed repeat.

    The repeats are the same work, and a stall (the machine busy elsewhere) can only make a
    request later, never sooner: so the lowest of the repeats' medians is the one a stall
    touched least. A median of the repeats still let stalls set it when they hit most of
    the short runs (a fresh-clone CI beside a 4-worker flake hunt: 1.67x where quiet runs
    give ~4x)."""
    return {d: min(r.median_ms for r in rs) for d, rs in runs.items()}


def growth(runs: dict[float, list]) -> float:
    """Median latency in the long runs / in the short runs (least disturbed repeats)."""
    median = medians(runs)
    return median[LONG] / median[SHORT]


def test_under_overload_unbounded_latency_grows_with_the_run_and_bounded_does_not():
    # Offered load is 2x the pool's best capacity (4,000/s against 4 x 1/2 ms), open loop.
    # Noise budget: observed over 10 runs of this test (5 interleaved repeats) on the shared
    # 2-core machine at load average 2-12.5 (a flake hunt and other helpers running, niced):
    # the unbounded median grew 3.4x-6.1x from 0.05 s to 0.2 s, 1.7x-3.5x per step of 2x,
    # the bounded one 0.86x-1.19x; their ratio 3.4x-5.2x; unbounded / bounded at 0.2 s
    # 9.0x-14x; the unbounded queue's max depth 104-137 and 420-588. A busy machine makes
    # each 2 ms sleep overrun, which lowers the pool's capacity; so 10 more runs at load
    # average 2.3-10.6 set the snippet's SERVICE to 10 ms, what the busiest runs did to the
    # sleeps: 3.7x-4.3x, 1.9x-2.3x per step, 1.06x-1.19x, ratio 3.1x-4.1x, 15x-17x, depth
    # 180 and 720-732. The margins (2x, 1.3x per step, 1.6x, 2x between them, 4x, depths
    # 2x and 200) hold with room in both because the overload deepens with slower sleeps
    # (more growth) while the bounded queue's bound is (BOUND / WORKERS + 1) sleeps however
    # long a sleep takes; what load adds is stalls, which hit a short run's median hardest,
    # and 5 repeats keep one stall from setting a median. Since a fresh-clone CI beside a
    # 4-worker hunt saw the Break it test's growth at 1.67x (stalls in most short runs),
    # medians() takes each length's least disturbed repeat: over 4 runs beside a hunt
    # (load average 3-3.5) 3.8x-4.6x, per step 1.65x-2.4x, bounded 1.00x-1.07x.
    runs = {(q, d): [] for q in ("unbounded", "bounded") for d in bp.DURATIONS}
    for _ in range(5):
        for d in bp.DURATIONS:
            runs[("unbounded", d)].append(bp.open_loop(bp.RATE, d, maxsize=0))
            runs[("bounded", d)].append(bp.open_loop(bp.RATE, d, maxsize=bp.BOUND))
    unbounded = {d: runs[("unbounded", d)] for d in bp.DURATIONS}
    bounded = {d: runs[("bounded", d)] for d in bp.DURATIONS}
    assert growth(unbounded) > 2.0, unbounded
    assert growth(bounded) < 1.6, bounded
    assert growth(unbounded) > 2 * growth(bounded), (unbounded, bounded)
    # The trend, at each of the three run lengths: every step of 2x more arrivals, later.
    m = medians(unbounded)
    assert m[SHORT] * 1.3 < m[MID] and m[MID] * 1.3 < m[LONG], m
    at_long = [medians(rs)[LONG] for rs in (unbounded, bounded)]
    assert at_long[0] > 4 * at_long[1], at_long
    # Sanity checks, not findings: a queue.Queue(maxsize=20) never holds more than 20 (its
    # contract), and the open loop sent every request of its schedule (the loop's count).
    for r in [r for rs in bounded.values() for r in rs]:
        assert r.max_depth <= bp.BOUND and r.rejected > 0, r
        assert r.offered == round(bp.RATE * r.duration), r
    for r in [r for rs in unbounded.values() for r in rs]:
        assert r.rejected == 0 and len(r.latencies) == round(bp.RATE * r.duration), r
    # The finding: the unbounded queue's backlog grew with the run.
    depth = {d: statistics.median(r.max_depth for r in unbounded[d]) for d in (SHORT, LONG)}
    assert depth[LONG] > 2 * depth[SHORT] and depth[LONG] > 10 * bp.BOUND, depth


def test_a_closed_loop_generator_hides_the_growth_the_open_loop_one_shows():
    # The control: the same unbounded pool, run just as long, driven by 8 clients that each
    # wait for an answer before sending again. Noise budget: over 10 runs at load average
    # 2-12.5, the closed-loop median (3 repeats) grew 0.99x-1.03x from 0.05 s to 0.2 s while
    # the open loop's grew 3.2x-5.4x; over 10 runs with SERVICE set to 10 ms (what a busy
    # machine did to the sleeps at worst), 0.87x-1.14x and 3.2x-4.3x; earlier, 10 runs at
    # load average 6-12: 0.83x-1.13x and 2.4x-6.8x. With 3 repeats it still failed once in
    # 4 runs at load average 9.5 (which bound was not recorded; a stall in two of three
    # short open runs, as in the Break it test, is the likely one): hence 5 repeats. With
    # 5, over 10 runs at load average 3.6-4.4: 0.99x-1.18x and 3.0x-5.3x. The margins (1.6x,
    # 1.8x, 2x between them) sit between with room on both sides. With the least disturbed
    # repeat (medians()), over 4 runs beside a flake hunt: closed 0.98x-1.00x, open 3.8x-4.6x.
    closed = {SHORT: [], LONG: []}
    opened = {SHORT: [], LONG: []}
    for _ in range(5):
        for d in (SHORT, LONG):
            closed[d].append(bp.closed_loop(bp.CLIENTS, d, maxsize=0))
            opened[d].append(bp.open_loop(bp.RATE, d, maxsize=0))
    assert growth(closed) < 1.6, closed
    assert growth(opened) > 1.8, opened
    assert growth(opened) > 2 * growth(closed), (opened, closed)
    # Sanity checks, not findings: 8 clients that each wait for their answer cannot have
    # more than 8 requests waiting, and they sent what the pool served, not the schedule.
    for r in closed[SHORT] + closed[LONG]:
        assert r.max_depth <= bp.CLIENTS, r
        assert r.offered < round(bp.RATE * r.duration), r


def test_break_it_a_blocking_put_moves_the_wait_into_the_sender():
    # Break it (the page): q.put(request) instead of put_nowait: nothing is rejected, the
    # queue stays within its bound, and latency measured from when each request was due
    # grows with the run like the unbounded queue's. Noise budget: with 3 repeats, growth
    # from 0.05 s to 0.2 s was 3.2x-7.2x over 9 runs at load average 2-10 and 1.79x once at
    # 9.3 (stalls in two of the three short runs): hence 5 repeats. With 5, 3.5x-4.9x over
    # 12 runs at load average 5.8-7.7, and 3.9x-4.0x over 4 with SERVICE set to 10 ms (what
    # a busy machine did to the sleeps at worst); the margin 1.8x is the unbounded test's,
    # below the lowest with room, above the bounded queue's 1.19x at most. A fresh-clone CI
    # beside a 4-worker hunt then measured 1.67x with the median of 5 (most short runs
    # stalled); with each length's least disturbed repeat (medians()), a stall can only
    # raise a run, so the lowest is the cleanest: 3.9x-5.0x over 4 runs beside a hunt.
    runs = {SHORT: [], LONG: []}
    for _ in range(5):
        for d in (SHORT, LONG):
            runs[d].append(bp.open_loop(bp.RATE, d, maxsize=bp.BOUND, block=True))
    assert growth(runs) > 1.8, runs
    for r in runs[SHORT] + runs[LONG]:  # sanity: a blocking put never rejects or overfills
        assert r.rejected == 0 and r.max_depth <= bp.BOUND, r


def test_littles_law_sampled_in_a_running_pool_matches_lambda_times_w():
    # L is sampled by a thread every 0.5 ms from the first arrival until the pool is empty,
    # each sample held until the next (a stalled sampler's gap counts for its length);
    # λW comes from the requests' own timestamps. Over a span that starts and ends empty
    # the time-average equals λW exactly, so what this checks is the sampling against the
    # timestamps (and the law's W: time in the pool, not time at work). Noise budget: with
    # every sample counted alike, the median of 3 of sampled / λW was 0.95-0.99 over 10
    # runs at load average 3-5 but 0.74 once at 10-12 (the sampler missed the stalls);
    # held until the next sample, it was 0.95-1.00 over 10 runs at load average 2-12.5
    # (sleeps of 2 ms taking 2.2-3.8 ms), busy / λS 0.94-1.01, and 1.00 and 1.00 over 10
    # runs with SERVICE set to 10 ms (sleeps 10.1-12.4 ms). The margin (0.8-1.25) is well
    # outside. With 2 workers, L / λS was 57-85, and 131-141 with 10 ms sleeps: the
    # margin 5 is an order of magnitude below.
    ratios_l, ratios_busy = [], []
    for _ in range(3):
        p = little.run_pool(4)
        ratios_l.append(p.l_sampled / (p.rate * p.mean_w))
        ratios_busy.append(p.busy_sampled / (p.rate * p.mean_s))
    assert 0.8 < statistics.median(ratios_l) < 1.25, ratios_l
    assert 0.8 < statistics.median(ratios_busy) < 1.25, ratios_busy
    # The law's W is the whole time in the pool: an undersized pool (2 workers, with a
    # queue) holds many times λ × the time at work.
    p = little.run_pool(2)
    assert p.l_sampled > 5 * p.rate * p.mean_s, p.max_depth


def test_a_pool_smaller_than_lambda_s_falls_behind_and_a_larger_one_keeps_up():
    # λS = 1,500/s x 2 ms = 3 busy workers at least (a sleep never ends early). Two workers
    # serve at most 1,000/s: the backlog grows by >= 500/s, >= 200 after 0.4 s, on any
    # machine. 32 keep up unless a 2 ms sleep takes over 21 ms on average. Noise budget:
    # with 8 workers, once, beside a browser test at load average 8, the large pool fell
    # short (sleeps overran towards 5 ms); with 12, earlier runs saw sleeps of 10 ms, the
    # edge of what 12 can serve: hence 32. Over 10 runs at load average 2-12.5 (sleeps
    # 2.1-2.8 ms on average), 2 workers' median latency was 55x-92x 32 workers', their max
    # depth 219-299, on average 109-151 requests waiting against 0.04-0.43, busy 1.99-2.00
    # against 3.1-4.1. Over 9 runs with SERVICE set to 10 ms (sleeps 10.2-17.8 ms, beyond
    # the worst a busy machine did to a 2 ms one): 103x-158x, 520-546, 259-269 waiting
    # against 0.12-10.6, busy 2.00 against 14.8-21.2. Margins: 10x, 100, 50, 20, 1.8 and
    # 0.9 x 32 = 28.8, on medians of 3.
    big = little.SIZES[-1]  # 32, the page's large pool
    small, large = [], []
    for _ in range(3):
        small.append(little.run_pool(2))
        large.append(little.run_pool(big))

    def median_latency(pools: list) -> float:
        return statistics.median(
            statistics.median(r.done - r.arrived for r in p.requests) for p in pools
        )

    def waiting(p) -> float:  # time-average of requests in the queue: in the pool, not busy
        return p.l_sampled - p.busy_sampled

    seen = [(p.workers, round(p.mean_s * 1e3, 2), p.max_depth, waiting(p)) for p in small + large]
    assert median_latency(small) > 10 * median_latency(large), seen
    assert statistics.median(p.max_depth for p in small) > 100, seen
    assert statistics.median(waiting(p) for p in small) > 50, seen
    assert statistics.median(waiting(p) for p in large) < 20, seen
    assert statistics.median(p.busy_sampled for p in small) > 1.8, seen
    # The large pool had room to spare: well under all its workers busy on average.
    assert statistics.median(p.busy_sampled for p in large) < 0.9 * big, seen
