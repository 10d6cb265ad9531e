"""The same service tests pass on an in-memory fake and fail on PostgreSQL, whose foreign key
refuses what the fake accepts; the fixed code passes on both, and repository tests run
against both repositories show where the fake drifted.

Run: python snippets/operations/testing_fake_vs_real.py
Needs: DATABASE_URL
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Protocol

import psycopg

TIMEOUTS = "-c statement_timeout=5s -c lock_timeout=2s"  # every wait on the server is bounded

SCHEMA = """
CREATE TABLE customers (id bigserial PRIMARY KEY, email text NOT NULL);
CREATE TABLE orders (id bigserial PRIMARY KEY,
                     customer_id bigint NOT NULL REFERENCES customers (id),
                     total_cents int NOT NULL CHECK (total_cents > 0));
"""


# --8<-- [start:repos]
class Repository(Protocol):
    def transaction(self) -> AbstractContextManager: ...
    def add_customer(self, email: str) -> int: ...
    def add_order(self, customer_id: int, total_cents: int) -> int: ...
    def customer_exists(self, customer_id: int) -> bool: ...
    def orders_of(self, customer_id: int) -> list[int]: ...
    def delete_orders_of(self, customer_id: int) -> None: ...
    def delete_customer(self, customer_id: int) -> None: ...


class FakeRepository:
    """Two dicts. Fast and simple -- and it knows none of the schema's rules."""

    def __init__(self) -> None:
        self.customers: dict[int, str] = {}
        self.orders: dict[int, tuple[int, int]] = {}  # id -> (customer_id, total_cents)

    def transaction(self) -> AbstractContextManager:
        return nullcontext()  # nothing to roll back: one more thing a fake leaves out

    def add_customer(self, email: str) -> int:
        new_id = max(self.customers, default=0) + 1  # never reuses a live row's id
        self.customers[new_id] = email
        return new_id

    def add_order(self, customer_id: int, total_cents: int) -> int:
        new_id = max(self.orders, default=0) + 1
        self.orders[new_id] = (customer_id, total_cents)
        return new_id

    def customer_exists(self, customer_id: int) -> bool:
        return customer_id in self.customers

    def orders_of(self, customer_id: int) -> list[int]:
        return [total for cid, total in self.orders.values() if cid == customer_id]

    def delete_orders_of(self, customer_id: int) -> None:
        self.orders = {k: v for k, v in self.orders.items() if v[0] != customer_id}

    def delete_customer(self, customer_id: int) -> None:
        self.customers.pop(customer_id, None)


class PostgresRepository:
    """The same methods in SQL, on tables with a foreign key and a CHECK."""

    def __init__(self, conn: psycopg.Connection) -> None:
        self.conn = conn  # autocommit; transaction() groups statements

    def transaction(self) -> AbstractContextManager:
        return self.conn.transaction()

    def add_customer(self, email: str) -> int:
        sql = "INSERT INTO customers (email) VALUES (%s) RETURNING id"
        return self.conn.execute(sql, (email,)).fetchone()[0]

    def add_order(self, customer_id: int, total_cents: int) -> int:
        sql = "INSERT INTO orders (customer_id, total_cents) VALUES (%s, %s) RETURNING id"
        return self.conn.execute(sql, (customer_id, total_cents)).fetchone()[0]

    def customer_exists(self, customer_id: int) -> bool:
        sql = "SELECT 1 FROM customers WHERE id = %s"
        return self.conn.execute(sql, (customer_id,)).fetchone() is not None

    def orders_of(self, customer_id: int) -> list[int]:
        sql = "SELECT total_cents FROM orders WHERE customer_id = %s ORDER BY id"
        return [row[0] for row in self.conn.execute(sql, (customer_id,))]

    def delete_orders_of(self, customer_id: int) -> None:
        self.conn.execute("DELETE FROM orders WHERE customer_id = %s", (customer_id,))

    def delete_customer(self, customer_id: int) -> None:
        self.conn.execute("DELETE FROM customers WHERE id = %s", (customer_id,))


# --8<-- [end:repos]


# --8<-- [start:service]
def sign_up_and_order(repo: Repository, email: str, total_cents: int) -> int:
    with repo.transaction():
        customer = repo.add_customer(email)
        repo.add_order(customer, total_cents)
    return customer


def close_account_buggy(repo: Repository, customer_id: int) -> None:
    """Erase a customer (a right-to-erasure request). Forgets the customer's orders."""
    with repo.transaction():
        repo.delete_customer(customer_id)


