"""Every graded lab (labs/<lab>/) is tested the way a learner runs it (`make lab`):
its stages must pass against the reference solution and fail stage 1 against the
untouched starter — so the stages test something, and the starter leaves work to do."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.snippet_output import normalise

ROOT = Path(__file__).resolve().parents[2]
LABS = sorted(p.parent for p in (ROOT / "labs").glob("*/stages.py"))


def run_lab(lab: Path, file: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "labs/run.py", lab.name, "--file", str(file), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=90,
    )


def stage_count(lab: Path) -> int:
    text = (lab / "stages.py").read_text(encoding="utf-8")
    return len(set(re.findall(r"@pytest\.mark\.stage\((\d+)\)", text)))


@pytest.mark.parametrize("lab", LABS, ids=lambda p: p.name)
def test_lab_has_starter_solution_stages_and_a_page(lab: Path):
    for part in ("starter.py", "solution.py", "stages.py"):
        assert (lab / part).is_file(), f"labs/{lab.name}/{part} is missing"
    pages = list((ROOT / "docs").glob(f"*/lab-{lab.name}.md"))
    assert len(pages) == 1, f"no page docs/<chapter>/lab-{lab.name}.md"
    stages = (lab / "stages.py").read_text(encoding="utf-8")
    assert f'PAGE = "{pages[0].relative_to(ROOT).as_posix()}"' in stages
    assert "TODO" in (lab / "starter.py").read_text(encoding="utf-8")


@pytest.mark.parametrize("lab", LABS, ids=lambda p: p.name)
def test_solution_passes_every_stage(lab: Path):
    run = run_lab(lab, lab / "solution.py")
    assert run.returncode == 0, run.stdout + run.stderr
    assert f"All {stage_count(lab)} stages passed." in run.stdout, run.stdout
    assert re.search(r"\(seed \d+\)", run.stdout), "the run prints its seed"


@pytest.mark.parametrize("lab", LABS, ids=lambda p: p.name)
def test_untouched_starter_fails_stage_1(lab: Path):
    run = run_lab(lab, lab / "starter.py")
    assert run.returncode == 1, run.stdout + run.stderr
    assert "Stage 1 of" in run.stdout and "FAIL" in run.stdout, run.stdout
    assert "Stage 2/" not in run.stdout, "later stages must not run after a failed stage"


def test_http_server_stages_catch_a_server_that_serves_one_connection_at_a_time(
    tmp_path: Path, request: pytest.FixtureRequest
):
    """Also the sample run on the lab page: recorded from this run, checked on every run."""
    lab = ROOT / "labs" / "http-server"
    solution = (lab / "solution.py").read_text(encoding="utf-8")
    threaded = "threading.Thread(target=handle_connection, args=(sock,), daemon=True).start()"
    assert threaded in solution
    serial = tmp_path / "serial_server.py"
    serial.write_text(solution.replace(threaded, "handle_connection(sock)"), encoding="utf-8")
    run = run_lab(lab, serial, "--seed", "1")
    assert run.returncode == 1, run.stdout + run.stderr
    assert "Stage 5 of 6 failed (4 passed)" in run.stdout, run.stdout

    shown = run.stdout.replace(str(serial), "my_server.py")
    recorded = lab / "output" / "serial-server.txt"
    if request.config.getoption("--record-outputs"):
        recorded.parent.mkdir(exist_ok=True)
        recorded.write_text(shown, encoding="utf-8")
    # How many of the 20 concurrent clients fail, and which first, is up to the scheduler.
    which = re.compile(r"\d+ of 20 clients failed; the first: client \d+: (.*?) /echo/\w+")
    same = [
        which.sub(r"N of 20 clients failed; the first: client N: \1 /echo/W", normalise(text))
        for text in (shown, recorded.read_text(encoding="utf-8"))
    ]
    assert same[0] == same[1], (
        f"the run shown on the lab page changed; re-record with\n"
        f"  .venv/bin/python -m pytest {__file__} -k one_connection --record-outputs\n{shown}"
    )


def test_runner_lists_the_labs_when_none_is_named(capsys: pytest.CaptureFixture[str]):
    spec = importlib.util.spec_from_file_location("labs_run", ROOT / "labs" / "run.py")
    assert spec and spec.loader
    runner = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = runner  # dataclasses look their module up here
    spec.loader.exec_module(runner)
    assert runner.main(["no-such-lab"]) == 2
    out = capsys.readouterr().out
    assert "no lab named 'no-such-lab'" in out
    assert all(lab.name in out for lab in LABS)
