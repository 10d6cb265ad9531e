"""Every snippet runs alone, like a learner runs it: exit 0, no hang, nothing left
running, and printing what its page shows (DESIGN.md §3, §5.1). Its time budget is a
benchmark, not a test (DESIGN.md §6): `make bench-snippets` (tests/bench_snippets.py)."""

from __future__ import annotations

import os
import select

import pytest

from tests.services import env_fixtures
from tests.snippet_output import (
    HANG_GUARD_SECONDS,
    ROOT,
    all_snippets,
    needs,
    normalise,
    output_file,
    run_snippet,
)

SNIPPETS = all_snippets()


@pytest.mark.parametrize("snippet", SNIPPETS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_snippet_runs_alone_and_prints_what_its_page_shows(snippet, request):
    providers = env_fixtures()
    missing = [var for var in needs(snippet) if var not in providers]
    assert not missing, f"no module in tests/services/ provides {missing}"
    env = {var: request.getfixturevalue(providers[var]) for var in needs(snippet)}

    run = run_snippet(snippet, env=env)
    name = snippet.relative_to(ROOT / "snippets").with_suffix("").as_posix()
    assert not run.timed_out, (
        f"still running after {HANG_GUARD_SECONDS:.0f} s: a hang (the 5 s budget is checked"
        f" alone by `make bench-snippets`)\n{run.stderr}"
    )
    assert run.returncode == 0, f"exit {run.returncode}\n{run.stderr}"
    assert not run.leftover, "a process it started was still running after it exited"
    recorded = output_file(snippet)
    if request.config.getoption("--record-outputs"):
        recorded.parent.mkdir(exist_ok=True)
        recorded.write_text(run.stdout, encoding="utf-8")
    assert recorded.exists(), f"no recorded output: run `make outputs S={name}`"
    assert normalise(run.stdout) == normalise(recorded.read_text(encoding="utf-8")), (
        f"output differs from {recorded.relative_to(ROOT)}; if the change is intended,"
        f" re-record it with `make outputs S={name}`\n--- now ---\n{run.stdout}"
    )


def test_normalise_keeps_counts_and_hides_only_what_varies():
    a = "listening on 127.0.0.1:50123; reuse was 3.1x faster; ~7 reads; 87 arrived"
    b = "listening on 127.0.0.1:40999; reuse was 12.0x faster; ~5 reads; 87 arrived"
    assert normalise(a) == normalise(b)
    assert normalise("took    9.5 ms") == normalise("took   10.5 ms")  # padding shrinks
    assert normalise(a) != normalise(a.replace("87 arrived", "86 arrived"))
    assert normalise(a) != normalise(a.replace("faster", "slower"))


def test_a_process_that_escapes_the_snippets_process_group_is_still_caught(tmp_path):
    escapee = tmp_path / "escapee.py"
    escapee.write_text(
        "import subprocess, sys\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'],"
        " start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n"
        "print(child.pid)\n",
        encoding="utf-8",
    )
    run = run_snippet(escapee)
    assert run.returncode == 0 and run.leftover  # its own session: killpg alone misses it
    try:
        pidfd = os.pidfd_open(int(run.stdout))
    except ProcessLookupError:
        return  # killed and already reaped
    try:  # a pidfd turns readable when its process has exited: it was killed, not left
        assert select.select([pidfd], [], [], 5)[0], "the escaped process is still running"
    finally:
        os.close(pidfd)


def test_a_snippet_that_hangs_is_stopped_and_reported(tmp_path):
    sleeper = tmp_path / "sleeper.py"
    sleeper.write_text("import time\nprint('started', flush=True)\ntime.sleep(60)\n")
    run = run_snippet(sleeper, timeout=1.0)
    assert run.timed_out and run.returncode != 0 and run.stdout == "started\n"
    assert run.seconds < 30  # stopped at the timeout, not after its 60 s sleep
