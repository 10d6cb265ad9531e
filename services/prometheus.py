"""Prometheus: Debian's `prometheus` on 127.0.0.1 with an ephemeral port, its TSDB in a
temp dir (tmpfs where there is one), scraping every second whatever targets a snippet
writes into a file_sd directory; ready when `/-/ready` answers 200; stopped by mirakuru.

PROMETHEUS_URL is http://127.0.0.1:<port>. PROMETHEUS_TARGETS is that directory: a snippet
writes `<name>.json` there ([{"targets": ["127.0.0.1:<port>"], "labels": {"job": …}}],
the file_sd format), Prometheus notices the file (inotify) and scrapes the targets every
second, and the snippet deletes the file when it stops. Each snippet uses its own job name,
so snippets sharing one server never read each other's series."""

from __future__ import annotations

import contextlib
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from services import (
    Install,
    ServerProcess,
    Started,
    find_binary,
    start_on_a_free_port,
    temp_dir,
)

NAME = "Prometheus"
PROVIDES = ("PROMETHEUS_URL", "PROMETHEUS_TARGETS")
INSTALL = Install(apt="prometheus", brew="prometheus")
CANDIDATES = ("/usr/bin/prometheus",)

# Scrape every second so a snippet sees its requests within a second or two; evaluate rules
# as often. (Prometheus's defaults are 1 m; the docs' example config uses 15 s.)
CONFIG = """\
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: snippets
    file_sd_configs:
      - files: ["{targets}/*.json"]
        refresh_interval: 1s
"""


@dataclass(frozen=True)
class Prometheus:
    host: str
    port: int
    targets: Path  # the file_sd directory

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


def prometheus_binary() -> Path:
    return find_binary("prometheus", INSTALL, CANDIDATES, label="Prometheus")


def answers(server: Prometheus) -> bool:
    """True once `/-/ready` answers 200: the TSDB is open and the server takes queries."""
    try:
        with urllib.request.urlopen(f"{server.url}/-/ready", timeout=2) as response:
            return response.status == 200
    except (OSError, urllib.error.URLError):
        return False


@contextlib.contextmanager
def running_prometheus() -> Iterator[Prometheus]:
    binary = prometheus_binary()
    with temp_dir("prometheus-", in_memory=True) as base:
        log = base / "prometheus.log"
        targets = base / "targets"
        targets.mkdir()
        config = base / "prometheus.yml"
        config.write_text(CONFIG.format(targets=targets), encoding="utf-8")

        def make(port: int) -> ServerProcess[Prometheus]:
            command = [str(binary), f"--config.file={config}"]
            command += [f"--web.listen-address=127.0.0.1:{port}"]
            command += [f"--storage.tsdb.path={base / 'data'}", "--log.level=warn"]
            server = Prometheus("127.0.0.1", port, targets)
            return ServerProcess(command, server, answers, log)

        executor = start_on_a_free_port(make, log)
        try:
            yield executor.server
        finally:
            executor.stop()
            executor.close_log()


def describe(binary: Path) -> str:
    out = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=30)
    words = (out.stdout or out.stderr).split()
    version = words[2] if len(words) > 2 else "?"
    return f"Prometheus {version} ({binary})"


@contextlib.contextmanager
def start() -> Iterator[Started]:
    with running_prometheus() as server:
        env = {"PROMETHEUS_URL": server.url, "PROMETHEUS_TARGETS": str(server.targets)}
        yield Started(env, describe(prometheus_binary()), handle=server)


binary = prometheus_binary  # every service module has one: found, or Missing with the install lines
