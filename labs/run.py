"""Run a graded lab's stages against your file, in order, and say what to fix first.

    python labs/run.py                      # list the labs
    python labs/run.py http-server          # test labs/http-server/starter.py
    python labs/run.py http-server --file my_server.py [--seed 42] [--verbose]

(`make lab LAB=http-server FILE=my_server.py` does the same.) Every run starts again at
stage 1, so a change for stage 4 cannot silently break stage 2; the first stage with a
failure is the last one run, and the runner prints the address of that stage on the lab's
page (the site `make serve` shows). Exit status: 0 when every stage passes, 1 when a stage
failed, 2 for a usage error, 3 when the stages could not be loaded (a bug in the lab).
"""

from __future__ import annotations

import argparse
import os
import random
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

LABS = Path(__file__).resolve().parent
ROOT = LABS.parent


def site_url() -> str:
    """Where the site is: SITE_URL if set (the deploy sets it), else mkdocs.yml's default,
    which is where `make serve` serves it."""
    config = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    match = re.search(r'^site_url: !ENV \[SITE_URL, "([^"]+)"\]', config, flags=re.M)
    return os.environ.get("SITE_URL") or (match[1] if match else "http://127.0.0.1:8000/")


def slugify(heading: str) -> str:
    """The anchor MkDocs gives a heading (Python-Markdown's toc extension, its default)."""
    try:
        from markdown.extensions.toc import slugify as toc_slugify
    except ImportError:  # the same rule, for an environment without the site's packages
        text = re.sub(r"[^\w\s-]", "", heading).strip().lower()
        return re.sub(r"[-\s]+", "-", text)
    return toc_slugify(heading, "-")


def stage_url(page: str, stage: int) -> str:
    """docs/protocols/lab-http-server.md, 5 -> <site>/protocols/lab-http-server/#stage-5-…"""
    path = Path(page)
    address = site_url().rstrip("/") + "/" + path.relative_to("docs").with_suffix("").as_posix()
    text = (ROOT / path).read_text(encoding="utf-8")
    heading = re.search(rf"^#+ (Stage {stage}\b.*)$", text, flags=re.M)
    return address + "/" + (f"#{slugify(heading[1])}" if heading else "")


def all_labs() -> list[str]:
    return sorted(p.parent.name for p in LABS.glob("*/stages.py"))


def stage_of(item: pytest.Item) -> int:
    marker = item.get_closest_marker("stage")
    return int(marker.args[0]) if marker else 0


def summary_of(item: pytest.Item) -> str:
    """What a test checks: its docstring's first line, else its name."""
    doc = (getattr(item, "obj", None).__doc__ or "").strip()
    return doc.splitlines()[0] if doc else item.name.removeprefix("test_").replace("_", " ")


def failure_text(report: pytest.TestReport, verbose: bool) -> str:
    """The AssertionError's own message (the stages write them for learners); pytest's
    full report with --verbose."""
    if verbose:
        return report.longreprtext
    excinfo = getattr(report, "excinfo_message", None)
    if excinfo:
        return excinfo
    return report.longreprtext.strip().splitlines()[-1] if report.longreprtext else "failed"


@dataclass
class Result:
    stage: int
    summary: str
    outcome: str = "passed"  # passed / failed / skipped
    message: str = ""


@dataclass
class StageReporter:
    """A pytest plugin that prints one line per test, grouped by stage."""

    verbose: bool = False
    titles: dict[int, str] = field(default_factory=dict)
    results: dict[str, Result] = field(default_factory=dict)
    page: str = ""
    collect_errors: list[str] = field(default_factory=list)
    current_stage: int = 0

    def pytest_configure(self, config: pytest.Config) -> None:
        if not self.verbose:
            # pytest's full report of a failure (the source of every frame) is shown only
            # with --verbose; building it parses each file in the traceback (~0.1-0.3 s of
            # CPU per failed check). The one-line form is enough for failure_text()'s
            # fallback, and the learner sees the same output.
            config.option.tbstyle = "line"

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:
            self.collect_errors.append(report.longreprtext)

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        for item in session.items:
            module = getattr(item, "module", None)
            self.titles.update(getattr(module, "STAGES", {}))
            self.page = getattr(module, "PAGE", self.page)
            self.results[item.nodeid] = Result(stage_of(item), summary_of(item))

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo
    ) -> pytest.TestReport:
        report = yield
        if report.failed and call.excinfo is not None:
            error = call.excinfo.value
            if isinstance(error, AssertionError):
                text = str(error)
                # Keep the stage's own message; drop pytest's "assert x == y" introspection
                # unless there is no message at all.
                text = text.split("\nassert ")[0] if not text.startswith("assert ") else text
            else:
                text = f"{type(error).__name__}: {error}"
            stderr = [line for p in getattr(item, "lab_programs", []) for line in p.stderr]
            if stderr and "stderr" not in text:
                text += "\nYour program's stderr ends with:\n" + "".join(stderr[-12:]).rstrip()
            report.excinfo_message = text  # type: ignore[attr-defined]
        return report

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        result = self.results[report.nodeid]
        if report.skipped:
            result.outcome = "skipped"
        elif report.failed and result.outcome != "failed":
            result.outcome = "failed"
            result.message = failure_text(report, self.verbose)
        if report.when != "teardown" or result.outcome == "skipped":
            return
        if result.stage != self.current_stage:
            self.current_stage = result.stage
            title = self.titles.get(result.stage, "")
            print(f"\nStage {result.stage}/{len(self.titles)}: {title}", flush=True)
        mark = "PASS" if result.outcome == "passed" else "FAIL"
        print(f"  {mark}  {result.summary}", flush=True)
        if result.outcome == "failed":
            for line in result.message.splitlines():
                print(f"        {line}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("lab", nargs="?", help="the lab's folder name under labs/")
    parser.add_argument("--file", help="your program (default: the lab's starter.py)")
    parser.add_argument("--seed", type=int, help="replay the randomised inputs of a run")
    parser.add_argument("--verbose", action="store_true", help="pytest's full failure report")
    parser.add_argument(
        "--exitfirst",
        action="store_true",
        help="stop at the first failed check, not at the end of its stage (the lab's own"
        " tests use it when only the stage that fails matters)",
    )
    args = parser.parse_args(argv)

    labs = all_labs()
    if args.lab not in labs:
        if args.lab:
            print(f"no lab named {args.lab!r}.", end=" ")
        print("Labs: " + ", ".join(labs) + "\nUsage: make lab LAB=<lab> [FILE=<your file>]")
        return 2
    lab_dir = LABS / args.lab
    file = Path(args.file) if args.file else lab_dir / "starter.py"
    if not file.is_file():
        print(f"no such file: {file}")
        return 2
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1, 1_000_000)
    shown = os.path.relpath(file.resolve(), Path.cwd())
    shown = str(file.resolve()) if shown.startswith("..") else shown
    print(f"Lab {args.lab}: testing {shown} (seed {seed})", flush=True)

    reporter = StageReporter(verbose=args.verbose)
    # Only the plugins the stages use: loading every installed one would take seconds.
    os.environ["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    code = pytest.main(
        [
            "-c", str(LABS / "pytest.ini"), "--rootdir", str(LABS),
            "-p", "pytest_timeout", "-p", "no:terminal", "-s",
            str(lab_dir / "stages.py"),
            f"--lab-file={file.resolve()}", f"--lab-seed={seed}",
            *(["--exitfirst"] if args.exitfirst else []),
        ],
        plugins=[reporter],
    )  # fmt: skip
    if reporter.collect_errors or not reporter.results:
        print("\nThe stages could not be loaded (a bug in the lab, not in your file):")
        print("\n".join(reporter.collect_errors) or f"pytest exit status {code}")
        return 3

    results = list(reporter.results.values())
    total = len(reporter.titles)
    failed = sorted({r.stage for r in results if r.outcome == "failed"})
    again = f"make lab LAB={args.lab}" + (f" FILE={shown}" if args.file else "")
    if not failed and code == 0:
        print(f"\nAll {total} stages passed.")
        return 0
    stage = failed[0] if failed else 0
    print(f"\nStage {stage} of {total} failed ({stage - 1} passed).")
    if reporter.page:
        print(f"Hints: {stage_url(reporter.page, stage)}   (the site: make serve)")
    print(f"Run again: {again}   (add SEED={seed} to replay these exact inputs)")
    return 1


if __name__ == "__main__":
    sys.exit(main())
