"""Shared test helpers: load a snippet as a module, a slowloris client, the codeblock
rule, services."""

from __future__ import annotations

import contextlib
import importlib.util
import re
import select
import socket
import sys
import time
from pathlib import Path
from types import ModuleType

import pytest

from tests.services import service_modules

# Every module in tests/services/ is a plugin: its fixtures are available to every test.
pytest_plugins = service_modules()

ROOT = Path(__file__).resolve().parent.parent


def load_snippet(name: str) -> ModuleType:
    """Import snippets/<chapter>/<file>.py by its path, e.g. load_snippet("protocols/tcp_echo").

    Snippets are not a package (each runs alone), so tests import them by path."""
    path = ROOT / "snippets" / f"{name}.py"
    module_name = "snippet_" + name.replace("/", "_")
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, path)
    assert spec and spec.loader, f"no snippet at {path}"
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # dataclasses and pickling look modules up here
    spec.loader.exec_module(module)
    return module


SLOW_HEADER = b"X-Slow: " + b"z" * 40


def trickle(sock: socket.socket, pace: float, data: bytes = SLOW_HEADER) -> tuple[bytes, float]:
    """A slowloris client: send `data` one byte every `pace` seconds until the server
    answers or closes. Returns (its reply, b"" if it closed, b"!" if it did neither, and
    time.perf_counter() when that was seen)."""
    for byte in data:
        if select.select([sock], [], [], pace)[0]:
            with contextlib.suppress(ConnectionResetError):
                return sock.recv(4096), time.perf_counter()
            return b"", time.perf_counter()
        try:
            sock.sendall(bytes([byte]))
        except (BrokenPipeError, ConnectionResetError):
            return b"", time.perf_counter()
    return b"!", time.perf_counter()


def is_include_only(code: str) -> bool:
    """A fence holding only `--8<--` includes is filled in at build time, not Python."""
    lines = [line.strip() for line in code.splitlines() if line.strip()]
    return bool(lines) and all(line.startswith("--8<--") for line in lines)


SNIPPET_COMMAND = re.compile(r"python snippets/\w+/\w+\.py")


def is_snippet_command(code: str) -> bool:
    """A shell fence that only runs snippets: test_snippets runs each of them (with the
    servers it needs, a budget and a leftover-process check), so it is not run twice."""
    lines = [line.strip() for line in code.splitlines() if line.strip()]
    return bool(lines) and all(SNIPPET_COMMAND.fullmatch(line) for line in lines)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--record-outputs",
        action="store_true",
        help="write each snippet's real output to snippets/<chapter>/output/ (make outputs)",
    )
    parser.addoption(
        "--repeats",
        type=int,
        default=3,
        help="runs per snippet in the snippet benchmark (make bench-snippets R=…)",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Markdown fences that are not code to run here are not tests: an include-only fence
    is filled in at build time, and a fence that only runs snippets is what test_snippets
    does already (with their servers, a budget and a leftover check). Deselect them, by
    rule, so that a skip always means a missing server."""

    def runs_here(item: pytest.Item) -> bool:
        if type(item).__name__ != "TestBlock":
            return True
        code = getattr(getattr(item, "obj", None), "code", "")
        return not (is_include_only(code) or is_snippet_command(code))

    keep = [item for item in items if runs_here(item)]
    drop = [item for item in items if not runs_here(item)]
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep
