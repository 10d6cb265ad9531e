"""RabbitMQ: Debian's `rabbitmq-server` on 127.0.0.1 with an ephemeral AMQP port, its node
name, database (mnesia), logs, config and HOME (the Erlang cookie) in a temp dir; ready when
a real AMQP client (pika) opens a connection; stopped (with epmd and every Erlang helper it
spawned) by mirakuru. AMQP_URL is amqp://<user>:<password>@127.0.0.1:<port>/%2F.

Erlang's distribution is what `rabbitmqctl` talks to: a port mapper (epmd, normally 4369 on
every interface) and a distribution port. Both are pinned to loopback and to free ports of
their own, so parallel test workers each get their own epmd and nothing listens outside
127.0.0.1. The management plugin is off (no HTTP port).

Booting, RabbitMQ looks for its boot steps in every module of every application on its code
path, and a Debian install puts all ~70 bundled plugins there (1,052 modules, of which the
broker without plugins uses 439). The broker is therefore started from a small install
directory of links: its own scripts and only the applications `rabbit` depends on (read from
their .app files). Same binaries, same broker; start-up 18-25 s -> 7-12 s on a busy 2-core
machine (3 interleaved runs each), since fewer modules are loaded and searched for.
"""

from __future__ import annotations

import contextlib
import re
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from services import (
    Install,
    ServerProcess,
    Started,
    find_binary,
    free_port,
    start_on_a_free_port,
    temp_dir,
)

NAME = "RabbitMQ"
PROVIDES = ("AMQP_URL",)
INSTALL = Install(apt="rabbitmq-server", brew="rabbitmq")
# Debian's script, not /usr/sbin/rabbitmq-server (a wrapper that switches to the rabbitmq
# user and expects the system's directories); Homebrew's is on PATH as rabbitmq-server.
# A node that could not set up its distribution (the port mapper or port): start again
CLASHES = ("nodistribution", "dist_port_already_used")
LOOPBACK_DIST = "-kernel inet_dist_use_interface {127,0,0,1}"
CANDIDATES = ("/usr/lib/rabbitmq/bin/rabbitmq-server", "/opt/homebrew/sbin/rabbitmq-server")


@dataclass
class RabbitMQ:
    host: str
    port: int
    user: str
    password: str  # random per server: any local user can reach 127.0.0.1
    executor: ServerProcess[RabbitMQ] | None = field(default=None, repr=False)
    _restart: Callable[[], ServerProcess[RabbitMQ]] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"amqp://{self.user}:{self.password}@{self.host}:{self.port}/%2F"

    def kill(self) -> None:
        """SIGKILL the broker and its Erlang helpers (a crash, for tests); start() again
        with restart()."""
        assert self.executor is not None
        self.executor.crash()

    def restart(self) -> None:
        """Start the broker again on the same data directory and, unless another process
        has taken it meanwhile, the same AMQP port (read `url` again). Its Erlang
        distribution gets fresh ports: a CI run's restart found its old one taken."""
        assert self.executor is not None and self._restart is not None
        self.executor.close_log()
        self.executor = self._restart()
        self.port = self.executor.server.port  # moved only if another process took it


def rabbitmq_binary() -> Path:
    return find_binary("rabbitmq-server", INSTALL, CANDIDATES, label="RabbitMQ")


def answers(url: str) -> bool:
    """True when a real AMQP 0-9-1 handshake succeeds."""
    import pika
    import pika.exceptions

    params = pika.URLParameters(url)
    params.connection_attempts = 1
    params.socket_timeout = 2
    params.blocked_connection_timeout = 2
    try:
        pika.BlockingConnection(params).close()
        return True
    except pika.exceptions.AMQPError:
        return False


APP_DEPENDENCIES = re.compile(r"\{(?:included_)?applications,\s*\[([^\]]*)\]")


def trimmed_install(binary: Path, into: Path) -> tuple[Path, dict[str, str]]:
    """The server script and its environment, run from an install directory in `into` that
    links RabbitMQ's own sbin/ and escript/ and, of its plugins/, only the applications the
    `rabbit` application needs. Any other layout (Homebrew's wrapper): the binary as it is."""
    home = binary.resolve().parent.parent
    plugins, scripts = home / "plugins", home / "sbin"
    found = {}  # application name -> its directory ("rabbit-3.10.8" -> rabbit)
    for app_file in plugins.glob("*/ebin/*.app"):
        if app_file.parent.parent.name.rsplit("-", 1)[0] == app_file.stem:
            found[app_file.stem] = app_file.parent.parent
    if "rabbit" not in found or not (scripts / "rabbitmq-env").is_file():
        return binary, {}
    needed, todo = set(), ["rabbit"]
    while todo:
        app = todo.pop()
        if app in needed or app not in found:  # kernel, stdlib …: Erlang's own
            continue
        needed.add(app)
        text = (found[app] / "ebin" / f"{app}.app").read_text(encoding="utf-8", errors="replace")
        for listed in APP_DEPENDENCIES.findall(text):
            todo += [name.strip() for name in listed.split(",") if name.strip()]
    install = into / "install"
    (install / "plugins").mkdir(parents=True)
    for name in ("sbin", "escript"):
        if (home / name).exists():
            (install / name).symlink_to(home / name)
    for app in needed:
        (install / "plugins" / found[app].name).symlink_to(found[app])
    # rabbitmq-env takes RABBITMQ_HOME (whose plugins/ goes on the code path) from here
    return install / "sbin" / binary.name, {"RABBITMQ_SCRIPTS_DIR": str(install / "sbin")}


@contextlib.contextmanager
def running_rabbitmq() -> Iterator[RabbitMQ]:
    password = secrets.token_urlsafe(24)
    with temp_dir("rabbitmq-", in_memory=True) as base:
        binary, install_env = trimmed_install(rabbitmq_binary(), base)
        log = base / "rabbitmq.out"
        for name in ("mnesia", "log", "home"):
            (base / name).mkdir(mode=0o700)
        plugins = base / "enabled_plugins"
        plugins.write_text("[].\n", encoding="utf-8")  # no management plugin, no HTTP port

        def make(port: int) -> ServerProcess[RabbitMQ]:
            config = base / "rabbitmq.conf"  # the password in a 0600 file, not in `ps`
            config.write_text(
                f"listeners.tcp.default = 127.0.0.1:{port}\n"
                f"default_user = learner\ndefault_pass = {password}\n"
                "loopback_users = none\n",
                encoding="utf-8",
            )
            config.chmod(0o600)
            env = {
                "HOME": str(base / "home"),  # the Erlang cookie is written here
                "RABBITMQ_NODENAME": "rabbit@localhost",
                "RABBITMQ_MNESIA_BASE": str(base / "mnesia"),
                "RABBITMQ_LOG_BASE": str(base / "log"),
                "RABBITMQ_CONFIG_FILE": str(config),
                "RABBITMQ_ENABLED_PLUGINS_FILE": str(plugins),
                # never read the system's /etc/rabbitmq files
                "RABBITMQ_CONF_ENV_FILE": str(base / "rabbitmq-env.conf"),
                "RABBITMQ_ADVANCED_CONFIG_FILE": str(base / "advanced.config"),
                "RABBITMQ_PID_FILE": str(base / "rabbitmq.pid"),
                "ERL_CRASH_DUMP": str(base / "erl_crash.dump"),
                # Erlang distribution: our own epmd and distribution port, on loopback only
                "ERL_EPMD_ADDRESS": "127.0.0.1",
                "ERL_EPMD_PORT": str(free_port()),
                "RABBITMQ_DIST_PORT": str(free_port()),
                "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": LOOPBACK_DIST,
                **install_env,
            }
            server = RabbitMQ("127.0.0.1", port, "learner", password, _restart=lambda: again(port))
            executor = ServerProcess(
                [str(binary)],
                server,
                lambda server: answers(server.url),
                log,
                cwd=str(base),  # where Erlang would write erl_crash.dump
                # A hang guard, not a budget: 3-8 s here; a restart after SIGKILL took over
                # 90 s once, in a flake hunt beside a profiler and four helpers (load ~20).
                timeout=180,
                sleep=0.2,
                envvars=env,
            )
            server.executor = executor
            return executor

        def again(port: int | None) -> ServerProcess[RabbitMQ]:
            """Start on `port` (None, or taken meanwhile: a free one), each attempt on fresh
            distribution ports.
            Erlang starts its port mapper (epmd) and registers with it at once; on a loaded
            machine the registration can come first ("nodistribution", seen once with four
            test workers on 2 cores). And a free port chosen here can be taken by any
            process before the node binds it ("dist_port_already_used")."""
            for attempt in range(3):
                try:
                    return start_on_a_free_port(make, log, first=port)
                except RuntimeError as error:
                    if not any(clash in str(error) for clash in CLASHES) or attempt == 2:
                        raise
            raise AssertionError("unreachable")

        executor = again(None)
        server = executor.server
        try:
            yield server
        finally:
            if server.executor is not None:  # the one restart() started, if it was called
                server.executor.stop()
                server.executor.close_log()


def describe(binary: Path) -> str:
    version = "3"
    with contextlib.suppress(OSError):
        deb = Path("/usr/lib/rabbitmq/lib")
        found = sorted(p.name for p in deb.glob("rabbitmq_server-*")) if deb.is_dir() else []
        if found:
            version = found[-1].removeprefix("rabbitmq_server-")
    return f"RabbitMQ {version} ({binary})"


@contextlib.contextmanager
def start() -> Iterator[Started]:
    with running_rabbitmq() as server:
        yield Started({"AMQP_URL": server.url}, describe(rabbitmq_binary()), handle=server)


binary = rabbitmq_binary  # every service module has one: found, or Missing with the install lines
