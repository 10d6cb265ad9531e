"""`make cpu-map` (tests/cpu_map.py): command lines seen in a real `make test` land in the
right kind, and a command's CPU is all counted, children included."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.cpu_map import OTHER, kind_of
from tests.snippet_output import ROOT

SEEN = {  # command lines from a `make test` on this machine (arguments joined by spaces)
    "/usr/lib/postgresql/15/bin/postgres -D /tmp/pg/data -p 40011": "PostgreSQL",
    "postgres: checkpointer": "PostgreSQL",
    "/usr/lib/erlang/erts-12.2.1/bin/beam.smp -W w -MBas ageffcbf": "RabbitMQ (Erlang)",
    "/usr/lib/erlang/erts-12.2.1/bin/epmd -daemon": "RabbitMQ (Erlang)",
    "/usr/bin/redis-server 127.0.0.1:0": "Redis",
    "nginx: worker process": "NGINX, Apache, HAProxy, proxies",
    "/usr/lib/chromium/chromium --type=renderer --no-sandbox": "Chromium and Playwright's driver",
    "/work/.venv/lib/python3.11/site-packages/playwright/driver/node "
    "/work/.venv/lib/python3.11/site-packages/playwright/driver/package/cli.js run-driver": (
        "Chromium and Playwright's driver"
    ),
    "/work/.venv/bin/python -m ipykernel_launcher -f /tmp/k.json": "notebook kernels",
    "/work/.venv/bin/python -c import sys;exec(eval(sys.stdin.readline()))": (
        "pytest workers (tests, site build)"
    ),
    "/work/.venv/bin/python -m pytest -p no:randomly -n auto": "pytest controller",
    "/work/.venv/bin/python snippets/protocols/tcp_echo.py": "snippets",
    "/work/.venv/bin/python labs/run.py kv-store --file x.py": "labs",
    "/work/.venv/bin/ruff check .": "ruff and make",
    "/work/.venv/bin/python -m services run x": "other Python processes",
    "/bin/sleep 5": OTHER,
}


# ids without the command lines: a snippet's path in a test id would make `make test T=`
# count this test as one about that snippet's page
@pytest.mark.parametrize(("line", "kind"), SEEN.items(), ids=[f"line{i}" for i in range(len(SEEN))])
def test_each_process_seen_in_make_test_lands_in_its_kind(line: str, kind: str):
    assert kind_of(line) == kind


@pytest.mark.skipif(os.geteuid() != 0, reason="control groups need root (CI runs as root)")
def test_a_command_and_its_children_are_all_counted():
    # Two children of a shell, each ~0.5 s of CPU: both counted, each in its kind; the
    # sum near 1 s (a sweep is 0.2 s: a child spends at most that in its parent's group).
    spin = "import time; t = time.process_time()\nwhile time.process_time() - t < 0.5: pass"
    # the second's command line names snippets/ (an argument the code ignores): another kind
    script = f'{sys.executable} -c "{spin}" & {sys.executable} -c "{spin}" snippets/x'
    done = subprocess.run(
        [sys.executable, "-m", "tests.cpu_map", "--", "sh", "-c", f"{script}; wait; exit 3"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 3, done.stderr  # the command's own exit status
    total = float(done.stdout.split("total")[1].split("s CPU")[0])
    assert 0.9 <= total < 2.0, done.stdout
    assert "snippets" in done.stdout and "other Python processes" in done.stdout, done.stdout
