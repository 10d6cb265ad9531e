"""Runs labs/run.py many times without paying for Python and pytest to start each time.

`python labs/run.py <lab> --file <file>` spends about 1.4 s of CPU before the first stage
runs (the interpreter, pytest and its plugins imported, most of it compiling them when no
.pyc is written), and tests/labs runs it about 80 times. This process imports all of that
once and then, for each run asked of it, forks: the child is a fresh copy (its own
modules, environment, working directory, signal handlers), calls the runner's main() with
the run's arguments, writes what it prints to the files it is given and exits with
main()'s status, exactly as `python labs/run.py …` would.

The protocol, one JSON line each way on stdin/stdout:
    {"argv": [...], "cwd": "...", "stdout": "<path>", "stderr": "<path>", "timeout": 90}
    -> {"returncode": <int>} or {"timeout": true} (the child was killed after `timeout` s)
The process is single-threaded, so forking it is safe; it exits when stdin closes.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import select
import signal
import sys
import traceback
from pathlib import Path

import pytest  # noqa: F401 - imported here once, for every child
import pytest_timeout  # noqa: F401 - the one plugin the runner loads
from _pytest.config import default_plugins, essential_plugins

ROOT = Path(__file__).resolve().parents[2]
sys.path[0] = str(ROOT / "labs")  # as for `python labs/run.py`: the script's folder first

for name in (*essential_plugins, *default_plugins):  # what pytest.main() imports
    importlib.import_module(f"_pytest.{name}")
# What the stages and the runner's hints import (each child would import them afresh).
PRELOAD = [
    "google.protobuf.descriptor_pb2",
    "google.protobuf.descriptor_pool",
    "google.protobuf.message_factory",
    "http.client",
    "markdown.extensions.toc",
    "ssl",
    "trustme",
]
for name in PRELOAD:
    importlib.import_module(name)
sys.path.insert(0, str(ROOT))  # labs/pytest.ini's `pythonpath = ..`, which the stages use
importlib.import_module("services.processes")
sys.path.remove(str(ROOT))
spec = importlib.util.spec_from_file_location("labs_run", ROOT / "labs" / "run.py")
assert spec and spec.loader
runner = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = runner  # dataclasses look their module up here
spec.loader.exec_module(runner)


def child(request: dict) -> int:
    """In the forked child: what `python labs/run.py <argv>` does, run from `cwd`."""
    os.chdir(request["cwd"])
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    for fd, path in ((1, request["stdout"]), (2, request["stderr"])):
        out = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(out, fd)
        os.close(out)
    sys.argv = ["labs/run.py", *request["argv"]]
    try:
        return runner.main(request["argv"])
    except SystemExit as stop:
        return stop.code if isinstance(stop.code, int) else 1
    except BaseException:  # noqa: BLE001 - reported as python would, status 1
        traceback.print_exc()
        return 1


def serve() -> None:
    while line := sys.stdin.readline():
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                code = child(request)
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        # Wait for the child's exit without reaping it, so that killing it after the
        # timeout can never signal a stranger (its PID stays ours until waitpid below).
        fd = os.pidfd_open(pid)
        try:
            finished = select.select([fd], [], [], request["timeout"])[0]
        finally:
            os.close(fd)
        if not finished:
            os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
        reply = {"returncode": os.waitstatus_to_exitcode(status)} if finished else {"timeout": True}
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    serve()
