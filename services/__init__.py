"""Real servers on loopback, started for you: one implementation for the tests and for
learners (`make run`, `make services`).

Each module in this package is one service (postgresql.py, redis.py, nginx.py, …) and
defines:

    NAME = "PostgreSQL"                 # what the learner reads
    PROVIDES = ("DATABASE_URL",)        # the variables a snippet's `Needs:` line names
    def start() -> ContextManager[Started]
    def binary() -> Path                # found, or raise Missing

`start()` finds the binary (or raises Missing, whose message is the one-line install
command per platform), starts the server on 127.0.0.1 with an ephemeral port and its files
in a temp dir, waits until it answers (a readiness check, never a sleep), yields a Started
with the variables' values, and on exit stops it and every process it spawned (mirakuru
marks them with an environment variable and finds them all). A service that snippets
start themselves (NGINX, Apache) only finds the binary and provides its path.

Adding a server (HAProxy, RabbitMQ, NATS, Prometheus …) is one module here with those four
names (and BINARY_ONLY = True if snippets start it themselves), plus its name in MODULES:
the test fixtures (tests/services/), `make run` and `make services` pick it up from there.

    python -m services run protocols/tcp_nagle    # what `make run S=…` does
    python -m services up [postgresql redis …]    # what `make services` does
"""

from __future__ import annotations

import atexit
import contextlib
import importlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Generic, TypeVar

import mirakuru.base
import psutil  # mirakuru's own dependency
from mirakuru import Executor
from mirakuru.base import ENV_UUID
from mirakuru.base_env import processes_with_env
from mirakuru.exceptions import ProcessExitedWithError, TimeoutExpired

# mirakuru's exit hook kills every process whose `mirakuru_uuid` variable *contains* the
# exiting process's PID as a substring — meant as "started by me" (the value is
# "<pid>:<uuid4>"), it also matches another process's "12345:…" when this PID is 234, or a
# digit run inside someone's uuid. Every Python process that imports this package runs
# it on exit: an xdist worker finishing early SIGKILLed another worker's PostgreSQL
# (flake hunt, "exited with -9"). Replaced by the exact check: the value starts with
# "<our pid>:".
atexit.unregister(mirakuru.base.cleanup_subprocesses)


@atexit.register
def _kill_what_this_process_started() -> None:
    prefix = f"{os.getpid()}:"
    for process in psutil.process_iter():
        with contextlib.suppress(psutil.Error, OSError):
            if process.environ().get(mirakuru.base.ENV_UUID, "").startswith(prefix):
                process.kill()


# one module per service, in this package
MODULES = (
    "postgresql", "redis", "nginx", "apache", "haproxy", "tinyproxy", "rabbitmq", "nats", "node",
    "nftables", "prometheus", "promtool", "containers",
)  # fmt: skip
SBIN = "/usr/sbin:/usr/local/sbin:/opt/homebrew/bin:/opt/homebrew/sbin:/usr/local/bin"


class Missing(Exception):
    """A server binary is not installed; the message says how to install it."""


@dataclass(frozen=True)
class Install:
    """How to get a binary, one command per platform."""

    apt: str  # Debian/Ubuntu package
    brew: str  # Homebrew formula

    def lines(self) -> str:
        return (
            f"  Debian/Ubuntu: sudo apt-get install {self.apt}\n"
            f"  macOS:         brew install {self.brew}"
        )


@dataclass
class Started:
    """A running service: the variables it provides, and one line saying what runs."""

    env: dict[str, str]
    description: str
    handle: Any = None  # the service's own object (e.g. the PostgreSQL server), for tests
    extra: dict[str, Any] = field(default_factory=dict)


def find_binary(
    name: str, install: Install, candidates: tuple[str, ...] = (), label: str = ""
) -> Path:
    """The first of `candidates` that exists, else `name` on PATH or in the sbin dirs."""
    for candidate in candidates:
        if os.access(candidate, os.X_OK):
            return Path(candidate)
    found = shutil.which(name) or shutil.which(name, path=SBIN)
    if found:
        return Path(found)
    raise Missing(f"{label or name} is not installed. Install it with:\n{install.lines()}")


def services_required() -> bool:
    """REQUIRE_SERVICES=1 (CI): a missing server is a failure, never a skip."""
    return os.environ.get("REQUIRE_SERVICES") == "1"


def modules() -> dict[str, ModuleType]:
    return {name: importlib.import_module(f"services.{name}") for name in MODULES}


