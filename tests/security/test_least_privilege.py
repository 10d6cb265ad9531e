"""Least privilege and secure configuration (docs/security/least-privilege.md): on real
PostgreSQL a read-only role refused (beside the writer), row-level security hiding other
tenants (beside the same table with RLS disabled, the owner, a BYPASSRLS role, and FORCE);
a Redis ACL user refused with NOPERM (beside a user allowed the command); SQL injection by
formatting vs parameters in sqlite3 and psycopg; secrets loaded and redacted."""

from __future__ import annotations

import logging
import socket
import uuid
from urllib.parse import urlsplit

import psycopg
import pytest
from psycopg import sql

from tests.conftest import load_snippet

pg = load_snippet("security/privilege_postgres")
acl = load_snippet("security/privilege_redis_acl")
inj_sqlite = load_snippet("security/privilege_injection_sqlite")
inj_pg = load_snippet("security/privilege_injection_postgres")
sec = load_snippet("security/privilege_secrets")

ALL = ["acme", "acme", "globex", "globex", "initech"]


@pytest.fixture
def world(database_url):
    with pg.world(database_url) as w:
        yield w


# PostgreSQL ---------------------------------------------------------------------------


def test_a_read_only_role_is_refused_with_42501_and_the_writer_is_not(world):
    assert pg.try_insert(world, "readonly") == "42501 permission denied for table invoices"
    assert pg.try_insert(world, "app") == "inserted"  # the control: same row, the writer


def test_rls_shows_the_app_only_its_tenant_and_nothing_when_unset(world):
    assert pg.visible(world, "app", "acme") == ["acme", "acme"]
    assert pg.visible(world, "app", "globex") == ["globex", "globex"]
    assert pg.visible(world, "app", None) == []  # fail closed
    assert pg.insert_for(world, "acme", "acme") == "inserted"
    assert pg.insert_for(world, "acme", "globex") == (
        '42501 new row violates row-level security policy for table "invoices"'
    )


def test_an_unset_tenant_is_null_on_a_fresh_connection_and_empty_once_set_before(world):
    """current_setting(name, true) is NULL when the setting never existed, but '' once an
    earlier transaction on the same (pooled) connection set it locally. The policy's
    NULLIF and the table's CHECK (tenant <> '') keep both failing closed."""
    with world.connect("app") as conn:
        unset = "SELECT current_setting('app.tenant', true)"
        assert conn.execute(unset).fetchone() == (None,)
        with conn.transaction():
            conn.execute("SELECT set_config('app.tenant', 'acme', true)")
            assert len(conn.execute("SELECT tenant FROM invoices").fetchall()) == 2
        assert conn.execute(unset).fetchone() == ("",)  # the next request on the connection
        assert conn.execute("SELECT tenant FROM invoices").fetchall() == []
    with world.connect("owner") as conn, pytest.raises(psycopg.errors.CheckViolation):
        conn.execute("INSERT INTO invoices (tenant, amount) VALUES ('', 1)")


def test_control_the_same_role_sees_every_tenant_once_rls_is_disabled(world):
    """What hides the rows is the policy, not the grants or the query."""
    with world.connect("owner") as conn:
        conn.execute("ALTER TABLE invoices DISABLE ROW LEVEL SECURITY")
    assert pg.visible(world, "app", "acme") == ALL


def test_the_owner_and_bypassrls_see_everything_until_force_binds_the_owner(world):
    assert pg.visible(world, "owner", None) == ALL
    assert pg.visible(world, "auditor", None) == ALL
    assert pg.visible(world, "superuser", None) == ALL
    pg.force(world)
    assert pg.visible(world, "owner", None) == []
    assert pg.visible(world, "owner", "initech") == ["initech"]
    assert pg.visible(world, "auditor", None) == ALL  # BYPASSRLS: FORCE does not apply
    assert pg.visible(world, "superuser", None) == ALL  # nor to superusers


def test_the_roles_are_removed_afterwards(database_url):
    with pg.world(database_url) as w:
        names = list(w.roles.values())
    with psycopg.connect(database_url, connect_timeout=5) as conn:
        left = conn.execute("SELECT rolname FROM pg_roles WHERE rolname = ANY(%s)", [names])
        assert left.fetchall() == []


