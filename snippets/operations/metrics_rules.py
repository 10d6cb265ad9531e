"""Alerting rules checked and unit-tested by promtool, Prometheus's own rule engine, on a
synthetic series: a multiwindow burn-rate alert fires during an error burst and resolves
minutes after it ends; the same alert on one long window keeps paging some 40 minutes more.

Run: python snippets/operations/metrics_rules.py
Needs: PROMTOOL_BIN
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from dataclasses import dataclass
from pathlib import Path

# --8<-- [start:rules]
SLO = 0.999  # 99.9% of requests succeed: an error budget of 0.1%
RATIO = (
    'sum by (job) (rate(http_requests_total{{code=~"5.."}}[{w}]))'
    " / sum by (job) (rate(http_requests_total[{w}]))"
)

RULES = """\
groups:
  - name: slo
    rules:
      - record: job:slo_errors_per_request:ratio_rate5m
        expr: {ratio_5m}
      - record: job:slo_errors_per_request:ratio_rate1h
        expr: {ratio_1h}
      - alert: ErrorBudgetBurn
        expr: {alert}
        for: 2m
        labels:
          severity: page
"""
# Page when the last hour burned the budget 14.4x as fast as the SLO allows (2% of a
# 30-day budget in one hour) AND the last 5 minutes still do: the short window makes the
# alert stop soon after the errors stop (the SRE Workbook's multiwindow, multi-burn-rate).
MULTIWINDOW = (
    f"job:slo_errors_per_request:ratio_rate1h > (14.4 * {1 - SLO:.3f})"
    f" and job:slo_errors_per_request:ratio_rate5m > (14.4 * {1 - SLO:.3f})"
)
ONE_WINDOW = f"job:slo_errors_per_request:ratio_rate1h > (14.4 * {1 - SLO:.3f})"
# --8<-- [end:rules]

# --8<-- [start:tests]
# 1,000 good requests a minute for 3 hours; 50 errors a minute from minute 61 to 120
# (a burn rate of about 48), then none. promtool evaluates the rules minute by minute.
TESTS = """\
rule_files: [rules.yml]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: 'http_requests_total{job="api",code="200"}'
        values: '0+1000x180'
      - series: 'http_requests_total{job="api",code="500"}'
        values: '0x60 50+50x59 3000x60'
    alert_rule_test:
      - eval_time: 75m    # 15 min of errors: the 1 h ratio is 1.2%, below 1.44%
        alertname: ErrorBudgetBurn
        exp_alerts: []
      - eval_time: 85m    # both windows above 1.44% for more than `for: 2m`
        alertname: ErrorBudgetBurn
        exp_alerts: [{exp_labels: {job: api, severity: page}}]
      - eval_time: 130m   # errors stopped at 120m: the page must have stopped too
        alertname: ErrorBudgetBurn
        exp_alerts: []
"""
# --8<-- [end:tests]


@dataclass(frozen=True)
class Outcome:
    passed: bool
    output: str  # what promtool printed


def promtool(binary: str, *args: str, cwd: Path) -> Outcome:
    run = subprocess.run([binary, *args], cwd=cwd, capture_output=True, text=True, timeout=30)
    return Outcome(run.returncode == 0, (run.stdout + run.stderr).strip())


def rules(alert: str) -> str:
    windows = {f"ratio_{w}": RATIO.format(w=w) for w in ("5m", "1h")}
    return RULES.format(alert=alert, **windows)


def check_and_test(binary: str, rule_text: str) -> tuple[Outcome, Outcome]:
    """`promtool check rules` (syntax, PromQL, names), then `promtool test rules`."""
    with tempfile.TemporaryDirectory(prefix="metrics-rules-") as tmp:
        directory = Path(tmp)
        (directory / "rules.yml").write_text(rule_text, encoding="utf-8")
        (directory / "tests.yml").write_text(TESTS, encoding="utf-8")
        checked = promtool(binary, "check", "rules", "rules.yml", cwd=directory)
        if not checked.passed:
            return checked, Outcome(False, "not run: the rules did not check")
        return checked, promtool(binary, "test", "rules", "tests.yml", cwd=directory)


def promtool_from_env() -> str:
    found = os.environ.get("PROMTOOL_BIN") or shutil.which("promtool")
    if not found:
        sys.exit(
            "promtool is not installed: apt-get install prometheus (or brew install"
            " prometheus), or run `make run S=operations/metrics_rules`"
        )
    return found


def show(name: str, checked: Outcome, tested: Outcome) -> None:
    print(f"{name}:")
    print(f"  promtool check rules: {'SUCCESS' if checked.passed else 'FAILED'}")
    if not checked.passed:
        print("  promtool test rules:  not run")
    else:
        print(f"  promtool test rules:  {'SUCCESS' if tested.passed else 'FAILED'}")
    failed = checked if not checked.passed else tested
    for line in failed.output.splitlines() if not failed.passed else []:
        if line.strip() and "Unit Testing" not in line and "Checking" not in line:
            for part in textwrap.wrap(line.strip(), 80):
                print(f"    | {part}")


def main() -> None:
    binary = promtool_from_env()
    show("multiwindow (1 h and 5 min)", *check_and_test(binary, rules(MULTIWINDOW)))
    show("one window (1 h)", *check_and_test(binary, rules(ONE_WINDOW)))
    typo = rules(MULTIWINDOW).replace("[5m]", "[5 m]", 1)
    show("a typo in a range ([5 m])", *check_and_test(binary, typo))


if __name__ == "__main__":
    main()