def provider_of(variable: str) -> str:
    """The service module that provides an environment variable."""
    for name, module in modules().items():
        if variable in module.PROVIDES:
            return name
    raise KeyError(f"no module in services/ provides {variable}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


E = TypeVar("E", bound=Executor)
S = TypeVar("S")


class ServerProcess(Executor, Generic[S]):
    """A server running in the foreground, its output appended to `log`, started once
    `ready(server)` holds (a real request, never an open port alone). Never "already
    running": every start gets a fresh port and data dir. `server` is the service's own
    object (address, credentials), kept for whoever started it."""

    def __init__(
        self,
        command: list[str],
        server: S,
        ready: Callable[[S], bool],
        log: Path,
        *,
        timeout: float = 30,
        sleep: float = 0.05,
        **kwargs: Any,
    ) -> None:
        self.server, self._ready = server, ready
        self._log_file = log.open("a")
        super().__init__(
            command,
            timeout=timeout,
            sleep=sleep,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            **kwargs,
        )

    def pre_start_check(self) -> bool:
        return False

    def check_subprocess(self) -> bool:
        """mirakuru fails a start when the process exits non-zero; a launcher that exits 0
        when its server dies would be waited for until the hang guard. Debian's
        rabbitmq-server does (`wait "$pid" || true`): its node halted at once on a taken
        distribution port and the start waited the whole 180 s. Any exit before ready fails."""
        if self.process is not None and self.process.poll() == 0:
            self._kill_all_kids(self._kill_signal)  # what mirakuru does on a non-zero exit
            self._clear_process()
            raise ProcessExitedWithError(self, 0)
        return super().check_subprocess()

    def after_start_check(self) -> bool:
        return self._ready(self.server)

    def start(self) -> ServerProcess[S]:
        """Start and wait until ready. A server that is still not ready when the hang guard
        fires fails with the end of its own log, which says how far it got."""
        try:
            return super().start()
        except TimeoutExpired as error:
            self._log_file.flush()
            tail = Path(self._log_file.name).read_text(errors="replace")[-3000:]
            name = self.command.split(" ", 1)[0]
            raise RuntimeError(
                f"{name} not ready after {self._timeout} s; its log ends:\n{tail}"
            ) from error

    def crash(self, grace: float = 30) -> None:
        """SIGKILL the server and every process it started (a crash, for tests), and wait
        until each has exited: a killed process closes its sockets at the end of its exit,
        after its launcher may have been reaped and after its environment (mirakuru's
        marker) is gone; a restart before that found its old distribution port listening."""
        started = []
        for pid in processes_with_env(ENV_UUID, self._uuid):
            with contextlib.suppress(psutil.NoSuchProcess):  # one that ended meanwhile
                started.append(psutil.Process(pid))
        self.kill(wait=True, sig=signal.SIGKILL)
        deadline = time.monotonic() + grace
        while left := [p.pid for p in started if still_running(p)]:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{left} still running {grace} s after SIGKILL")
            time.sleep(0.02)

    def close_log(self) -> None:
        self._log_file.close()


def still_running(process: psutil.Process) -> bool:
    """Not yet exited. A zombie whose other threads are gone has finished exiting (its
    files closed) and waits only for its parent to collect it; but a multi-threaded
    process is a zombie as soon as its first thread has exited, while the others still
    hold its files: an Erlang VM's distribution port was still listening then."""
    try:
        return process.status() != psutil.STATUS_ZOMBIE or process.num_threads() > 1
    except psutil.NoSuchProcess:
        return False


def start_on_a_free_port(
    make: Callable[[int], E], log: Path, attempts: int = 5, first: int | None = None
) -> E:
    """Start `make(port)` on a free loopback port (`first`, if given, is tried first: a
    restart's old port). A port taken before the server binds it ("Address already in use",
    Erlang's `eaddrinuse`, in the server's log) is retried with another one."""
    for attempt in range(attempts):
        logged = log.stat().st_size if log.exists() else 0
        executor = make(first if first is not None and attempt == 0 else free_port())
        try:
            executor.start()
            return executor
        except ProcessExitedWithError:
            close = getattr(executor, "close_log", None)
            if close:
                close()
            with log.open(errors="replace") as file:
                file.seek(logged)
                text = file.read()
            if ("in use" in text or "eaddrinuse" in text) and attempt < attempts - 1:
                continue
            raise RuntimeError(
                f"{executor.command_parts[0]} did not start:\n{text[-2000:]}"
            ) from None
    raise AssertionError("unreachable")


def unprivileged_user() -> dict[str, Any]:
    """Popen arguments that drop root to a service user: PostgreSQL refuses to run as root
    (CI containers run as root). The `postgres` user Debian creates, else `nobody`."""
    if os.geteuid() != 0:
        return {}
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            entry = pwd.getpwnam(name)
            return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}
    raise RuntimeError("running as root and there is no `postgres` or `nobody` user to run as")


MEMORY = Path("/dev/shm")  # Linux's tmpfs: no disk I/O for servers whose data is throwaway


@contextlib.contextmanager
def temp_dir(
    prefix: str, owner: dict[str, Any] | None = None, in_memory: bool = False
) -> Iterator[Path]:
    """A temp dir that a dropped-privilege user can reach, removed on exit. in_memory: on
    tmpfs where there is one (a server that never needs to survive a crash: fsync off).

    It stays ours (0711: the service user may pass through, not write): we open logs and
    copy data directories in it, and a directory the service user owned would let that
    user swap a file for a link to anything we can write. What the service writes goes in
    owned_dir()s inside it."""
    memory = in_memory and MEMORY.is_dir() and os.access(MEMORY, os.W_OK)
    base = Path(tempfile.mkdtemp(prefix=prefix, dir=MEMORY if memory else None))
    try:
        if owner:
            base.chmod(0o711)
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)


def owned_dir(path: Path, owner: dict[str, Any] | None, files: dict[str, str] = {}) -> Path:  # noqa: B006
    """A new directory (0700) for the service user, with `files` written before it is
    handed over: we never write into a directory after the service user owns it."""
    path.mkdir(mode=0o700)
    for name, text in files.items():
        (path / name).write_text(text, encoding="utf-8")
        (path / name).chmod(0o600)
    if owner:
        for child in (*[path / name for name in files], path):
            os.lchown(child, owner["user"], owner["group"])
    return path


@contextlib.contextmanager
def started(names: list[str]) -> Iterator[list[Started]]:
    """Start the named services (modules of this package) together; stop them all on exit,
    also on Ctrl-C or an error while starting the next one."""
    with contextlib.ExitStack() as stack:
        yield [stack.enter_context(modules()[name].start()) for name in names]
