"""Least privilege on PostgreSQL: a read-only role is refused an INSERT (the real error and
SQLSTATE) while the writer role succeeds; row-level security shows the application role
only its tenant's rows, while the table owner and a BYPASSRLS role see them all — until
FORCE ROW LEVEL SECURITY binds the owner too.

Run: python snippets/security/privilege_postgres.py
Needs: DATABASE_URL
"""

from __future__ import annotations

import os
import secrets
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import psycopg
from psycopg import sql

TIMEOUTS = "-c statement_timeout=10s -c lock_timeout=5s"


def database_url() -> str:
    url = os.environ.get("DATABASE_URL")
    if not url:
        sys.exit(
            "set DATABASE_URL to a PostgreSQL server as a superuser (it creates roles), or run"
            " `make run S=security/privilege_postgres`, which starts one and stops it afterwards"
        )
    return url


@dataclass
class World:
    url: str
    schema: str
    roles: dict[str, str]  # what the role is for -> its (unique) name
    password: str

    def connect(self, role: str) -> psycopg.Connection:
        """Log in as one of this run's roles (a real login, with its own password), or as
        the superuser of DATABASE_URL."""
        login = {} if role == "superuser" else {"user": self.roles[role], "password": self.password}
        return psycopg.connect(
            self.url,
            **login,
            autocommit=True,
            connect_timeout=5,
            options=f"-c search_path={self.schema} {TIMEOUTS}",
        )


# --8<-- [start:setup]
SETUP = """
CREATE ROLE {owner}    LOGIN PASSWORD {pw};             -- owns the tables (migrations)
CREATE ROLE {app}      LOGIN PASSWORD {pw};             -- the application
CREATE ROLE {readonly} LOGIN PASSWORD {pw};             -- reports, dashboards
CREATE ROLE {auditor}  LOGIN PASSWORD {pw} BYPASSRLS;   -- sees every tenant, on purpose
CREATE SCHEMA {schema} AUTHORIZATION {owner};
SET ROLE {owner};
CREATE TABLE {schema}.invoices (
    id     serial PRIMARY KEY,
    tenant text    NOT NULL CHECK (tenant <> ''),
    amount integer NOT NULL);
INSERT INTO {schema}.invoices (tenant, amount)
    VALUES ('acme', 120), ('acme', 80), ('globex', 500), ('globex', 40), ('initech', 7);
GRANT USAGE ON SCHEMA {schema} TO {app}, {readonly}, {auditor};
GRANT SELECT, INSERT ON {schema}.invoices TO {app};
GRANT USAGE ON SEQUENCE {schema}.invoices_id_seq TO {app};
GRANT SELECT ON {schema}.invoices TO {readonly}, {auditor};

-- Row-level security: a row is visible (and may be written) only if its tenant is the
-- one this transaction set. Unset, current_setting(..., true) is NULL on a fresh
-- connection but '' once an earlier transaction set it locally: either way, no rows.
ALTER TABLE {schema}.invoices ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON {schema}.invoices
    USING (tenant = NULLIF(current_setting('app.tenant', true), ''));
RESET ROLE;
"""
# --8<-- [end:setup]


@contextmanager
def world(url: str) -> Iterator[World]:
    """This run's roles and schema (unique names: roles are cluster-wide), removed after."""
    tag = uuid.uuid4().hex[:8]
    roles = {r: f"{r}_{tag}" for r in ("owner", "app", "readonly", "auditor")}
    w = World(url, f"privilege_{tag}", roles, secrets.token_urlsafe(16))
    with psycopg.connect(url, autocommit=True, connect_timeout=5, options=TIMEOUTS) as admin:
        try:
            names = {k: sql.Identifier(v) for k, v in {"schema": w.schema, **roles}.items()}
            admin.execute(sql.SQL(SETUP).format(pw=sql.Literal(w.password), **names))
            yield w
        finally:
            admin.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(names["schema"]))
            for role, name in roles.items():
                if _exists(admin, name):  # its grants, in this database, then the role
                    admin.execute(sql.SQL("DROP OWNED BY {}").format(names[role]))
                    admin.execute(sql.SQL("DROP ROLE {}").format(names[role]))


def _exists(conn: psycopg.Connection, role: str) -> bool:
    return conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [role]).fetchone() is not None


def error(e: psycopg.Error) -> str:
    """The server's message and SQLSTATE, as a client sees them."""
    return f"{e.sqlstate} {e.diag.message_primary}"


# --8<-- [start:readonly]
def try_insert(w: World, role: str) -> str:
    """Insert a row for tenant acme as `role`: 'inserted' or the server's error."""
    with w.connect(role) as conn:
        try:
            with conn.transaction():
                conn.execute("SELECT set_config('app.tenant', 'acme', true)")
                conn.execute("INSERT INTO invoices (tenant, amount) VALUES ('acme', 1)")
                raise psycopg.Rollback  # keep the table as it was: this run only asks
        except psycopg.Error as e:
            return error(e)
    return "inserted"


# --8<-- [end:readonly]


# --8<-- [start:rls]
def visible(w: World, role: str, tenant: str | None) -> list[str]:
    """The tenants whose invoices `role` can see, with app.tenant set to `tenant`."""
    with w.connect(role) as conn, conn.transaction():
        if tenant is not None:
            conn.execute("SELECT set_config('app.tenant', %s, true)", [tenant])
        rows = conn.execute("SELECT tenant FROM invoices ORDER BY id").fetchall()
    return [tenant for (tenant,) in rows]


def insert_for(w: World, tenant_set: str, row_tenant: str) -> str:
    """As the app with app.tenant = tenant_set, insert a row for row_tenant."""
    with w.connect("app") as conn:
        try:
            with conn.transaction():
                conn.execute("SELECT set_config('app.tenant', %s, true)", [tenant_set])
                conn.execute("INSERT INTO invoices (tenant, amount) VALUES (%s, 1)", [row_tenant])
                raise psycopg.Rollback
        except psycopg.Error as e:
            return error(e)
    return "inserted"


def force(w: World) -> None:
    """Make row-level security apply to the table's owner too."""
    with w.connect("owner") as conn:
        conn.execute("ALTER TABLE invoices FORCE ROW LEVEL SECURITY")


# --8<-- [end:rls]


def summary(tenants: list[str]) -> str:
    counts = {t: tenants.count(t) for t in dict.fromkeys(tenants)}
    shown = ", ".join(f"{t} x{n}" for t, n in counts.items()) or "nothing"
    return f"{len(tenants)} of 5 rows ({shown})"


def main() -> None:
    with world(database_url()) as w:
        print("write access:")
        for role in ("app", "readonly"):
            print(f"  {role:<9} INSERT -> {try_insert(w, role)}")

        print("\nrow-level security on invoices (5 rows, 3 tenants):")
        for role, tenant in [
            ("app", "acme"),
            ("app", "globex"),
            ("app", None),
            ("readonly", "acme"),
            ("owner", None),
            ("auditor", None),
        ]:
            label = f"{role}, app.tenant={tenant or '(unset)'}"
            print(f"  {label:<30} sees {summary(visible(w, role, tenant))}")
        print(f"  app as acme, INSERT a globex row -> {insert_for(w, 'acme', 'globex')}")

        force(w)
        print("\nafter ALTER TABLE invoices FORCE ROW LEVEL SECURITY:")
        for role, tenant in [
            ("owner", None),
            ("owner", "initech"),
            ("auditor", None),
            ("superuser", None),
        ]:
            label = f"{role}, app.tenant={tenant or '(unset)'}"
            print(f"  {label:<30} sees {summary(visible(w, role, tenant))}")


if __name__ == "__main__":
    main()