# Redis --------------------------------------------------------------------------------


def refused(text: str, what: str) -> bool:
    """A NOPERM reply that names the command or the key. The rest of the wording differs
    by version: Redis 6 "...run the 'set' command or its subcommand", 7.0 "this user has
    no permissions to run the 'set' command", 7.2+ "User <name> has no permissions to run
    the 'set' command" (redis/redis#11160); the key refusal changed wording too."""
    return text.startswith("NOPERM ") and what in text


def test_the_acl_reader_gets_noperm_and_the_writer_control_succeeds(redis_url):
    with acl.acl_users(redis_url) as (prefix, clients):
        tried = {
            role: {name.replace(prefix, ""): acl.outcome(client, attempt)
                   for name, attempt in acl.attempts(prefix).items()}
            for role, client in clients.items()
        }  # fmt: skip
        import redis

        with redis.Redis.from_url(redis_url, decode_responses=True, socket_timeout=5) as admin:
            log = [e for e in admin.acl_log(count=100) if e["username"].startswith(prefix)]
    reader = tried["reader"]
    assert reader["GET cache:greeting"] == "ok: 'hello'"
    assert refused(reader["SET cache:greeting"], "'set' command")
    assert refused(reader["GET session:42"], "key")
    assert refused(reader["CONFIG GET requirepass"], "'config")  # 'config|get' since 7.0
    assert refused(reader["FLUSHALL"], "'flushall' command")
    assert tried["writer"]["SET cache:greeting"] == "ok: True"
    assert refused(tried["writer"]["GET session:42"], "key")
    # ACL LOG (Redis 6+, the same fields in every version) says why, per user: the
    # reader's SET refused by command, and both users' GET session:42 by key.
    why = {(e["username"].replace(prefix, ""), e["reason"], e["object"].replace(prefix, ""))
           for e in log}  # fmt: skip
    assert ("reader", "command", "set") in why, log
    assert ("reader", "key", "session:42") in why, log
    assert ("writer", "key", "session:42") in why, log
    assert not any(user == "writer" and obj == "set" for user, _, obj in why), log


def test_noperm_is_what_redis_sends_on_the_wire_and_the_admin_control_reads_the_key(
    redis_url,
):
    """The RESP error line (redis-py strips the NOPERM prefix into the exception class),
    and the default user reading the key the ACL users may not."""
    address = urlsplit(redis_url)
    with acl.acl_users(redis_url) as (prefix, clients):
        name = clients["reader"].connection_pool.connection_kwargs["username"]
        password = clients["reader"].connection_pool.connection_kwargs["password"]

        def command(*words: str) -> bytes:
            return b"*%d\r\n" % len(words) + b"".join(
                b"$%d\r\n%s\r\n" % (len(w.encode()), w.encode()) for w in words
            )

        with socket.create_connection((address.hostname, address.port), timeout=5) as raw:
            raw.sendall(command("AUTH", name, password) + command("SET", f"{prefix}cache:x", "1"))
            reply = b""
            while reply.count(b"\r\n") < 2:
                reply += raw.recv(4096)
        assert reply.startswith(b"+OK\r\n-NOPERM "), reply
        assert b"no permissions to run the 'set' command" in reply, reply
        import redis

        with redis.Redis.from_url(redis_url, decode_responses=True, socket_timeout=5) as admin:
            assert admin.get(f"{prefix}session:42") == "secret session"


# SQL injection ------------------------------------------------------------------------


def test_sqlite_formatting_returns_every_row_parameters_none_the_control_one():
    conn = inj_sqlite.database()
    everyone = "x' OR '1'='1"
    assert [r[0] for r in inj_sqlite.find_formatted(conn, everyone)] == ["alice", "bob", "carol"]
    assert inj_sqlite.find_parameterised(conn, everyone) == []
    for find in (inj_sqlite.find_formatted, inj_sqlite.find_parameterised):
        assert find(conn, "alice") == [("alice", "ak-1")]  # the control: an ordinary name
    stacked = "x'; DROP TABLE users; --"
    assert "one statement at a time" in inj_sqlite.attempt(inj_sqlite.find_formatted, conn, stacked)