def close_account(repo: Repository, customer_id: int) -> None:
    """The fix: their orders first, then the customer, in one transaction."""
    with repo.transaction():
        repo.delete_orders_of(customer_id)
        repo.delete_customer(customer_id)


# --8<-- [end:service]


# --8<-- [start:tests]
# The service's checks (test_* in a real suite): each takes a repository and knows nothing
# of what is behind it.
CloseAccount = Callable[[Repository, int], None]


def check_sign_up_and_order(repo: Repository, close: CloseAccount) -> None:
    customer = sign_up_and_order(repo, "ada@example.com", 1250)
    assert repo.customer_exists(customer) and repo.orders_of(customer) == [1250]


def check_close_account_with_orders(repo: Repository, close: CloseAccount) -> None:
    customer = sign_up_and_order(repo, "ada@example.com", 1250)
    close(repo, customer)
    assert not repo.customer_exists(customer)


SERVICE_TESTS = [check_sign_up_and_order, check_close_account_with_orders]


# The repository's own check, run against every repository: they keep the fake honest.
def check_repo_refuses_deleting_a_customer_with_orders(repo: Repository) -> str:
    customer = repo.add_customer("ada@example.com")
    repo.add_order(customer, 1250)
    try:
        repo.delete_customer(customer)
    except psycopg.errors.ForeignKeyViolation as error:
        return f"refused: {type(error).__name__} (SQLSTATE {error.sqlstate})"
    orphans = repo.orders_of(customer)
    raise AssertionError(f"accepted; {len(orphans)} order left pointing at no customer")


# --8<-- [end:tests]


def outcome(test: Callable[[], str | None]) -> str:
    """'pass' (and what the check returned), or 'FAIL' and the error a runner would show."""
    try:
        said = test()
    except psycopg.Error as error:
        return f"FAIL  {type(error).__name__} (SQLSTATE {error.sqlstate})"
    except AssertionError as error:
        return f"FAIL  {error}"
    return f"pass  {said}" if said else "pass"


@contextmanager
def postgres(url: str) -> Iterator[Callable[[], PostgresRepository]]:
    """Fresh tables in a uniquely named schema per call of the factory; dropped at the end."""
    schema = f"testing_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(url, autocommit=True, connect_timeout=5, options=TIMEOUTS) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
        try:
            conn.execute(f"SET search_path = {schema}")

            def fresh() -> PostgresRepository:
                conn.execute("DROP TABLE IF EXISTS orders, customers")
                conn.execute(SCHEMA)
                return PostgresRepository(conn)

            yield fresh
        finally:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


def service_table(url: str) -> list[tuple[str, str, list[str]]]:
    """(code, repository, each service test's outcome) for buggy/fixed x fake/PostgreSQL."""
    rows = []
    with postgres(url) as fresh_pg:
        for code, close in (("buggy", close_account_buggy), ("fixed", close_account)):
            for name, make in (("fake", FakeRepository), ("postgresql", fresh_pg)):
                results = []
                for test in SERVICE_TESTS:
                    repo = make()
                    results.append(outcome(lambda t=test, r=repo, c=close: t(r, c)))
                rows.append((code, name, results))
    return rows


def repository_table(url: str) -> list[tuple[str, str]]:
    with postgres(url) as fresh_pg:
        return [
            (name, outcome(lambda m=make: check_repo_refuses_deleting_a_customer_with_orders(m())))
            for name, make in (("fake", FakeRepository), ("postgresql", fresh_pg))
        ]


def database_url() -> str:
    url = os.environ.get("DATABASE_URL")
    if not url:
        sys.exit(
            "set DATABASE_URL to a PostgreSQL server, or run"
            " `make run S=operations/testing_fake_vs_real`, which starts one and stops it after"
        )
    return url


def main() -> None:
    url = database_url()
    print("The service's tests, unchanged, on a fake and on PostgreSQL:")
    print(f"  {'code':7}{'repository':12}{'sign up + order':17}close account with orders")
    for code, repo, (signup, close) in service_table(url):
        print(f"  {code:7}{repo:12}{signup:17}{close}")
    print("\nA repository test, run against both (what keeps the fake honest):")
    print(f"  {'repository':12}delete a customer who has orders")
    for repo, result in repository_table(url):
        print(f"  {repo:12}{result}")


if __name__ == "__main__":
    main()
