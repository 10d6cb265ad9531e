"""Benchmark: every snippet run alone, repeatedly, against its budget (DESIGN.md §6).

    make bench-snippets [R=3]

Not part of `make test`: a wall-clock budget asserted inside a parallel test run fails
whenever the machine is busy, so the suite only guards against hangs, and this runs each
snippet on its own (one process at a time, the servers it needs already up) R times.
It prints a table sorted by median and fails a snippet whose median is over the 5 s
budget; the median over all snippets is checked against the 1 s target at the end.
"""

from __future__ import annotations

import statistics

import pytest

from tests.services import env_fixtures
from tests.snippet_output import (
    BUDGET_SECONDS,
    MEDIAN_TARGET_SECONDS,
    ROOT,
    all_snippets,
    needs,
    run_snippet,
)

TIMES: dict[str, list[float]] = {}


@pytest.fixture(scope="module", autouse=True)
def report():
    yield
    if not TIMES:
        return
    rows = sorted(TIMES.items(), key=lambda item: -statistics.median(item[1]))
    print(f"\n\n| snippet | runs | median s | max s | budget {BUDGET_SECONDS:.0f} s |")
    print("|---|---:|---:|---:|---|")
    for name, times in rows:
        median = statistics.median(times)
        verdict = "over" if median >= BUDGET_SECONDS else "ok"
        print(f"| {name} | {len(times)} | {median:.2f} | {max(times):.2f} | {verdict} |")
    medians = [statistics.median(t) for t in TIMES.values()]
    overall = statistics.median(medians)
    print(
        f"\n{len(medians)} snippets: median of medians {overall:.2f} s"
        f" (target < {MEDIAN_TARGET_SECONDS:.0f} s), slowest {max(medians):.2f} s,"
        f" total {sum(sum(t) for t in TIMES.values()):.0f} s"
    )


@pytest.mark.parametrize("snippet", all_snippets(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_snippet_is_within_budget_alone(snippet, request):
    providers = env_fixtures()
    env = {var: request.getfixturevalue(providers[var]) for var in needs(snippet)}
    name = snippet.relative_to(ROOT / "snippets").with_suffix("").as_posix()
    times = []
    for _ in range(request.config.getoption("--repeats")):
        run = run_snippet(snippet, env=env)
        assert run.returncode == 0 and not run.timed_out, run.stderr
        times.append(run.seconds)
    TIMES[name] = times
    assert statistics.median(times) < BUDGET_SECONDS, f"{name}: median {times}"