def test_psycopg_formatting_returns_every_row_and_runs_a_stacked_drop_parameters_do_not(
    database_url,
):
    schema = f"injection_test_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(database_url, autocommit=True, connect_timeout=5) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        try:
            conn.execute(sql.SQL("SET search_path = {}").format(sql.Identifier(schema)))
            everyone, stacked = "x' OR '1'='1", "x'; DROP TABLE users; --"
            assert inj_pg.attempt(inj_pg.find_formatted, conn, everyone).startswith("3 of 3 rows")
            assert inj_pg.attempt(inj_pg.find_parameterised, conn, everyone) == "0 of 3 rows []"
            assert inj_pg.attempt(inj_pg.find_formatted, conn, stacked).endswith("table DROPPED")
            assert inj_pg.attempt(inj_pg.find_parameterised, conn, stacked) == "0 of 3 rows []"
            for find in (inj_pg.find_formatted, inj_pg.find_parameterised):
                assert inj_pg.attempt(find, conn, "alice") == "1 of 3 rows ['alice']"
        finally:
            conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))


def test_with_a_parameter_psycopg_refuses_a_second_statement(database_url):
    """The extended protocol (used once parameters are passed) allows one statement: the
    stacked DROP above ran only because the formatted query had no parameters."""
    with psycopg.connect(database_url, autocommit=True, connect_timeout=5) as conn:
        with pytest.raises(psycopg.errors.SyntaxError, match="multiple commands"):
            conn.execute("SELECT %s; SELECT 2", [1])
        cur = conn.execute("SELECT 1; SELECT 2")  # no parameters: both run
        assert cur.fetchone() == (1,)
        assert cur.nextset() and cur.fetchone() == (2,)


# Secrets ------------------------------------------------------------------------------


def test_a_secret_never_prints_itself():
    secret = sec.Secret("hunter2-value")
    assert "hunter2" not in f"{secret} {secret!r} {sec.Config('h', secret)!r}"
    assert secret.reveal() == "hunter2-value"


@pytest.mark.parametrize(
    ("mode", "ok"), [(0o600, True), (0o400, True), (0o640, False), (0o604, False)]
)
def test_a_secret_file_others_can_read_is_refused(tmp_path, mode, ok):
    path = tmp_path / "key"
    path.write_text("value\n", encoding="utf-8")
    path.chmod(mode)
    if ok:
        assert sec.load_secret("KEY", {"KEY_FILE": str(path)}).reveal() == "value"
    else:
        with pytest.raises(PermissionError, match="chmod 600"):
            sec.load_secret("KEY", {"KEY_FILE": str(path)})


def test_a_missing_secret_stops_the_program_without_a_default():
    with pytest.raises(LookupError, match="set KEY or KEY_FILE"):
        sec.load_secret("KEY", {})
    assert sec.load_secret("KEY", {"KEY": "from-env"}).reveal() == "from-env"


def redaction_case():
    key, password = "k3y-" + "a" * 20, "pw-" + "b" * 12
    url = f"postgresql://app:{password}@db.internal/orders"
    return sec.Config("db.internal", sec.Secret(key)), key, password, url


def test_the_filter_on_the_handler_redacts_what_the_control_leaks():
    config, key, password, url = redaction_case()
    leaked = sec.logs(None, config, url)
    assert key in leaked and password in leaked  # the control: every leak is real
    assert leaked.count(password) == 2  # the warning, and the exception's message
    clean = sec.logs(sec.Redact(config.api_key, sec.Secret(password)), config, url)
    assert key not in clean and password not in clean
    assert "calling the API with key ***" in clean and "app:***@db.internal" in clean
    # a URL password the filter was never told about is caught by the pattern too
    assert password not in sec.logs(sec.Redact(config.api_key), config, url)


def test_break_it_the_filter_on_the_parent_logger_misses_the_childs_records():
    """Python's logging documentation: events generated by descendant loggers are not
    filtered by a logger's filter; a handler's filter sees every record it emits."""
    config, key, password, url = redaction_case()
    text = sec.logs(sec.Redact(config.api_key, sec.Secret(password)), config, url, where="logger")
    assert key in text and password in text
    assert logging.getLogger("app").filters == []  # and the demo cleaned up after itself
